"""Locks on shared folders, so that concurrent runs share finished work and never corrupt it.

Two runs may need the same teacher, VAE, stylized set or tfds dataset at once (one
``--cache_dir`` for several experiments, or two runs in one workdir). ``hold(folder)`` takes an
exclusive lock on ``<parent>/.locks/<name>.lock`` (``filelock``: an OS file lock, released by the kernel when
its process dies, so a crashed run never leaves a stale lock): the first run trains or writes,
the others wait and then find the finished entry and reuse it. While a run waits it says who
holds the lock (process id, host, command, since when: ``<lock file>.owner``), and it gives up
after ``timeout`` seconds (default ``DEFAULT_TIMEOUT_S``, or ``$DISTILL_LOCK_TIMEOUT``) with an
error naming the holder: no wait is unbounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from typing import Iterator

import filelock
from absl import logging

from distill_jax import env
from distill_jax import files

TIMEOUT_ENV = "DISTILL_LOCK_TIMEOUT"
DEFAULT_TIMEOUT_S = 3 * 3600.0  # longer than any one cache entry takes here (the VAE: ~10 min)


class LockTimeout(RuntimeError):
  """Another run held a lock for longer than the timeout."""


def default_timeout() -> float:
  """``$DISTILL_LOCK_TIMEOUT`` seconds if set, else ``DEFAULT_TIMEOUT_S``."""
  return env.seconds(TIMEOUT_ENV, DEFAULT_TIMEOUT_S, minimum=0)


def holder(lock_path: str) -> str:
  """Who holds ``lock_path``, as its owner file says (or that it does not say)."""
  try:
    with open(lock_path + ".owner") as file:
      owner = json.load(file)
    return f"process {owner['pid']} on {owner['host']} since {owner['since']} ({owner['command']})"
  except (OSError, ValueError, KeyError):
    return "another process (it wrote no owner file yet)"


@contextlib.contextmanager
def hold(
  folder: str, *, what: str, timeout: float | None = None, lock_path: str | None = None
) -> Iterator[None]:
  """Holds the lock of ``folder`` (a cache entry, checkpoint folder or dataset) for the block.

  ``what`` names the entry in messages (e.g. "teacher"). Waits at most ``timeout`` seconds
  (default: ``default_timeout()``), then raises ``LockTimeout`` naming the holder. The lock
  file is ``lock_path``, by default ``<parent>/.locks/<name>.lock`` (out of the way of
  listings of the parent).
  """
  timeout = default_timeout() if timeout is None else timeout
  if lock_path is None:
    parent, name = os.path.split(os.path.abspath(folder).rstrip(os.sep))
    lock_path = os.path.join(parent, ".locks", name + ".lock")
  os.makedirs(os.path.dirname(lock_path), exist_ok=True)
  # One lock object per path in this process, re-entrant: a process never waits for itself
  # (e.g. a resumed fit that opens a folder again before the first handle is closed).
  lock = filelock.FileLock(lock_path, thread_local=False, is_singleton=True)
  try:
    lock.acquire(timeout=0)
  except filelock.Timeout:
    logging.info(
      "%s: %s is locked by %s; waiting for it (at most %.0f s)",
      what,
      folder,
      holder(lock_path),
      timeout,
    )
    started = time.monotonic()
    try:
      lock.acquire(timeout=timeout)
    except filelock.Timeout:
      raise LockTimeout(
        f"{what}: {folder} is still locked after {timeout:.0f} s by {holder(lock_path)}. That "
        f"run is still writing it: wait for it or stop it, or set ${TIMEOUT_ENV} (seconds) "
        "to wait longer."
      ) from None
    logging.info("%s: got the lock after %.0f s", what, time.monotonic() - started)
  first_holder = lock.lock_counter == 1
  try:
    if first_holder:
      files.write_json(
        lock_path + ".owner",
        {
          "pid": os.getpid(),
          "host": socket.gethostname(),
          "since": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": " ".join(sys.argv)[:300],
        },
      )
    yield
  finally:
    if first_holder:
      with contextlib.suppress(OSError):
        os.remove(lock_path + ".owner")
    lock.release()
