"""What both command lines (``distill``, ``reproduce``) set up before any work."""

from __future__ import annotations

import logging as std_logging
import os

import jax
from absl import logging


class _ProgressOnly(std_logging.Filter):
  """Shows this project's INFO logs and everyone's warnings; hides orbax/tfds/jax chatter."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or any(
      part in record.pathname for part in ("/distill_jax/", "/experiments/")
    )


def setup() -> None:
  """Progress-only logs, and the persistent XLA compilation cache (seconds per program on CPU,
  reused across runs; ``$JAX_COMPILATION_CACHE_DIR`` overrides the folder)."""
  logging.get_absl_handler().addFilter(_ProgressOnly())
  if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/distill_jax/xla"))
