"""What both command lines (``distill``, ``reproduce``) set up before any work."""

from __future__ import annotations

import os
import threading

import jax
from absl import logging

from distill_jax import logs


def setup() -> None:
  """Progress-only logs, and the persistent XLA compilation cache (seconds per program on CPU,
  reused across runs; ``$JAX_COMPILATION_CACHE_DIR`` overrides the folder)."""
  logs.show_progress_only()
  if jax.process_index() != 0:  # several processes: process 0 reports, the others only fail
    logging.set_verbosity(logging.WARNING)
  threading.excepthook = _one_line_thread_error
  if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/distill_jax/xla"))
  # Every program, not only those compiling >= 1 s: the arms of an experiment share their epoch
  # program (students.student_loss), and the second arm then reads the first one's from the cache.
  if not os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def _one_line_thread_error(args: threading.ExceptHookArgs) -> None:
  """A background thread's failure (e.g. orbax's save threads after the disk filled up) as one
  warning line, not a traceback: the main thread reports the error that matters."""
  if args.exc_type is SystemExit:
    return
  logging.warning(
    "background thread %s stopped: %s: %s",
    getattr(args.thread, "name", "?"),
    args.exc_type.__name__,
    str(args.exc_value).splitlines()[0] if str(args.exc_value) else "",
  )
