"""Writing files so that a crash, a full disk or a concurrent reader never sees half a file.

``atomic_write(path)`` gives a file object on a temporary file next to ``path``; only when the
block finishes without error is the file flushed to disk and renamed onto ``path``
(``os.replace``: atomic on POSIX within one filesystem). On an error the temporary file is
removed and the previous ``path``, if any, is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from typing import IO, Any, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
  """``with atomic_write(path) as f: f.write(...)``: ``path`` holds all of it or its old content."""
  if mode not in ("w", "wb"):
    raise ValueError(f"atomic_write writes whole files: mode 'w' or 'wb', got {mode!r}.")
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  descriptor, temporary = tempfile.mkstemp(
    dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
  )
  try:
    with os.fdopen(descriptor, mode) as file:
      yield file
      file.flush()
      os.fsync(file.fileno())
    os.replace(temporary, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(temporary)
    raise


def write_json(path: str | os.PathLike, value: Any, **options) -> None:
  """``json.dump(value)`` into ``path``, atomically."""
  with atomic_write(path) as file:
    json.dump(value, file, **options)


def write_text(path: str | os.PathLike, text: str) -> None:
  """``text`` into ``path``, atomically."""
  with atomic_write(path) as file:
    file.write(text)
