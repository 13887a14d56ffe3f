"""TensorBoard event files of a finished experiment, written with tensorboardX (no TensorFlow).

``write(results, workdir, figure_paths)`` writes, under ``<workdir>/tensorboard/``, one
TensorBoard run per trained model, so ``tensorboard --logdir <workdir>/tensorboard`` (or a folder
of several workdirs) overlays them:

* ``teacher/k<k>``: teacher k's per-epoch ``train/loss``, ``test/accuracy``,
  ``test/cross_entropy`` (on φ(source test));
* ``<arm>/t<k>_s<seed>``: each student run's per-epoch ``train/loss``, ``test/accuracy``,
  ``test/cross_entropy`` (``<arm>`` is the results' arm label, with ``[lam=…,T=…]`` for grids;
  ``t-1`` for no_teacher), with its hyper-parameters (mapping, arm, λ, T, seed, teacher) for the
  HParams dashboard, whose metrics are the last values of those three curves;
* ``<arm>/mean``: the mean over the arm's runs;
* ``vae`` (φ_vae experiments): the VAE's per-epoch ``vae/<metric>`` (−ELBO, KL, …);
* ``figures``: the run's PNG figures as images.

Epochs are the steps (1 … E); epochs not evaluated (``eval_every``) are skipped. The numbers are
the ones in results.json (``tests/test_summaries.py`` reads them back). During a run,
``LiveCurves`` writes the teachers' and students' curves as each epoch ends (TensorBoard follows
a running experiment); ``write`` then writes each run's folder from the results (curves,
HParams, text; files ending in ``.final``) and records a hash of what it wrote
(``.written.sha256``). A folder whose hash matches is left alone (a rerun of a finished
experiment adds nothing twice); any other is cleared and rewritten, so what TensorBoard shows
is always the latest results.json: a rerun with another λ, T or seed set in the same workdir
never leaves the earlier run's curves, HParams or figures behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time

import numpy as np

from distill_jax import files
from distill_jax import parallel

SCALARS = {"train_loss": "train/loss", "test_accuracy": "test/accuracy"}
SCALARS["test_cross_entropy"] = "test/cross_entropy"
FOLDER = "tensorboard"


def _safe(name: str) -> str:
  """A run folder name: letters, digits and ``.=,_-`` kept, the rest ``_``."""
  return re.sub(r"[^\w.=,\-]", "_", name)


def _curves(history: dict, row: int | None = None) -> dict[str, list[tuple[int, float]]]:
  """``{tag: [(epoch, value), ...]}`` of every metric of ``history`` (``[runs, epochs]`` lists,
  or ``[epochs]`` with ``row`` None for a mean); epochs not evaluated (None, NaN) left out."""
  curves = {}
  for metric, tag in SCALARS.items():
    if metric in history:
      values = np.asarray(history[metric], np.float64)
      values = values if row is None else values[row]
      points = [(e, float(v)) for e, v in enumerate(values, start=1) if np.isfinite(v)]
      if points:
        curves[tag] = points
  return curves


def _add_curves(writer, curves: dict[str, list[tuple[int, float]]]) -> None:
  for tag, points in curves.items():
    for epoch, value in points:
      writer.add_scalar(tag, value, epoch)


def _mean_over_runs(history: list) -> np.ndarray:
  """``[runs, epochs]`` → ``[epochs]`` means; NaN where no run was evaluated."""
  values = np.asarray(history, np.float64)
  evaluated = np.isfinite(values).any(axis=0)
  means = np.full(values.shape[1], np.nan)
  means[evaluated] = np.nanmean(values[:, evaluated], axis=0)
  return means


def _import_tensorboardx():
  """tensorboardX, imported without torch: its writer module imports torch whenever torch is
  installed (3.5 s here, e.g. with the ``test`` extra), only to accept torch tensors, which we
  never pass. Unless torch is loaded already, ``import torch`` fails during that import (its
  documented fallback), and works again right after."""
  if "tensorboardX" in sys.modules or "torch" in sys.modules:
    import tensorboardX

    return tensorboardX
  sys.modules["torch"] = None  # makes `import torch` raise ImportError
  try:
    import tensorboardX
  finally:
    del sys.modules["torch"]
  return tensorboardX


def run_label(arm: str, lam: float, temperature: float, grid: bool) -> str:
  """The results' label of an arm's runs at (λ, T): ``arm``, or ``arm[lam=…,T=…]`` in a grid."""
  return f"{arm}[lam={lam:g},T={temperature:g}]" if grid else arm


def student_folder(label: str, seed: int, teacher: int) -> str:
  return os.path.join(_safe(label), f"t{teacher}_s{seed}")


def teacher_folder(k: int) -> str:
  return os.path.join("teacher", f"k{k}")


FINAL = ".final"  # the file-name suffix of what ``write`` adds once a run is finished


class LiveCurves:
  """An ``on_epoch(epoch, metrics)`` callback writing each run's metrics of the epoch as it ends
  (run r into ``<workdir>/tensorboard/<folders[r]>``), so TensorBoard follows a running
  experiment; ``write`` then rewrites each folder from the results. A context manager: the
  files close on exit. ``enabled=False`` (processes other than the first) writes nothing.

  A grid has hundreds of runs, so each run's file is tensorboardX's synchronous
  ``EventsWriter`` (no writer thread per run, unlike ``SummaryWriter``), and the files are
  flushed to disk (an fsync each) at most every ``flush_seconds``, and on exit."""

  def __init__(
    self, workdir: str, folders: list[str], enabled: bool = True, flush_seconds: float = 5.0
  ):
    self._root, self._folders, self._enabled = os.path.join(workdir, FOLDER), folders, enabled
    self._flush_seconds, self._flushed = flush_seconds, time.monotonic()
    self._files = {}

  def __call__(self, epoch: int, metrics: dict) -> None:
    if not self._enabled:
      return
    tensorboardx = _import_tensorboardx()
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    now = time.time()
    for row, folder in enumerate(self._folders):
      events = self._files.get(folder)
      if events is None:
        os.makedirs(os.path.join(self._root, folder), exist_ok=True)
        events = EventsWriter(os.path.join(self._root, folder, "events"))
        # A run resumed from its checkpoint at this epoch: TensorBoard drops what an
        # interrupted attempt wrote from here on (its "purge orphaned data"), so each epoch
        # shows once. A fresh run starts at epoch 1 and drops nothing.
        restart = SessionLog(status=SessionLog.START)
        events.write_event(Event(step=epoch, wall_time=now, session_log=restart))
        self._files[folder] = events
      for metric, tag in SCALARS.items():
        value = np.asarray(metrics.get(metric, [np.nan] * len(self._folders)))[row]
        if np.isfinite(value):
          summary = tensorboardx.summary.scalar(tag, float(value))
          events.write_event(Event(summary=summary, step=epoch, wall_time=now))
    if time.monotonic() - self._flushed >= self._flush_seconds:
      self.flush()

  def flush(self) -> None:
    for events in self._files.values():
      events.flush()
    self._flushed = time.monotonic()

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    for events in self._files.values():
      events.close()
    self._files.clear()


SIGNATURE = ".written.sha256"  # in each folder ``write`` wrote: the hash of its content


def _signature(content) -> str:
  text = json.dumps(content, sort_keys=True, default=str, allow_nan=True)
  return hashlib.sha256(text.encode()).hexdigest()


def _holds(folder: str, content) -> bool:
  """Whether ``folder`` holds exactly ``content`` as ``write`` last wrote it."""
  try:
    with open(os.path.join(folder, SIGNATURE)) as file:
      return file.read().strip() == _signature(content)
  except OSError:
    return False


def _clear(folder: str) -> None:
  """Removes ``folder``'s event files (live or final) and its signature."""
  if not os.path.isdir(folder):
    return
  for name in os.listdir(folder):
    if name.startswith("events.") or name == SIGNATURE:
      os.remove(os.path.join(folder, name))


