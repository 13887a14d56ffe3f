"""The one trainer: many runs (seeds × λ × T) of one model trained at once.

Read top to bottom:

1. ``init_states``: one parameter set per run, stacked on a leading run axis ``R``.
2. ``make_epoch_fn``: one jitted program per epoch: every run shuffles its data with its own key,
   ``lax.scan`` takes all its steps (each step: gather the batch, shard it over the mesh, loss,
   gradient, Adam), then all runs are evaluated on the test set. Runs are ``vmap``-ed, so R seeds
   and hyper-parameters cost one compilation and one dispatch per epoch. (``steps_per_call``
   splits the epoch into several jitted calls instead: conv nets on CPU.)
3. ``fit``: the epoch loop, with progress logs, a NaN guard and orbax checkpoints to resume from.

A *task* is given by a pure ``loss_fn(params, batch, key, hparams, context) -> scalar`` on one
run's batch (a dict of arrays gathered from ``train_data``; ``hparams`` are this run's
hyper-parameters, ``context`` is shared by all runs, e.g. a teacher's parameters), and a pure
``metrics_fn(params, batch, key) -> {name: per-example values}`` evaluated on ``test_data`` after
every epoch (``classification_metrics(apply_fn)`` gives test accuracy and cross-entropy). The
teacher, the students and the VAE are all tasks of this trainer.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh

from distill_jax import losses
from distill_jax import parallel
from distill_jax.checkpoints import Checkpointer
from distill_jax.report import history_to_json

Params = Any
Batch = Mapping[str, jax.Array]
LossFn = Callable[[Params, Batch, jax.Array, Mapping[str, jax.Array], Any], jax.Array]
ApplyFn = Callable[[Params, jax.Array], jax.Array]
MetricsFn = Callable[[Params, Batch, jax.Array], Mapping[str, jax.Array]]

EVAL_KEY_DATA = 2**31 - 1  # folded into a run's key for its evaluation key


def classification_metrics(apply_fn: ApplyFn) -> MetricsFn:
  """Per-example ``accuracy`` (0/1) and ``cross_entropy`` of ``apply_fn`` on image/label."""

  def metrics(params, batch, key):
    logits = apply_fn(params, batch["image"])
    return {
      "accuracy": (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32),
      "cross_entropy": losses.cross_entropy(logits, batch["label"]),
    }

  return metrics


@flax.struct.dataclass
class TrainState:
  params: Params
  opt_state: optax.OptState


@dataclasses.dataclass
class FitResult:
  """Trained parameters (leading axis = run) and per-run, per-epoch metrics ``[R, epochs]``."""

  params: Params
  history: dict[str, np.ndarray]
  seconds: float


def init_states(
  init_fn: Callable[[jax.Array], Params], tx: optax.GradientTransformation, init_keys: jax.Array
) -> TrainState:
  """One ``TrainState`` per key, stacked along a leading run axis (one compiled program)."""

  @jax.jit
  def init_all(keys):
    params = jax.vmap(init_fn)(keys)
    return TrainState(params=params, opt_state=jax.vmap(tx.init)(params))

  return init_all(init_keys)


def _chunk(data: Mapping[str, np.ndarray], chunk_size: int):
  """Pads arrays (common leading axis) to whole chunks: ``(chunked data, 0/1 weight)``."""
  n = len(next(iter(data.values())))
  chunks = -(-n // chunk_size)
  pad = chunks * chunk_size - n

  def padded(array):
    array = np.asarray(array)
    array = np.concatenate([array, np.zeros((pad, *array.shape[1:]), array.dtype)])
    return array.reshape(chunks, chunk_size, *array.shape[1:])

  weight = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
  return {k: padded(v) for k, v in data.items()}, weight.reshape(chunks, chunk_size)


def make_evaluate(metrics_fn: MetricsFn, mesh: Mesh, unrolled: bool = False):
  """``evaluate(params, chunked test data, weight, key) -> {metric: mean}`` for one run.

  ``unrolled``: the chunks as straight-line code instead of a ``lax.scan`` (conv nets on CPU).
  """

  def evaluate(params, test_chunks, test_weight, key):
    first = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), test_chunks)
    names = jax.eval_shape(lambda batch: metrics_fn(params, batch, key), first)

    def chunk(totals, inputs):
      batch, weight = parallel.shard_batch(inputs, mesh)
      values = metrics_fn(params, batch, key)
      return {k: totals[k] + jnp.sum(values[k] * weight) for k in totals}, None

    totals = {k: jnp.zeros((), jnp.float32) for k in names}
    if unrolled:
      for i in range(test_weight.shape[0]):
        totals, _ = chunk(totals, jax.tree.map(lambda a: a[i], (test_chunks, test_weight)))
    else:
      totals, _ = jax.lax.scan(chunk, totals, (test_chunks, test_weight))
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

  Every argument with a leading run axis (states, run_keys, hparams) is vmapped; ``train_data``,
  ``context`` and the test set are shared by all runs. Returns the new states and per-run
  metrics ``{"train_loss": [R], "test_<metric>": [R], ...}`` (no ``test_*`` when
  ``evaluate=False``).

  ``steps_per_call=None``: the whole epoch (all steps and the evaluation) is one jitted program.
  ``steps_per_call=k``: per run, a Python loop over jitted programs of k (unrolled) steps each,
  then the evaluation; runs one after the other, not vmapped. Same numbers (same batches and
  keys); use it for conv nets on CPU, where XLA runs convolutions inside loops several times
  slower (``benchmarks/conv_in_scan.py``) and vmapped over runs (grouped convolutions) far slower.
  """
  steps = num_examples // batch_size
  evaluate = make_evaluate(metrics_fn, mesh, unrolled=steps_per_call is not None)

  def plan_one_run(run_key, epoch):
    """This run's batches for the epoch ``[steps, batch_size]`` and one key per step."""
    perm_key, steps_key = jax.random.split(jax.random.fold_in(run_key, epoch))
    order = jax.random.permutation(perm_key, num_examples)[: steps * batch_size]
    return order.reshape(steps, batch_size), jax.random.split(steps_key, steps)

  def train_steps(state, train_data, batch_indices, step_keys, hparams, context):
    """``lax.scan`` over the given steps of one run; returns the state and per-step losses."""

    def step(state, inputs):
      indices, step_key = inputs
      batch = parallel.shard_batch(
        {name: array[indices] for name, array in train_data.items()}, mesh
      )
      loss, grads = jax.value_and_grad(loss_fn)(state.params, batch, step_key, hparams, context)
      updates, opt_state = tx.update(grads, state.opt_state, state.params)
      return TrainState(optax.apply_updates(state.params, updates), opt_state), loss

    if steps_per_call is None:
      return jax.lax.scan(step, state, (batch_indices, step_keys))
    # Chunked epochs: the few steps as straight-line code. XLA CPU runs a conv net's step ~20×
    # slower inside any scan, even one of length 1 with unroll=True (2.4 s vs 0.125 s).
    step_losses = []
    for i in range(batch_indices.shape[0]):
      state, loss = step(state, (batch_indices[i], step_keys[i]))
      step_losses.append(loss)
    return state, jnp.stack(step_losses)

  def evaluate_runs(states, test, run_keys):
    # A fixed evaluation key per run: stochastic metrics do not add epoch-to-epoch noise.
    eval_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(run_keys, EVAL_KEY_DATA)
    test_metrics = jax.vmap(evaluate, in_axes=(0, None, None, 0))(states.params, *test, eval_keys)
    return {f"test_{k}": v for k, v in test_metrics.items()}

  train_runs = jax.vmap(train_steps, in_axes=(0, None, 0, 0, 0, None))
  plan_runs = jax.vmap(plan_one_run, in_axes=(0, None))
  replicated = parallel.replicated(mesh)

  if steps_per_call is None:

    def epoch_fn(states, train_data, run_keys, epoch, hparams, context, test, evaluate=True):
      batch_indices, step_keys = plan_runs(run_keys, epoch)
      states, losses = train_runs(states, train_data, batch_indices, step_keys, hparams, context)
      metrics = {"train_loss": losses.mean(-1)}
      if evaluate:
        metrics.update(evaluate_runs(states, test, run_keys))
      return states, metrics

    return jax.jit(
      epoch_fn,
      donate_argnums=(0,),
      static_argnames=("evaluate",),
      out_shardings=(replicated, replicated),
    )

  if steps_per_call < 1:
    raise ValueError(f"steps_per_call must be >= 1 or None, got {steps_per_call}.")
  # One run at a time, unbatched: vmapping a conv net over runs makes XLA batch both images and
  # kernels into a grouped convolution, which XLA CPU runs very slowly.
  plan_jit = jax.jit(plan_one_run)
  train_jit = jax.jit(train_steps, donate_argnums=(0,))

  @jax.jit
  def evaluate_one(params, test, run_key):
    metrics = evaluate(params, *test, jax.random.fold_in(run_key, EVAL_KEY_DATA))
    return {f"test_{k}": v for k, v in metrics.items()}

  def looped_epoch_fn(states, train_data, run_keys, epoch, hparams, context, test, evaluate=True):
    new_states, train_losses, test_metrics = [], [], []
    for run in range(run_keys.shape[0]):
      state = jax.tree.map(lambda leaf: leaf[run], states)
      run_hparams = jax.tree.map(lambda leaf: leaf[run], hparams)
      batch_indices, step_keys = plan_jit(run_keys[run], epoch)
      losses = []
      for start in range(0, steps, steps_per_call):
        chunk = slice(start, start + steps_per_call)
        state, chunk_losses = train_jit(
          state, train_data, batch_indices[chunk], step_keys[chunk], run_hparams, context
        )
        losses.append(chunk_losses)
      new_states.append(state)
      train_losses.append(jnp.concatenate(losses).mean())
      if evaluate:
        test_metrics.append(evaluate_one(state.params, test, run_keys[run]))
    states = jax.tree.map(lambda *leaves: jnp.stack(leaves), *new_states)
    metrics = jax.tree.map(lambda *values: jnp.stack(values), *test_metrics) if evaluate else {}
    return states, {"train_loss": jnp.stack(train_losses), **metrics}

  return looped_epoch_fn


