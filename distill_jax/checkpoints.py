"""Orbax checkpoints keyed by configuration, so finished work is reused and runs resume.

A run's directory is ``<workdir>/<kind>/<config_key(config)>``: the same configuration maps to
the same directory on every machine, so a trained teacher is reused by the next experiment that
needs it and an interrupted student run restarts from its last saved epoch.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from distill_jax import files
from distill_jax import integrity
from distill_jax import locks
from distill_jax import parallel


def config_key(config: Any) -> str:
  """A short stable hash of a JSON-able configuration (dicts are key-sorted)."""
  text = json.dumps(config, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


# Key fields that fingerprint content (``fingerprints``), and how a log line names them.
CONTENT_FIELDS = {
  "data": "the data",
  "phi_key": "φ",
  "source_key": "the source set",
  "teacher_key": "the teacher",  # a student arm's teacher: its settings and its inputs
}


def why_new(directory: str, key_config: Any) -> str | None:
  """For a checkpoint directory with nothing saved yet: which content changed, if a sibling
  directory (same kind) holds the same settings computed from other content (e.g. "the data
  changed since 3f2a…"); None when no sibling differs only in content."""
  parent, own = os.path.split(os.path.abspath(directory))
  wanted = json.loads(json.dumps(key_config, sort_keys=True, default=str))
  names = sorted(os.listdir(parent)) if os.path.isdir(parent) else []
  for name in names:
    path = os.path.join(parent, name, "config.json")
    if name == own or not os.path.isfile(path):
      continue
    try:
      with open(path) as f:
        other = json.load(f)
    except (OSError, ValueError):
      continue
    differing = sorted(k for k in set(other) | set(wanted) if other.get(k) != wanted.get(k))
    if differing and all(k in CONTENT_FIELDS for k in differing):
      changed = " and ".join(CONTENT_FIELDS[k] for k in differing)
      return f"{changed} changed since {name}"
  return None


class CorruptCheckpointError(RuntimeError):
  """A saved epoch does not match its checksum manifest."""


class Checkpointer:
  """Saves and restores ``(state pytree, JSON metadata)`` per epoch in one directory.

  Holds the directory's lock (``locks.hold``) from construction to ``close()``: another run
  that needs the same directory waits, then finds the finished work. Use it as a context
  manager (``with Checkpointer(...) as checkpointer:``) so the lock is released on errors too.

  An epoch counts as saved only once its checksum manifest is written
  (``manifests/<epoch>.json``: size and sha256 of each of its files, written after orbax has
  finished and renamed the step into place); the previous saved epoch is deleted only after
  that, so an interruption at any moment of a save (SIGKILL, Ctrl-C, a full disk) leaves at
  least the last verified epoch. On opening, the steps are checked newest first and the newest
  one that matches its manifest is the one resumed from: a newer step without a manifest (its
  save was cut short) is removed, a newer step that does not match its manifest (bit flips,
  truncation) is set aside as ``set_aside/<epoch>.corrupt-<time>`` for a post-mortem, and
  older steps and leftovers (orbax's temporary folders, manifests without a step) are
  removed, each with one log line.
  """

  def __init__(
    self,
    directory: str,
    config: Any | None = None,
    lock_timeout: float | None = None,
  ):
    self.directory = os.path.abspath(directory)
    self._exit_stack = contextlib.ExitStack()
    self._manager = None
    what = os.path.basename(os.path.dirname(self.directory)) or "checkpoint"
    try:
      if parallel.is_primary():  # the other processes of a multi-process run wait for it
        self._exit_stack.enter_context(locks.hold(self.directory, what=what, timeout=lock_timeout))
        self._prepare_directory(config, what)
      parallel.barrier(f"checkpointer {self.directory}")
      self._latest = self._saved_epochs()[-1] if self._saved_epochs() else None
      if parallel.is_primary():
        self._manager = ocp.CheckpointManager(
          self._folder,
          options=ocp.CheckpointManagerOptions(
            # Never deleted by orbax: ``save`` drops older steps once the new one is verified.
            max_to_keep=None,
            create=False,
            # Synchronous: ``save`` waits for its files anyway (to checksum them), and an
            # interrupt inside an asynchronous save could leave orbax waiting (up to its
            # 600 s timeout) for a step folder whose creation never ran.
            enable_async_checkpointing=False,
            multiprocessing_options=_on_this_process(),
          ),
          item_names=("state", "meta"),
        )
    except BaseException:
      self._exit_stack.close()
      raise

  @property
  def _folder(self) -> str:
    return os.path.join(self.directory, "checkpoints")

  def _saved_epochs(self) -> list[int]:
    """The epochs whose orbax step folder is in place (orbax renames a finished save into place;
    after ``_prepare_directory``, only the verified latest one)."""
    folder = self._folder
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(int(name) for name in names if name.isdigit())

  def _prepare_directory(self, config: Any | None, what: str) -> None:
    """Keeps only the newest verified epoch (see the class docstring) and writes config.json."""
    os.makedirs(self._folder, exist_ok=True)
    for name in sorted(os.listdir(self._folder)):
      if not name.isdigit():  # a save cut short before orbax renamed it into place
        _remove(os.path.join(self._folder, name))
        logging.info("%s: removed %s, a save that did not finish.", what, name)
    verified = None
    for epoch in reversed(self._saved_epochs()):
      folder, manifest = self._step_paths(epoch)
      if verified is not None:  # older than the verified one: superseded
        _remove(folder)
        continue
      if not os.path.exists(manifest):
        _remove(folder)
        logging.warning(
          "%s: epoch %d in %s was not finished saving (no checksum manifest); removed.",
          what,
          epoch,
          self.directory,
        )
        continue
      problem = integrity.problem(folder, manifest)
      if problem is None:
        verified = epoch
        continue
      aside = os.path.join(self.directory, "set_aside", f"{epoch}")
      os.makedirs(os.path.dirname(aside), exist_ok=True)
      os.replace(folder, aside)
      moved = integrity.set_aside(aside)
      os.remove(manifest)
      logging.warning(
        "%s: epoch %d in %s is not loaded: %s; set aside as %s.",
        what,
        epoch,
        self.directory,
        problem,
        moved,
      )
    manifests = os.path.join(self.directory, "manifests")
    for name in os.listdir(manifests) if os.path.isdir(manifests) else []:
      if name != f"{verified}.json":  # a step deleted, or a manifest cut short
        _remove(os.path.join(manifests, name))
    if config is not None:  # for humans: what this directory holds
      files.write_json(
        os.path.join(self.directory, "config.json"), config, indent=1, sort_keys=True, default=str
      )

  def _step_paths(self, epoch: int) -> tuple[str, str]:
    """(the epoch's orbax step folder, its checksum manifest)."""
    return (
      os.path.join(self.directory, "checkpoints", str(epoch)),
      os.path.join(self.directory, "manifests", f"{epoch}.json"),
    )

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, exc_type, exc_value, traceback) -> None:
    if exc_type is None:
      self.close()
      return
    try:  # an error is on its way out: closing must not replace it
      self.close()
    except Exception as close_error:  # noqa: BLE001
      logging.warning("closing %s after an error failed too: %s", self.directory, close_error)

  def latest_epoch(self) -> int | None:
    return self._latest

  def save(self, epoch: int, state: Any, meta: dict) -> None:
    """Saves epoch ``epoch`` (``state``: host arrays, the same on every process) and, once it is
    on disk, its checksum manifest. Process 0 writes; with several processes the others only
    note the epoch (they pass the same gathered values). A full disk is raised as
    ``OSError(ENOSPC)`` naming the directory (orbax reports it as a ValueError)."""
    if self._manager is None:
      self._latest = epoch
      return
    try:
      self._manager.save(
        epoch,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
      )
      self._manager.wait_until_finished()  # the files are final: checksum them
    except Exception as error:
      if "No space left on device" in str(error) or "os_error_code='28'" in str(error):
        raise OSError(errno.ENOSPC, "No space left on device", self.directory) from error
      raise
    folder, manifest = self._step_paths(epoch)
    integrity.write_manifest(folder, manifest)  # from here on, epoch ``epoch`` is the saved one
    self._latest = epoch
    for step in self._manager.all_steps():
      if step < epoch:  # step folder first: a manifest never outlives its step
        self._manager.delete(step)
        _remove(self._step_paths(step)[1])

  def restore(self, epoch: int, like: Any) -> tuple[Any, dict]:
    """The state (host NumPy arrays with ``like``'s structure, shapes and dtypes) and metadata
    of epoch ``epoch``; refuses an epoch whose files do not match their manifest. Every process
    reads the files itself (no collective)."""
    problem = integrity.problem(*self._step_paths(epoch))
    if problem is not None:
      raise CorruptCheckpointError(
        f"{self.directory}: epoch {epoch} cannot be loaded: {problem}. Delete the directory "
        "(or rerun: a corrupt latest epoch is set aside on opening)."
      )
    like = jax.tree.map(lambda leaf: np.zeros(np.shape(leaf), leaf.dtype), like)
    with ocp.Checkpointer(
      ocp.CompositeCheckpointHandler(), multiprocessing_options=_on_this_process(reader=True)
    ) as reader:
      restored = reader.restore(
        self._step_paths(epoch)[0],
        args=ocp.args.Composite(state=ocp.args.StandardRestore(like), meta=ocp.args.JsonRestore()),
      )
    return restored.state, restored.meta

  def wait(self) -> None:
    if self._manager is not None:
      self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves, closes the manager and releases the lock (idempotent)."""
    try:
      if self._manager is not None:
        self._manager.close()
        self._manager = None
    finally:
      self._exit_stack.close()


def _remove(path: str) -> None:
  """Deletes a file or folder (gone already is fine)."""
  if os.path.isdir(path):
    shutil.rmtree(path, ignore_errors=True)
  elif os.path.lexists(path):
    os.remove(path)


def _on_this_process(reader: bool = False) -> ocp.options.MultiprocessingOptions:
  """Orbax on one process, never waiting for the others: process 0 writes (``reader``: each
  process reads for itself). With one process, orbax's defaults."""
  if jax.process_count() == 1:
    return ocp.options.MultiprocessingOptions()
  me = jax.process_index() if reader else 0
  return ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})


# Settings that change how epochs are dispatched or how often they are scored, never the
# trained parameters: left out of checkpoint keys so that changing them reuses the work.
DISPATCH_ONLY_FIELDS = ("steps_per_call", "eval_every")


def training_settings(part_config) -> dict:
  """A teacher's / students' config section as it enters checkpoint keys (all settings that
  change the parameters)."""
  return {k: v for k, v in part_config.to_dict().items() if k not in DISPATCH_ONLY_FIELDS}