def write(results: dict, workdir: str, figure_paths: list[str] = ()) -> str:
  """Writes the experiment's TensorBoard runs (module docstring); returns their folder."""
  from PIL import Image

  tensorboardx = _import_tensorboardx()  # before any tensorboardX submodule (no torch)
  from tensorboardX.proto.event_pb2 import Event, SessionLog

  hparams = tensorboardx.summary.hparams
  root = os.path.join(workdir, FOLDER)

  def rewrite(folder: str, content, fill) -> None:
    """``fill(writer)`` into ``root/folder`` unless it already holds ``content``."""
    folder = os.path.join(root, folder)
    if _holds(folder, content):
      return
    _clear(folder)
    with tensorboardx.SummaryWriter(folder, filename_suffix=FINAL) as writer:
      # TensorBoard drops what it read of the files just removed ("purge orphaned data").
      restart = Event(
        step=0, wall_time=time.time(), session_log=SessionLog(status=SessionLog.START)
      )
      writer.file_writer.add_event(restart)
      fill(writer)
    files.write_text(os.path.join(folder, SIGNATURE), _signature(content))

  mapping = str(results.get("config", {}).get("mapping", ""))
  teacher = results.get("teacher", {})
  for k, seed in enumerate(teacher.get("seeds", []) if "history" in teacher else []):
    curves = _curves(teacher["history"], row=k)
    text = f"seed {seed}, trained on {teacher.get('trained_on', '')}"

    def fill_teacher(writer, curves=curves, text=text):
      _add_curves(writer, curves)
      writer.add_text("teacher", text)

    rewrite(teacher_folder(k), {"curves": curves, "text": text}, fill_teacher)
  vae_history = results.get("phi", {}).get("history")
  if vae_history:  # φ_vae's VAE: each metric it logs per epoch

    def fill_vae(writer):
      for metric, values in vae_history.items():
        for epoch, value in enumerate(values, start=1):
          if value is not None and np.isfinite(value):
            writer.add_scalar(f"vae/{metric}", float(value), epoch)

    rewrite("vae", vae_history, fill_vae)
  for label, arm in results.get("arms", {}).items():
    for row, (seed, k) in enumerate(zip(arm["seeds"], arm["teachers"])):
      curves = _curves(arm, row=row)
      run_hparams = {
        "mapping": mapping,
        "arm": arm["arm"],
        "lam": float(arm["lam"]),
        "temperature": float(arm["temperature"]),
        "seed": int(seed),
        "teacher": int(k),
      }

      def fill_student(writer, curves=curves, run_hparams=run_hparams):
        _add_curves(writer, curves)
        # The session's start and end only, no per-run experiment summary: TensorBoard then
        # builds the experiment from all sessions (which hyper-parameters differ, each one's
        # values) and takes as metrics the runs' own curves, showing the last value of each.
        _, session_start, session_end = hparams(run_hparams, {})
        writer.file_writer.add_summary(session_start)
        writer.file_writer.add_summary(session_end)

      content = {"curves": curves, "hparams": run_hparams}
      rewrite(student_folder(label, seed, k), content, fill_student)
    mean_curves = _curves({m: _mean_over_runs(arm[m]) for m in SCALARS if m in arm})
    rewrite(
      os.path.join(_safe(label), "mean"),
      mean_curves,
      lambda writer, curves=mean_curves: _add_curves(writer, curves),
    )
  pictures = [p for p in figure_paths if os.path.exists(p)]
  if pictures:
    images = {}
    for path in pictures:
      with Image.open(path) as image:
        images[os.path.splitext(os.path.basename(path))[0]] = np.asarray(image.convert("RGB"))
    digests = {
      name: hashlib.sha256(pixels.tobytes()).hexdigest() for name, pixels in images.items()
    }

    def fill_figures(writer):
      for name, pixels in images.items():
        writer.add_image(name, pixels, 0, dataformats="HWC")

    rewrite("figures", digests, fill_figures)
  return root


