"""Orbax checkpoints keyed by configuration, so finished work is reused and runs resume.

A run's directory is ``<workdir>/<kind>/<config_key(config)>``: the same configuration maps to
the same directory on every machine, so a trained teacher is reused by the next experiment that
needs it and an interrupted student run restarts from its last saved epoch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

from distill_jax import files
from distill_jax import locks


def config_key(config: Any) -> str:
  """A short stable hash of a JSON-able configuration (dicts are key-sorted)."""
  text = json.dumps(config, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


class Checkpointer:
  """Saves and restores ``(state pytree, JSON metadata)`` per epoch in one directory.

  Holds the directory's lock (``locks.hold``) from construction to ``close()``: another run
  that needs the same directory waits, then finds the finished work. Use it as a context
  manager (``with Checkpointer(...) as checkpointer:``) so the lock is released on errors too.
  """

  def __init__(
    self,
    directory: str,
    config: Any | None = None,
    max_to_keep: int = 1,
    lock_timeout: float | None = None,
  ):
    self.directory = os.path.abspath(directory)
    self._exit_stack = contextlib.ExitStack()
    self._manager = None
    what = os.path.basename(os.path.dirname(self.directory)) or "checkpoint"
    self._exit_stack.enter_context(locks.hold(self.directory, what=what, timeout=lock_timeout))
    try:
      os.makedirs(self.directory, exist_ok=True)
      if config is not None:  # for humans: what this directory holds
        files.write_json(
          os.path.join(self.directory, "config.json"),
          config,
          indent=1,
          sort_keys=True,
          default=str,
        )
      self._manager = ocp.CheckpointManager(
        os.path.join(self.directory, "checkpoints"),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        item_names=("state", "meta"),
      )
    except BaseException:
      self._exit_stack.close()
      raise

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()

  def latest_epoch(self) -> int | None:
    return self._manager.latest_step()

  def save(self, epoch: int, state: Any, meta: dict) -> None:
    self._manager.save(
      epoch,
      args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
    )

  def restore(self, epoch: int, like: Any) -> tuple[Any, dict]:
    """Restores the state with ``like``'s structure, dtypes and shardings."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    restored = self._manager.restore(
      epoch,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
      ),
    )
    return restored.state, restored.meta

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves, closes the manager and releases the lock (idempotent)."""
    try:
      if self._manager is not None:
        self._manager.close()
        self._manager = None
    finally:
      self._exit_stack.close()


# Settings that change how epochs are dispatched or how often they are scored, never the
# trained parameters: left out of checkpoint keys so that changing them reuses the work.
DISPATCH_ONLY_FIELDS = ("steps_per_call", "eval_every")


def training_settings(part_config) -> dict:
  """A teacher's / students' config section as it enters checkpoint keys (all settings that
  change the parameters)."""
  return {k: v for k, v in part_config.to_dict().items() if k not in DISPATCH_ONLY_FIELDS}
