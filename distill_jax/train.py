"""The one trainer: many runs (seeds × λ × T) of one model trained at once.

``fit`` trains ``R`` runs side by side: one parameter set per run, stacked on a leading run axis
(``epochs.init_states``), advanced epoch by epoch by ``epochs.make_epoch_fn`` (how an epoch runs:
one scanned program, or stepped programs for conv nets on CPU), with progress logs, a NaN guard
and orbax checkpoints to resume from. ``predict`` gives one model's logits on a whole array.

A *task* is given by a pure ``loss_fn(params, batch, key, hparams, context) -> scalar`` on one
run's batch (a dict of arrays gathered from ``train_data``; ``hparams`` are this run's
hyper-parameters, ``context`` is shared by all runs, e.g. a teacher's parameters), and a pure
``metrics_fn(params, batch, key) -> {name: per-example values}`` evaluated on ``test_data`` after
every epoch (``losses.classification_metrics(apply_fn)`` gives test accuracy and cross-entropy).
The teacher, the students and the VAE are all tasks of this trainer. The optimizer is injected
as an ``optax.GradientTransformation`` (``optim.make_optimizer`` builds it from a config).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh

from distill_jax import epochs as epochs_lib
from distill_jax import optim
from distill_jax import parallel
from distill_jax.checkpoints import Checkpointer
from distill_jax.epochs import LossFn
from distill_jax.epochs import MetricsFn
from distill_jax.epochs import Params
from distill_jax.epochs import TrainState
from distill_jax.epochs import init_states
from distill_jax.epochs import make_epoch_fn
from distill_jax.report import history_to_json

ApplyFn = Callable[[Params, jax.Array], jax.Array]
History = dict[str, np.ndarray]


@dataclasses.dataclass
class FitResult:
  """Trained parameters (host arrays, leading axis = run) and per-run, per-epoch metrics
  ``[R, epochs]``."""

  params: Params
  history: History
  seconds: float


def options_from_config(section, *, num_train: int) -> dict:
  """``fit``'s ``epochs``, ``batch_size``, ``tx``, ``steps_per_call`` and ``eval_every`` from a
  ``teacher`` / ``student`` config section (its ``optimizer`` block: ``optim``; the epoch
  strategy for its model on this backend: ``epochs.choose_steps_per_call``)."""
  return {
    "epochs": section.epochs,
    "batch_size": section.batch_size,
    "tx": optim.make_optimizer(
      section.optimizer, steps_per_epoch=num_train // section.batch_size, epochs=section.epochs
    ),
    "steps_per_call": epochs_lib.choose_steps_per_call(section.steps_per_call, section.model),
    "eval_every": section.eval_every,
  }


def chain_callbacks(*callbacks) -> Callable:
  """One ``on_epoch`` callback calling each given one (None entries skipped) in order."""

  def call_all(*args):
    for callback in callbacks:
      if callback is not None:
        callback(*args)

  return call_all


def _with_weight(data: Mapping[str, np.ndarray] | parallel.ProcessRows):
  """``(data, weight)``: a weight of ones for each row this process passes (padding gets 0)."""
  if isinstance(data, parallel.ProcessRows):
    rows = len(next(iter(data.arrays.values())))
    return data, parallel.ProcessRows({"weight": np.ones(rows, np.float32)}, data.num_rows)
  return data, {"weight": np.ones(parallel.num_rows(data), np.float32)}


def fit(
  *,
  name: str,
  init_fn: Callable[[jax.Array], Params],
  loss_fn: LossFn,
  metrics_fn: MetricsFn,
  train_data: Mapping[str, np.ndarray] | parallel.ProcessRows,
  test_data: Mapping[str, np.ndarray] | parallel.ProcessRows,
  run_keys: jax.Array,
  hparams: Mapping[str, np.ndarray],
  context: Any = None,
  epochs: int,
  batch_size: int,
  tx: optax.GradientTransformation,
  mesh: Mesh,
  eval_batch_size: int = 1000,
  checkpointer: Checkpointer | None = None,
  checkpoint_every: int = 10,
  on_epoch: Callable[[int, dict[str, np.ndarray]], None] | None = None,
  steps_per_call: int | None = None,
  eval_every: int = 1,
) -> FitResult:
  """Trains ``R = len(run_keys)`` runs for ``epochs`` epochs with ``tx``, evaluating on the way.

  Args:
    name: what is trained, for logs and errors.
    init_fn: ``key -> params`` for one run.
    loss_fn: ``(params, batch, key, hparams, context) -> scalar`` for one run's batch.
    metrics_fn: ``(params, batch, key) -> {metric: per-example values}`` on a test batch;
      e.g. ``losses.classification_metrics(model.apply)``. ``key`` is fixed per run.
    train_data: arrays with a common leading example axis (e.g. ``image``, ``label``): whole
      arrays, or with several processes ``parallel.ProcessRows`` holding only this process's
      rows (``parallel.local_rows``). Stored sharded by rows over the mesh either way.
    test_data: the evaluation arrays, likewise (already mapped if the model needs it).
    run_keys: ``[R]`` PRNG keys; run r's init, shuffles and noise all derive from its key, so a
      seed gives the same numbers whatever else is trained beside it.
    hparams: per-run hyper-parameters, each an array with leading axis R (e.g. ``lam``).
    context: a pytree shared by all runs and passed to ``loss_fn`` (e.g. teacher parameters).
    epochs, batch_size: the training length; an epoch is ``num_examples // batch_size`` steps.
    tx: the optimizer (e.g. ``optim.make_optimizer(config.optimizer, ...)``), one state per run.
    mesh: a ``parallel.make_mesh`` ``(runs, data)`` mesh: the runs are split over ``runs``
      (padded to a multiple of its size, logged), each run's batch and the data sets over
      ``data``. A run's numbers do not depend on the mesh up to float rounding (the vmapped
      batch of runs per device differs; ``tests/test_runs_axis.py`` measures it).
    eval_batch_size: test chunk size (memory bound for big models), a multiple of the devices
      per run (the mesh's ``data`` axis).
    checkpointer: where to save every ``checkpoint_every`` epochs and at the end; the run
      resumes from its latest checkpoint.
    on_epoch: called after each epoch with ``(epoch, metrics of this epoch [R])``.
    steps_per_call: None: the scanned epoch (one jitted program); k: the stepped epoch (jitted
      programs of k steps; same numbers; for conv nets on CPU, ``epochs.choose_steps_per_call``).
    eval_every: evaluate after every k-th and the last epoch (parameters are the same for any k).

  Returns:
    The final per-run parameters (host NumPy arrays of every process's runs, the same on
    each process: usable on any mesh) and the per-epoch history ``[R, epochs]`` of ``train_loss``
    and each ``test_<metric>`` (NaN after epochs not evaluated; ``on_epoch`` then gets none).
  """
  _check_inputs(name, train_data, run_keys, hparams, mesh, batch_size, eval_batch_size, eval_every)
  num_runs = len(run_keys)
  placement = _place_runs(name, num_runs, mesh)
  mesh = placement.mesh
  own = functools.partial(_block, placement=placement)  # this process's runs of a padded tree
  init_keys, keys = epochs_lib.split_run_keys(run_keys)  # each run's keys are its own
  hparams = {k: np.asarray(v, np.float32) for k, v in hparams.items()}
  run_settings = _run_settings(hparams)
  keys, hparams = parallel.put_runs(own((keys, hparams)), mesh)
  context = parallel.put_replicated(context, mesh)
  num_examples = parallel.num_rows(train_data)
  train_data = parallel.put_rows(train_data, mesh)
  per_device_chunk = eval_batch_size // parallel.data_devices(mesh)
  test_chunks, test_weight = (
    parallel.put_rows(part, mesh, chunk_rows=per_device_chunk) for part in _with_weight(test_data)
  )
  test = (test_chunks, test_weight["weight"])
  epoch_fn = make_epoch_fn(
    loss_fn, metrics_fn, tx, num_examples=num_examples, batch_size=batch_size, mesh=mesh,
    steps_per_call=steps_per_call,
  )  # fmt: skip

  def run_epoch(states, epoch, evaluate):
    return epoch_fn(states, train_data, keys, epoch, hparams, context, test, evaluate=evaluate)

  def real_runs(tree):  # every process's runs, padding dropped, as host arrays
    return jax.tree.map(lambda leaf: leaf[:num_runs], parallel.gather_runs(tree, placement))

  # Checkpoints hold the real runs only, as host arrays: a run resumes on any mesh.
  states = jax.device_get(init_states(init_fn, tx, init_keys))
  states, history, start_epoch = _resume(name, checkpointer, states, num_runs, epochs)
  states = parallel.put_runs(own(states), mesh)
  started = time.perf_counter()
  try:
    states = _epoch_loop(
      name, run_epoch, states, history, range(start_epoch, epochs), eval_every=eval_every,
      checkpointer=checkpointer, checkpoint_every=checkpoint_every, on_epoch=on_epoch,
      real_runs=real_runs, run_settings=run_settings,
    )  # fmt: skip
  except BaseException:  # an error or Ctrl-C: finish writing the epochs already saved
    if checkpointer is not None:
      checkpointer.wait()
    raise
  params = real_runs(states.params)
  return FitResult(params=params, history=history, seconds=time.perf_counter() - started)


def _place_runs(name: str, num_runs: int, mesh: Mesh) -> parallel.RunPlacement:
  """``parallel.place_runs``, logging the padding when the runs do not fill the run groups."""
  placement = parallel.place_runs(mesh, num_runs)
  if placement.padded != num_runs:
    groups = parallel.run_groups(mesh)
    logging.info(
      "%s: %d runs on %d run groups: padded to %d with copies of the last run (dropped at the "
      "end; %d runs per group)", name, num_runs, groups, placement.padded,
      placement.padded // groups,
    )  # fmt: skip
  return placement


def _block(tree, placement: parallel.RunPlacement):
  """``tree``'s runs padded to ``placement.padded``, then this process's block of them."""
  padded = parallel.pad_runs(tree, placement.padded)
  return jax.tree.map(lambda leaf: leaf[placement.start : placement.stop], padded)


def _check_inputs(
  name, train_data, run_keys, hparams, mesh, batch_size, eval_batch_size, eval_every
) -> None:
  """Raises ValueError, naming ``name`` and the fix, for inputs ``fit`` cannot train on."""
  num_examples = parallel.num_rows(train_data)
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
    if np.shape(value)[:1] != (len(run_keys),):
      raise ValueError(
        f"{name}: hparams[{key!r}] must have one value per run ({len(run_keys)}), "
        f"got shape {np.shape(value)}."
      )


def _resume(
  name: str, checkpointer: Checkpointer | None, states: TrainState, num_runs: int, epochs: int
) -> tuple[TrainState, History, int]:
  """The states, the history so far and the first epoch to run: from the latest checkpoint if
  there is one, else the fresh ``states``, an empty history and epoch 0."""
  history: History = {}
  if checkpointer is None or checkpointer.latest_epoch() is None:
    return states, history, 0
  start_epoch = checkpointer.latest_epoch()
  states, meta = checkpointer.restore(start_epoch, states)
  for metric, values in meta["history"].items():
    history[metric] = np.full((num_runs, epochs), np.nan, np.float32)
    history[metric][:, :start_epoch] = np.asarray(values, np.float32)[:, :start_epoch]
  logging.info(
    "%s: resumed from epoch %d/%d (%s)", name, start_epoch, epochs, checkpointer.directory
  )
  return states, history, start_epoch


def _epoch_loop(
  name: str,
  run_epoch: Callable[[TrainState, int, bool], tuple[TrainState, dict[str, jax.Array]]],
  states: TrainState,
  history: History,
  epoch_range: range,
  *,
  eval_every: int,
  checkpointer: Checkpointer | None,
  checkpoint_every: int,
  on_epoch: Callable[[int, dict[str, np.ndarray]], None] | None,
  real_runs: Callable[[Any], Any],
  run_settings: Callable[[list[int]], str],
) -> TrainState:
  """Runs ``run_epoch(states, epoch, evaluate)`` for the epochs of ``epoch_range``: NaN guard,
  ``history`` (filled in place), ``on_epoch``, checkpoints. Returns the final states."""
  epochs = epoch_range.stop
  epoch = epoch_range.start
  try:
    for epoch in epoch_range:
      evaluate = (epoch + 1) % eval_every == 0 or epoch + 1 == epochs
      states, metrics = run_epoch(states, epoch, evaluate)
      metrics = real_runs(metrics)
      _check_finite(name, metrics, epoch, checkpointer, run_settings)
      for metric, values in metrics.items():
        row = history.setdefault(metric, np.full((len(values), epochs), np.nan, np.float32))
        row[:, epoch] = values
      if on_epoch is not None:
        on_epoch(epoch + 1, metrics)
      done = epoch + 1
      if checkpointer is not None and (done % checkpoint_every == 0 or done == epochs):
        history_so_far = {m: history_to_json(h[:, :done]) for m, h in history.items()}
        checkpointer.save(done, real_runs(states), {"epoch": done, "history": history_so_far})
  except KeyboardInterrupt as interrupt:  # Ctrl-C, SIGTERM: say where (the command line prints it)
    saved = checkpointer.latest_epoch() if checkpointer is not None else None
    kept = "nothing saved yet" if saved is None else f"epoch {saved} saved"
    interrupt.add_note(f"{name} epoch {epoch + 1}/{epochs} ({kept})")
    raise
  if checkpointer is not None:
    checkpointer.wait()
  return states


def _run_settings(hparams: Mapping[str, np.ndarray]) -> Callable[[list[int]], str]:
  """``describe(runs)``: the runs and their hyper-parameters, for errors (e.g. "runs [3, 7]
  (lam=2, temperature=8)"); at most a few settings are listed."""

  def describe(runs: list[int]) -> str:
    shown = ", ".join(map(str, runs[:8])) + (", …" if len(runs) > 8 else "")
    settings = sorted(
      {
        ", ".join(f"{key}={float(values[run]):g}" for key, values in sorted(hparams.items()))
        for run in runs
      }
    )
    where = f"runs [{shown}]"
    if settings and settings != [""]:
      extra = "; ".join(settings[:4]) + ("; …" if len(settings) > 4 else "")
      where += f" ({extra})"
    return where

  return describe


def _check_finite(
  name: str,
  metrics: dict[str, np.ndarray],
  epoch: int,
  checkpointer: Checkpointer | None,
  run_settings: Callable[[list[int]], str],
) -> None:
  """The NaN guard: raises FloatingPointError naming the runs, their hyper-parameters and the
  metric if any run's training loss or evaluated test metric is NaN or infinite."""
  bad_metrics = [m for m, values in metrics.items() if not np.all(np.isfinite(values))]
  if not bad_metrics:
    return
  bad = sorted({int(r) for m in bad_metrics for r in np.flatnonzero(~np.isfinite(metrics[m]))})
  kept = checkpointer.latest_epoch() if checkpointer is not None else None
  kept_text = (
    "no checkpoint was saved"
    if kept is None
    else f"the last checkpoint, epoch {kept}, is kept (resuming restarts from it)"
  )
  raise FloatingPointError(
    f"{name}: {' and '.join(bad_metrics)} became NaN/inf at epoch {epoch + 1} for "
    f"{run_settings(bad)}; lower the learning rate (or the temperature / λ), or check the "
    f"inputs for NaN; {kept_text}."
  )


@functools.lru_cache(maxsize=16)
def _predict_program(apply_fn: ApplyFn, mesh: Mesh):
  """The jitted ``(params, chunked row-sharded images) -> logits [chunks, batch, C]``, one per
  (apply_fn, mesh): repeated ``predict`` calls reuse its compilations (one per shape)."""

  # Replicated output: every process can read all logits (several processes: jax.distributed).
  @functools.partial(jax.jit, out_shardings=parallel.replicated(mesh))
  def run(params, chunked):
    def chunk(_, index):
      images = parallel.shard_batch(parallel.take_chunk(chunked, index, mesh), mesh)
      return None, apply_fn(params, images)

    return jax.lax.scan(chunk, None, jnp.arange(parallel.num_chunks(chunked, mesh)))[1]

  return run


def predict(
  apply_fn: ApplyFn, params: Params, images: np.ndarray, mesh: Mesh, batch_size: int = 1000
) -> np.ndarray:
  """Logits of one model on a whole array, in sharded chunks (e.g. precomputed soft targets).

  The compiled program is cached per ``(apply_fn, mesh)`` and chunk shape: pass the same
  ``apply_fn`` (e.g. ``model.apply``) to reuse it. With several processes each computes every
  row on its own devices (``parallel.process_mesh``) when its run groups are its own.
  """
  n = len(images)
  # No runs here: every device (of this process, if its run groups are its own) takes its share.
  mesh = parallel.all_on_data(parallel.process_mesh(mesh))
  params = parallel.put_replicated(params, mesh)
  devices = parallel.data_devices(mesh)
  batch_size = -(-min(batch_size, n) // devices) * devices
  placed = parallel.put_rows({"image": images}, mesh, chunk_rows=batch_size // devices)["image"]
  try:
    run = _predict_program(apply_fn, mesh)
  except TypeError:  # an unhashable apply_fn: compile for this call only
    run = _predict_program.__wrapped__(apply_fn, mesh)
  return parallel.rows_from_chunk_outputs(np.asarray(run(params, placed)), n, mesh)