def write_study_hparams(study: dict, folder: str) -> str:
  """A study as TensorBoard HParams (``<folder>/<point>``): the swept values as hyperparameters,
  each arm's effects (mean and interval ends, accuracy and cross-entropy) as metrics, so the
  HParams dashboard tables and plots the study; rewritten whole on every call."""
  from distill_jax import study as study_lib

  if not parallel.is_primary():
    return folder
  tensorboardx = _import_tensorboardx()
  shutil.rmtree(folder, ignore_errors=True)
  for point in study["points"]:
    metrics = {}
    for arm, effect in point["effects"].items():
      for metric, short in (("test_accuracy", "accuracy"), ("test_cross_entropy", "cross_entropy")):
        for end in ("mean", "low", "high"):
          if effect[metric][end] is not None:
            metrics[f"{_safe(arm)}/delta_{short}_{end}"] = float(effect[metric][end])
    hparams = {
      path: value if isinstance(value, (bool, int, float, str)) else str(value)
      for path, value in point["values"].items()
    }
    run = study_lib.point_name(point["values"])
    experiment, start, end = tensorboardx.summary.hparams(hparams, metrics)
    with tensorboardx.SummaryWriter(os.path.join(folder, _safe(run))) as writer:
      for summary in (experiment, start, end):  # what add_hparams writes, in this folder
        writer.file_writer.add_summary(summary)
      for tag, value in metrics.items():
        writer.add_scalar(tag, value, 0)
  return folder
