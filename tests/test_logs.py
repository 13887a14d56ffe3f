"""``logs.show_progress_only``: this project's INFO lines and everyone's warnings, no chatter."""

import logging

from absl import logging as absl_logging

from distill_jax import logs


def _record(path, level, exc_info=None):
  return logging.LogRecord("x", level, path, 1, "message", (), exc_info)


def test_progress_only_keeps_ours_and_warnings():
  keep = logs.ProgressOnly().filter
  assert keep(_record("/site-packages/distill_jax/train.py", logging.INFO))
  assert keep(_record("/repo/experiments/distill.py", logging.INFO))
  assert not keep(_record("/site-packages/orbax/checkpoint/manager.py", logging.INFO))
  assert keep(_record("/site-packages/orbax/checkpoint/manager.py", logging.WARNING))
  try:
    raise RuntimeError("Event loop is closed")
  except RuntimeError:
    import sys

    record = _record("/site-packages/orbax/x.py", logging.ERROR, sys.exc_info())
  assert keep(record) and record.exc_info is None  # the line stays, the traceback goes


def test_show_progress_only_is_idempotent():
  logs.show_progress_only()
  logs.show_progress_only()
  handler = absl_logging.get_absl_handler()
  assert sum(isinstance(f, logs.ProgressOnly) for f in handler.filters) == 1
  assert absl_logging.get_verbosity() == absl_logging.INFO
