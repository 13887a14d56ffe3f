"""How one epoch of R runs is executed: the scanned and the stepped epoch, and the choice.

An epoch of run r is fixed by its key alone: ``plan`` draws the run's permutation of the training
examples (``steps = num_examples // batch_size`` batches, the rest dropped) and one key per step;
each step gathers its batch from the shared, row-sharded ``train_data``, shards it over the
mesh, takes the gradient of ``loss_fn`` and applies ``tx``; the run is then scored on the test
set with a fixed evaluation key. Two strategies execute this, with the same numbers:

- the **scanned epoch** (``steps_per_call=None``): the whole epoch of all runs is one jitted
  program; the runs are ``vmap``-ed, ``lax.scan`` takes the steps, then all runs are evaluated.
  One compilation and one dispatch per epoch for any R: the right choice for dense nets and on
  accelerators.
- the **stepped epoch** (``steps_per_call=k``): per run, a Python loop over jitted programs of k
  straight-line steps, then the evaluation (its chunks unrolled too). It exists for conv nets on
  CPU: XLA CPU runs a conv net's step ~20× slower inside any ``lax.scan`` (even one of length 1),
  and vmapping a conv net over runs turns its convolutions into grouped convolutions, which XLA
  CPU runs very slowly, so the runs go one after the other, unbatched
  (``benchmarks/conv_in_scan.py`` measures the first).

``choose_steps_per_call`` picks between them; ``make_epoch_fn`` builds either one behind the same
``epoch_fn`` signature.

Both split the runs over the mesh's ``runs`` axis (``parallel``): the scanned epoch vmaps with
``spmd_axis_name="runs"``, so each run group computes only its block of runs and, with
``data`` = 1, the compiled program holds no collective; the stepped epoch gives each run group
its own programs on its own devices and dispatches run i of every group before run i + 1.
"""

from __future__ import annotations

import collections
import functools
import hashlib
from typing import Any, Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from distill_jax import parallel

Params = Any
Batch = Mapping[str, jax.Array]
LossFn = Callable[[Params, Batch, jax.Array, Mapping[str, jax.Array], Any], jax.Array]
MetricsFn = Callable[[Params, Batch, jax.Array], Mapping[str, jax.Array]]

EVAL_KEY_DATA = 2**31 - 1  # folded into a run's key for its evaluation key

# XLA CPU's LLVM at its default -O3 spends ~0.5-1 s compiling each PRNG draw (threefry) of an
# init program: 2-5 s per model, a third of a cold conv run's compile time. At -O1 the same
# programs compile ~3x faster and give bit-identical parameters (checked for mlp / linear / cnn,
# both inits, 1-25 runs; tests/test_train.py keeps checking it). Only for init: a training
# epoch at -O1 can sum in another order (its loss differed in the last digit).
RUN_ONCE_CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


@flax.struct.dataclass
class TrainState:
  params: Params
  opt_state: optax.OptState


def _run_once_jit(fn: Callable) -> Callable:
  """``jax.jit(fn)``, compiled with ``RUN_ONCE_CPU_COMPILER_OPTIONS`` on CPU."""
  on_cpu = jax.jit(fn, compiler_options=RUN_ONCE_CPU_COMPILER_OPTIONS)
  elsewhere = jax.jit(fn)
  return lambda *args: (on_cpu if jax.default_backend() == "cpu" else elsewhere)(*args)