def fit(
  *,
  name: str,
  init_fn: Callable[[jax.Array], Params],
  loss_fn: LossFn,
  metrics_fn: MetricsFn,
  train_data: Mapping[str, np.ndarray],
  test_data: Mapping[str, np.ndarray],
  run_keys: jax.Array,
  hparams: Mapping[str, np.ndarray],
  context: Any = None,
  epochs: int,
  batch_size: int,
  learning_rate: float,
  mesh: Mesh,
  eval_batch_size: int = 1000,
  checkpointer: Checkpointer | None = None,
  checkpoint_every: int = 10,
  on_epoch: Callable[[int, dict[str, np.ndarray]], None] | None = None,
  steps_per_call: int | None = None,
  eval_every: int = 1,
) -> FitResult:
  """Trains ``R = len(run_keys)`` runs for ``epochs`` epochs with Adam, evaluating on the way.

  Args:
    name: what is trained, for logs and errors.
    init_fn: ``key -> params`` for one run.
    loss_fn: ``(params, batch, key, hparams, context) -> scalar`` for one run's batch.
    metrics_fn: ``(params, batch, key) -> {metric: per-example values}`` on a test batch;
      e.g. ``classification_metrics(model.apply)``. ``key`` is fixed per run.
    train_data: arrays with a common leading example axis (e.g. ``image``, ``label``).
    test_data: the evaluation arrays, likewise (already mapped if the model needs it).
    run_keys: ``[R]`` PRNG keys; run r's init, shuffles and noise all derive from its key, so a
      seed gives the same numbers whatever else is trained beside it.
    hparams: per-run hyper-parameters, each an array with leading axis R (e.g. ``lam``).
    context: a pytree shared by all runs and passed to ``loss_fn`` (e.g. teacher parameters).
    epochs, batch_size, learning_rate: the optimization.
    mesh: devices to split each batch over.
    eval_batch_size: test chunk size (memory bound for big models).
    checkpointer: where to save every ``checkpoint_every`` epochs and at the end; the run
      resumes from its latest checkpoint.
    on_epoch: called after each epoch with ``(epoch, metrics of this epoch [R])``.
    steps_per_call: None (default): each epoch is one jitted program; k: a Python loop over
      jitted programs of k training steps (same numbers; faster for conv nets on CPU).
    eval_every: evaluate after every k-th epoch and after the last one (the evaluation does not
      touch the training, so the parameters are the same for any k).

  Returns:
    The final per-run parameters and the per-epoch history ``[R, epochs]`` of ``train_loss``
    and each ``test_<metric>``; ``test_*`` is NaN after epochs that were not evaluated, and
    ``on_epoch`` gets no ``test_*`` for them.
  """
  num_examples = len(next(iter(train_data.values())))
  num_runs = len(run_keys)
  if batch_size > num_examples:
    raise ValueError(
      f"{name}: batch size {batch_size} exceeds the {num_examples} training "
      "examples; lower the batch size."
    )
  parallel.check_batch_size(batch_size, mesh, f"{name} training")
  parallel.check_batch_size(eval_batch_size, mesh, f"{name} evaluation")
  if eval_every < 1:
    raise ValueError(
      f"{name}: eval_every must be >= 1 (evaluate every k epochs), got {eval_every}."
    )
  for key, value in hparams.items():
    if np.shape(value)[:1] != (num_runs,):
      raise ValueError(
        f"{name}: hparams[{key!r}] must have one value per run ({num_runs}), "
        f"got shape {np.shape(value)}."
      )

  tx = optax.adam(learning_rate)
  replicated = parallel.replicated(mesh)
  init_keys, train_keys = jnp.moveaxis(jax.vmap(jax.random.split)(run_keys), 1, 0)

  def put(tree):
    return jax.device_put(tree, replicated)

  states = put(init_states(init_fn, tx, init_keys))
  train_data, train_keys, context = put(dict(train_data)), put(train_keys), put(context)
  hparams = put({k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()})
  test = put(_chunk(test_data, eval_batch_size))
  epoch_fn = make_epoch_fn(
    loss_fn,
    metrics_fn,
    tx,
    num_examples=num_examples,
    batch_size=batch_size,
    mesh=mesh,
    steps_per_call=steps_per_call,
  )

  history: dict[str, np.ndarray] = {}
  start_epoch = 0
  if checkpointer is not None and checkpointer.latest_epoch() is not None:
    start_epoch = checkpointer.latest_epoch()
    states, meta = checkpointer.restore(start_epoch, states)
    for metric, values in meta["history"].items():
      history[metric] = np.full((num_runs, epochs), np.nan, np.float32)
      history[metric][:, :start_epoch] = np.asarray(values, np.float32)[:, :start_epoch]
    logging.info(
      "%s: resumed from epoch %d/%d (%s)", name, start_epoch, epochs, checkpointer.directory
    )

  started = time.perf_counter()
  for epoch in range(start_epoch, epochs):
    evaluate = (epoch + 1) % eval_every == 0 or epoch + 1 == epochs
    states, metrics = epoch_fn(
      states, train_data, train_keys, epoch, hparams, context, test, evaluate=evaluate
    )
    metrics = jax.device_get(metrics)
    if not np.all(np.isfinite(metrics["train_loss"])):
      bad = np.flatnonzero(~np.isfinite(metrics["train_loss"])).tolist()
      kept = checkpointer.latest_epoch() if checkpointer is not None else None
      raise FloatingPointError(
        f"{name}: the training loss became NaN/inf at epoch {epoch + 1} for runs {bad}; "
        f"lower the learning rate ({learning_rate}) or the temperature, or check the inputs "
        f"for NaN. Last checkpoint kept: epoch {kept}."
      )
    for metric, values in metrics.items():
      history.setdefault(metric, np.full((num_runs, epochs), np.nan, np.float32))[:, epoch] = values
    if on_epoch is not None:
      on_epoch(epoch + 1, metrics)
    done = epoch + 1
    if checkpointer is not None and (done % checkpoint_every == 0 or done == epochs):
      checkpointer.save(
        done,
        states,
        {"epoch": done, "history": {m: history_to_json(h[:, :done]) for m, h in history.items()}},
      )
  if checkpointer is not None:
    checkpointer.wait()
  return FitResult(params=states.params, history=history, seconds=time.perf_counter() - started)


def predict(
  apply_fn: ApplyFn, params: Params, images: np.ndarray, mesh: Mesh, batch_size: int = 1000
) -> np.ndarray:
  """Logits of one model on a whole array, in sharded chunks (e.g. precomputed soft targets)."""
  n = len(images)
  devices = mesh.devices.size
  batch_size = -(-min(batch_size, n) // devices) * devices
  chunked = _chunk({"image": images}, batch_size)[0]["image"]

  @jax.jit
  def run(params, chunked):
    def chunk(_, images):
      return None, apply_fn(params, parallel.shard_batch(images, mesh))

    return jax.lax.scan(chunk, None, chunked)[1]

  logits = run(params, jax.device_put(chunked, parallel.replicated(mesh)))
  return np.asarray(logits).reshape(-1, logits.shape[-1])[:n]
