"""The one exception type raised for bad or missing dataset files."""

from __future__ import annotations

FIX_HINT = (
  "re-download it, or point --data_dir / DISTILL_DATA_DIR at a folder "
  "holding the four official IDX .gz files"
)


class DataError(ValueError):
  """A dataset file or argument is missing or invalid; the message says how to fix it."""