@_run_once_jit
def split_run_keys(run_keys: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(init_keys, epoch_keys)``: each run's key split in two, the first for its parameters,
  the second for its epochs (integer PRNG arithmetic: the same keys at any optimization level)."""
  init_keys, epoch_keys = jnp.moveaxis(jax.vmap(jax.random.split)(run_keys), 1, 0)
  return init_keys, epoch_keys


def init_states(
  init_fn: Callable[[jax.Array], Params], tx: optax.GradientTransformation, init_keys: jax.Array
) -> TrainState:
  """One ``TrainState`` per key, stacked along a leading run axis (one compiled program).

  On CPU the program is compiled with ``RUN_ONCE_CPU_COMPILER_OPTIONS`` (see there).
  """

  def init_all(keys):
    params = jax.vmap(init_fn)(keys)
    return TrainState(params=params, opt_state=jax.vmap(tx.init)(params))

  return _run_once_jit(init_all)(init_keys)


def choose_steps_per_call(
  configured: int | None, model_name: str, backend: str | None = None
) -> int | None:
  """``configured`` if set; else 1 (stepped epoch) for a ``"cnn"`` on CPU, else None (scanned).

  ``backend`` defaults to ``jax.default_backend()``.
  """
  if configured is not None:
    return configured
  backend = jax.default_backend() if backend is None else backend
  return 1 if model_name == "cnn" and backend == "cpu" else None


def make_evaluate(metrics_fn: MetricsFn, mesh: Mesh, unrolled: bool = False):
  """``evaluate(params, test chunks, weight, key) -> {metric: mean}`` for one run.

  The test set comes row-sharded in chunks (``parallel.put_rows(..., chunk_rows=c)``, ``c`` =
  the evaluation batch / P; ``weight`` 1 for real rows and 0 for padding); each step scores
  chunk i of every device's shard, one evaluation batch (``parallel.take_chunk``).
  ``unrolled``: the chunks as straight-line code instead of a ``lax.scan`` (conv nets on CPU).
  """

  def evaluate(params, test_chunks, test_weight, key):
    def batch_at(index):
      return jax.tree.map(lambda a: parallel.take_chunk(a, index, mesh), (test_chunks, test_weight))

    first = jax.eval_shape(lambda: batch_at(0)[0])
    names = jax.eval_shape(lambda batch: metrics_fn(params, batch, key), first)

    def chunk(totals, index):
      batch, weight = parallel.shard_batch(batch_at(index), mesh)
      values = metrics_fn(params, batch, key)
      return {k: totals[k] + jnp.sum(values[k] * weight) for k in totals}, None

    totals = {k: jnp.zeros((), jnp.float32) for k in names}
    chunks = parallel.num_chunks(test_weight, mesh)
    if unrolled:
      for i in range(chunks):
        totals, _ = chunk(totals, i)
    else:
      totals, _ = jax.lax.scan(chunk, totals, jnp.arange(chunks))
    return {k: v / test_weight.sum() for k, v in totals.items()}

  return evaluate


def make_epoch_fn(
  loss_fn: LossFn,
  metrics_fn: MetricsFn,
  tx: optax.GradientTransformation,
  *,
  num_examples: int,
  batch_size: int,
  mesh: Mesh,
  steps_per_call: int | None = None,
):
  """The ``epoch_fn(states, train_data, run_keys, epoch, hparams, context, test, evaluate=True)``.

  Every argument with a leading run axis (states, run_keys, hparams) is per run, split over the
  mesh's ``runs`` axis (``parallel.put_runs``; the run count a multiple of its size);
  ``train_data`` (row-sharded, ``parallel.put_rows``: row i of the set at position i),
  ``context`` and ``test`` (``(test chunks, 0/1 weight)``, see ``make_evaluate``) are shared by
  all runs. Returns the new states and per-run metrics ``{"train_loss": [R], "test_<metric>":
  [R], ...}`` (no ``test_*`` when ``evaluate=False``), split over ``runs`` like the states.

  ``steps_per_call=None``: the scanned epoch, one jitted program (``states`` is donated).
  ``steps_per_call=k >= 1``: the stepped epoch, jitted programs of k steps per run. Same numbers
  (same batches and keys); see the module docstring for when to use which.
  """
  if steps_per_call is not None and steps_per_call < 1:
    raise ValueError(f"steps_per_call must be >= 1 or None, got {steps_per_call}.")
  plan = _make_plan(num_examples, batch_size)
  if steps_per_call is None:
    step = _make_step(loss_fn, tx, mesh)
    return _scanned_epoch_fn(plan, step, make_evaluate(metrics_fn, mesh), mesh)
  steps = num_examples // batch_size

  def group_programs(group_mesh):
    step = _make_step(loss_fn, tx, group_mesh)
    return step, make_evaluate(metrics_fn, group_mesh, unrolled=True)

  return _stepped_epoch_fn(plan, group_programs, mesh, steps=steps, steps_per_call=steps_per_call)


def _make_plan(num_examples: int, batch_size: int):
  """``plan(run_key, epoch)``: this run's batches ``[steps, batch_size]`` and one key per step."""
  steps = num_examples // batch_size

  def plan(run_key, epoch):
    perm_key, steps_key = jax.random.split(jax.random.fold_in(run_key, epoch))
    order = jax.random.permutation(perm_key, num_examples)[: steps * batch_size]
    return order.reshape(steps, batch_size), jax.random.split(steps_key, steps)

  return plan


def _make_step(loss_fn: LossFn, tx: optax.GradientTransformation, mesh: Mesh):
  """``step(state, (indices, key), train_data, hparams, context) -> (state, loss)``: one run's
  training step (gather the batch, shard it over ``data``, loss, gradient, ``tx`` update)."""

  def step(state, inputs, train_data, hparams, context):
    indices, step_key = inputs
    # XLA gathers from the row-sharded set: each device takes the rows it holds, an all-reduce
    # over ``data`` assembles the batch, which is then split over ``data``.
    batch = parallel.shard_batch({name: array[indices] for name, array in train_data.items()}, mesh)
    loss, grads = jax.value_and_grad(loss_fn)(state.params, batch, step_key, hparams, context)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return TrainState(optax.apply_updates(state.params, updates), opt_state), loss

  return step


def _scored(evaluate):
  """``score(params, test, run_key) -> {"test_<metric>": mean}`` with the run's fixed eval key.

  A fixed evaluation key per run: stochastic metrics do not add epoch-to-epoch noise.
  """

  def score(params, test, run_key):
    metrics = evaluate(params, *test, jax.random.fold_in(run_key, EVAL_KEY_DATA))
    return {f"test_{k}": v for k, v in metrics.items()}

  return score


def _scanned_epoch_fn(plan, step, evaluate, mesh: Mesh):
  """The scanned epoch: all runs vmapped, ``lax.scan`` over the steps, then the evaluation.

  The vmapped run axis is ``spmd_axis_name=runs``: split over the mesh's ``runs`` axis inside
  the program too (also under ``shard_batch``'s constraints), so each run group computes only
  its own runs and, with ``data`` = 1, nothing is communicated.
  """

  def train_steps(state, train_data, batch_indices, step_keys, hparams, context):
    def scan_step(state, inputs):
      return step(state, inputs, train_data, hparams, context)

    return jax.lax.scan(scan_step, state, (batch_indices, step_keys))

  over_runs = functools.partial(jax.vmap, spmd_axis_name=parallel.RUNS_AXIS)
  plan_runs = over_runs(plan, in_axes=(0, None))
  train_runs = over_runs(train_steps, in_axes=(0, None, 0, 0, 0, None))
  score_runs = over_runs(_scored(evaluate), in_axes=(0, None, 0))

  def epoch_fn(states, train_data, run_keys, epoch, hparams, context, test, evaluate=True):
    batch_indices, step_keys = plan_runs(run_keys, epoch)
    states, losses = train_runs(states, train_data, batch_indices, step_keys, hparams, context)
    metrics = {"train_loss": losses.mean(-1)}
    if evaluate:
      metrics.update(score_runs(states.params, test, run_keys))
    return states, metrics

  by_run = parallel.runs_sharded(mesh)
  jitted = jax.jit(
    epoch_fn,
    donate_argnums=(0,),
    static_argnames=("evaluate",),
    out_shardings=(by_run, by_run),
  )
  return SharedProgram(jitted, mesh)


class SharedProgram:
  """A jitted function whose compiled programs are shared, within this process, with every other
  ``SharedProgram`` that lowers to the same program text on the same devices.

  ``jax.jit`` caches by function identity, so two epoch functions built from different but
  equivalent closures (the student arms: the same loss on other soft targets) compile twice
  unless JAX's persistent compilation cache holds the program. That cache is written by process
  0 only, and on CPU its key holds the device ids, so another process of a job compiled every
  arm again. Here the key is the lowered StableHLO text (every op, constant and sharding; no
  source locations), the mesh's device ids and the arguments' pytree structure: equal keys are
  the same program called the same way, so reusing
  the executable cannot change a number. Compilation itself still goes through JAX (and its
  persistent cache). Meant for programs called a few times per epoch: each call costs a
  signature lookup in Python.
  """

  def __init__(self, jitted, mesh: Mesh):
    self._jitted = jitted
    self._devices = tuple(int(d.id) for d in mesh.devices.flat)
    self._by_signature: dict = {}

  def __call__(self, *args, **static):
    signature = (
      tuple(sorted(static.items())),
      jax.tree.structure(args),
      tuple(_signature_of(leaf) for leaf in jax.tree.leaves(args)),
    )
    compiled = self._by_signature.get(signature)
    if compiled is None:
      compiled = self._by_signature[signature] = self._compile(args, static)
    return compiled(*args)

  def _compile(self, args, static):
    lowered = self._jitted.lower(*args, **static)
    text = lowered.as_text(debug_info=False)
    # The pytree of the arguments too: None and {} lower alike but call differently.
    key = (hashlib.sha256(text.encode()).hexdigest(), self._devices, jax.tree.structure(args))
    compiled = _COMPILED.get(key)
    if compiled is None:
      compiled = lowered.compile()
    _COMPILED[key] = compiled
    _COMPILED.move_to_end(key)
    while len(_COMPILED) > _MAX_SHARED_PROGRAMS:
      _COMPILED.popitem(last=False)
    return compiled

  def lower(self, *args, **static):
    """``jax.jit``'s ``lower`` (for reading the program: HLO, cost analysis)."""
    return self._jitted.lower(*args, **static)

  def compiled_programs(self) -> list:
    """The executables this function has called so far (one per input signature)."""
    return list(self._by_signature.values())


def _signature_of(leaf):
  """What a compiled program is specific to for one argument: its type, weak type and sharding."""
  if isinstance(leaf, jax.Array):
    return (jax.typeof(leaf), leaf.sharding)
  return (type(leaf), np.shape(leaf), getattr(leaf, "dtype", None))


# Compiled programs by (StableHLO text hash, device ids, pytree), least recently used first: a few
# epoch programs (each arm's, evaluated or not) are live at a time.
_COMPILED: collections.OrderedDict = collections.OrderedDict()
_MAX_SHARED_PROGRAMS = 16


def _stepped_epoch_fn(plan, group_programs, mesh: Mesh, *, steps: int, steps_per_call: int):
  """The stepped epoch: per run group, run after run, unbatched, a Python loop over jitted k-step
  programs.

  Each run group of ``mesh`` (one row: its ``data`` devices) gets its own programs on its own
  sub-mesh and trains its block of runs; the loop dispatches run i of every group before run
  i + 1, so with asynchronous dispatch the groups compute side by side. A process dispatches
  only the groups whose devices it holds.
  """
  groups = _local_groups(mesh)
  programs = {}
  for group, group_mesh in groups.items():
    step, evaluate = group_programs(group_mesh)
    programs[group] = _stepped_group_programs(plan, step, evaluate, steps, steps_per_call)

  def epoch_fn(states, train_data, run_keys, epoch, hparams, context, test, evaluate=True):
    per_group = run_keys.shape[0] // parallel.run_groups(mesh)
    local = {
      group: _group_view((states, train_data, run_keys, hparams, context, test), group_mesh)
      for group, group_mesh in groups.items()
    }
    new_states = {group: [] for group in groups}
    losses = {group: [] for group in groups}
    scores = {group: [] for group in groups}
    for run in range(per_group):  # run `run` of every group, then the next
      for group, (g_states, g_data, g_keys, g_hparams, g_context, g_test) in local.items():
        train_run, score_run = programs[group]
        state, run_hparams = jax.tree.map(lambda leaf: leaf[run], (g_states, g_hparams))
        state, loss = train_run(state, g_data, g_keys[run], epoch, run_hparams, g_context)
        new_states[group].append(state)
        losses[group].append(loss)
        if evaluate:
          scores[group].append(score_run(state.params, g_test, g_keys[run]))
    metrics = {group: {"train_loss": jnp.stack(losses[group])} for group in groups}
    if evaluate:
      for group in groups:
        metrics[group].update(_stack(scores[group]))
    stacked = {group: (_stack(new_states[group]), metrics[group]) for group in groups}
    return _join_groups(stacked, run_keys.shape[0], mesh)

  return epoch_fn


def _stepped_group_programs(plan, step, evaluate, steps: int, steps_per_call: int):
  """``(train_run, score_run)`` of one run group: one run's epoch, its test metrics."""

  def train_steps(state, train_data, batch_indices, step_keys, hparams, context):
    # The steps as straight-line code: no lax.scan around a conv net's step on CPU.
    step_losses = []
    for i in range(batch_indices.shape[0]):
      state, loss = step(state, (batch_indices[i], step_keys[i]), train_data, hparams, context)
      step_losses.append(loss)
    return state, jnp.stack(step_losses)

  plan_jit = jax.jit(plan)
  train_jit = jax.jit(train_steps, donate_argnums=(0,))
  score_jit = jax.jit(_scored(evaluate))

  def train_run(state, train_data, run_key, epoch, hparams, context):
    """One run's epoch; returns its state and mean training loss."""
    batch_indices, step_keys = plan_jit(run_key, epoch)
    losses = []
    for start in range(0, steps, steps_per_call):
      chunk = slice(start, start + steps_per_call)
      state, chunk_losses = train_jit(
        state, train_data, batch_indices[chunk], step_keys[chunk], hparams, context
      )
      losses.append(chunk_losses)
    return state, jnp.concatenate(losses).mean()

  return train_run, score_jit


def _local_groups(mesh: Mesh) -> dict[int, Mesh]:
  """The run groups with a device of this process: group index -> its ``(1, data)`` sub-mesh."""
  process = jax.process_index()
  return {
    group: Mesh(mesh.devices[group : group + 1], mesh.axis_names)
    for group in range(parallel.run_groups(mesh))
    if any(d.process_index == process for d in mesh.devices[group])
  }


def _group_view(tree, group_mesh: Mesh):
  """``tree``'s arrays as seen by one run group: run-sharded leaves become that group's block of
  runs (replicated over its ``data`` devices), the others keep their ``data`` layout; no copy."""
  devices = set(group_mesh.devices.flat)

  def view(leaf):
    spec = leaf.sharding.spec
    shards = [s for s in leaf.addressable_shards if s.device in devices]
    if spec and spec[0] == parallel.RUNS_AXIS:
      shape, group_spec = shards[0].data.shape, PartitionSpec()
    else:
      shape, group_spec = leaf.shape, spec
    sharding = NamedSharding(group_mesh, group_spec)
    return jax.make_array_from_single_device_arrays(shape, sharding, [s.data for s in shards])

  return jax.tree.map(view, tree)


def _join_groups(per_group: dict, num_runs: int, mesh: Mesh):
  """Each group's stacked ``(states, metrics)`` joined into arrays of ``num_runs`` runs split
  over ``runs`` (each device keeps its own group's buffers)."""
  sharding = parallel.runs_sharded(mesh)
  trees = list(per_group.values())

  def join(*leaves):
    buffers = [shard.data for leaf in leaves for shard in leaf.addressable_shards]
    shape = (num_runs, *leaves[0].shape[1:])
    return jax.make_array_from_single_device_arrays(shape, sharding, buffers)

  return jax.tree.map(join, *trees)


def _stack(trees: list):
  """The trees stacked leaf by leaf along a new leading axis; None for no trees."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees) if trees else None
