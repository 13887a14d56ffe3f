"""What both command lines (``distill``, ``reproduce``) set up before any work, and how they
report what ends a run (``run_reported``)."""

from __future__ import annotations

import glob
import logging as std_logging
import os
import signal
import sys
import threading
from typing import Callable, Sequence, TypeVar

import jax
from absl import logging

from distill_jax import checkpoints
from distill_jax import data as data_lib
from distill_jax import files
from distill_jax import locks
from distill_jax import logs
from distill_jax import parallel

T = TypeVar("T")


def setup() -> None:
  """Progress-only logs, and the persistent XLA compilation cache (seconds per program on CPU,
  reused across runs; ``$JAX_COMPILATION_CACHE_DIR`` overrides the folder)."""
  logs.show_progress_only()
  if jax.process_index() != 0:  # several processes: process 0 reports, the others only fail
    logging.set_verbosity(logging.WARNING)
  threading.excepthook = _one_line_thread_error
  std_logging.getLogger("asyncio").addFilter(_without_traceback)
  logging.get_absl_handler().addFilter(_orbax_without_traceback)
  sys.unraisablehook = _one_line_closed_loop_error(sys.unraisablehook)
  if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/distill_jax/xla"))
  # Every program, not only those compiling >= 1 s: the arms of an experiment share their epoch
  # program (students.student_loss), and the second arm then reads the first one's from the cache.
  if not os.environ.get("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"):
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)


def _without_traceback(record: std_logging.LogRecord) -> bool:
  """asyncio's errors (e.g. orbax's save tasks after the disk filled up: "Event loop is
  closed") as one line each, the exception's message appended instead of its traceback."""
  if record.exc_info and record.exc_info[1] is not None:
    error = record.exc_info[1]
    record.msg = f"{record.getMessage()}: {type(error).__name__}: {error}"
    record.args = ()
  record.exc_info, record.exc_text, record.stack_info = None, None, None
  return True


def _orbax_without_traceback(record: std_logging.LogRecord) -> bool:
  """orbax's errors from its save threads as one line each (the main thread raises the error
  that matters, e.g. a full disk, and ``run_reported`` prints it)."""
  if f"{os.sep}orbax{os.sep}" in record.pathname:
    _without_traceback(record)
  return True


def _one_line_closed_loop_error(default_hook):
  """``sys.unraisablehook`` with tensorstore's late callbacks of a failed save (they find
  orbax's event loop closed, e.g. after a full disk; the C++ threads report them as
  "unraisable", a traceback each) as one warning line, the first time; anything else goes to
  ``default_hook``."""
  said = []

  def hook(unraisable) -> None:
    error = unraisable.exc_value
    if isinstance(error, RuntimeError) and str(error) == "Event loop is closed":
      if not said:
        said.append(True)
        logging.warning("background save callbacks ended after their event loop closed: %s", error)
      return
    default_hook(unraisable)

  return hook


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


class Terminated(KeyboardInterrupt):
  """SIGTERM, raised in the main thread as Ctrl-C raises KeyboardInterrupt, so that open
  checkpoints, locks and files are closed on the way out."""


def _raise_terminated(signum, frame) -> None:
  del signum, frame
  raise Terminated()


# What a run can fail with that the user can mend: reported as one ``error:`` line.
_USER_ERRORS = (
  data_lib.DataError,
  ValueError,
  FloatingPointError,
  locks.LockTimeout,
  parallel.BarrierTimeout,
  checkpoints.CorruptCheckpointError,
)


def saved_anything(folders: Sequence[str | None]) -> bool:
  """Whether any checkpoint was saved under ``folders`` (``<folder>/<kind>/<key>/manifests``,
  or one level deeper for a reproduction's experiments and cache)."""
  for folder in filter(None, folders):
    for depth in ("*/*", "*/*/*"):
      if glob.glob(os.path.join(folder, depth, "manifests", "*.json")):
        return True
  return False


def run_reported(work: Callable[[], T], *, folders: Sequence[str | None]) -> T:
  """``work()`` as a command line runs it: SIGTERM raises ``Terminated``; an interruption
  (Ctrl-C, SIGTERM) ends with one line saying what was interrupted and what is kept, exit 130 /
  143; a user's error (bad data or value, NaN loss, a lock held too long, a full disk, ...)
  with one ``error:`` line, exit 1. ``folders``: where checkpoints are kept (the workdir, the
  cache folder), to say "finished work is kept" only when something was saved."""
  previous = signal.signal(signal.SIGTERM, _raise_terminated)
  try:
    return work()
  except KeyboardInterrupt as interrupt:
    terminated = isinstance(interrupt, Terminated)
    where = "; ".join(getattr(interrupt, "__notes__", ()))
    kept = (
      "finished work is kept (checkpoints): run the same command again to resume"
      if saved_anything(folders)
      else "nothing was saved yet: the same command starts again"
    )
    print(
      f"interrupted by {'SIGTERM' if terminated else 'Ctrl-C (SIGINT)'}"
      f"{f' during {where}' if where else ''}; {kept}.",
      file=sys.stderr,
      flush=True,
    )
    raise SystemExit(143 if terminated else 130) from None
  except _USER_ERRORS as error:
    logging.error("%s", error)
    raise SystemExit(f"error: {error}") from None
  except OSError as error:  # disk full, permissions, a file where a folder should be, ...
    logging.error("%s", error)
    kept = (
      " Finished work is kept (checkpoints): rerun to resume." if saved_anything(folders) else ""
    )
    raise SystemExit(f"error: {files.describe(error)}.{kept}") from None
  finally:
    signal.signal(signal.SIGTERM, previous)


def usage_error(message: str) -> str:
  """A command-line mistake as one line and a pointer to the help (absl's ``UsageError``
  would print the whole help text before the message)."""
  return f"error: {message.rstrip('.')}. Run with --helpshort for the flags."
