"""What the logs show: this project's progress, everyone's warnings, no library chatter.

``show_progress_only()`` is what the command lines set up, for scripts and notebooks too: orbax,
tfds and jax log many INFO lines per checkpoint and dataset (144 of 265 lines of a tiny
experiment run from a script were orbax's).
"""

from __future__ import annotations

import logging as std_logging

from absl import logging


class ProgressOnly(std_logging.Filter):
  """Shows this project's INFO logs and everyone's warnings; hides orbax/tfds/jax chatter, and
  other libraries' tracebacks (their message line stays; the error that matters reaches the
  user as this project's one ``error:`` line)."""

  def filter(self, record):
    ours = any(part in record.pathname for part in ("/distill_jax/", "/experiments/"))
    if not ours and record.exc_info:
      record.exc_info, record.exc_text = None, None
    return ours or record.levelno >= std_logging.WARNING


def show_progress_only() -> None:
  """INFO progress of this project on absl's handler (stderr), nothing else below WARNING.
  Idempotent."""
  handler = logging.get_absl_handler()
  if not any(isinstance(f, ProgressOnly) for f in handler.filters):
    handler.addFilter(ProgressOnly())
  logging.set_verbosity(logging.INFO)
  logging.use_absl_handler()
