"""Writing files so that a crash, a full disk or a concurrent reader never sees half a file.

``atomic_write(path)`` gives a file object on a temporary file next to ``path``; only when the
block finishes without error is the file flushed to disk and renamed onto ``path``
(``os.replace``: atomic on POSIX within one filesystem). On an error the temporary file is
removed and the previous ``path``, if any, is left untouched. The file gets the permissions
``open`` would give it (0o666 less the umask), not ``mkstemp``'s private 0o600, so others
sharing a workdir can read it when the umask allows.
"""

from __future__ import annotations

import contextlib
import errno
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
    os.fchmod(descriptor, 0o666 & ~_umask())
    with os.fdopen(descriptor, mode) as file:
      yield file
      file.flush()
      os.fsync(file.fileno())
    os.replace(temporary, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(temporary)
    raise


def _umask() -> int:
  """The process's umask (read by setting it and putting it back: there is no getter)."""
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


def write_json(path: str | os.PathLike, value: Any, **options) -> None:
  """``json.dump(value)`` into ``path``, atomically."""
  with atomic_write(path) as file:
    json.dump(value, file, **options)


def write_text(path: str | os.PathLike, text: str) -> None:
  """``text`` into ``path``, atomically."""
  with atomic_write(path) as file:
    file.write(text)


def ensure_writable_folder(path: str | os.PathLike, what: str) -> None:
  """Creates ``path`` if needed and checks a file can be written there; ValueError naming
  ``what`` (e.g. "--workdir") and the problem otherwise, before any work starts."""
  path = os.fspath(path)
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.TemporaryFile(dir=path):
      pass
  except OSError as error:
    raise ValueError(f"{what} {path!r} cannot be used: {describe(error)}") from None


def describe(error: OSError) -> str:
  """An OSError as one line that says what to do."""
  where = f" ({error.filename})" if error.filename else ""
  advice = {
    errno.ENOSPC: "no space left on the device; free space there or choose another folder",
    errno.EDQUOT: "the disk quota is exceeded; free space or choose another folder",
    errno.EACCES: "permission denied; fix the permissions or choose another folder",
    errno.EPERM: "operation not permitted; fix the permissions or choose another folder",
    errno.EROFS: "the filesystem is read-only; choose another folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "a file is in the way where a folder is needed; choose another path",
  }.get(error.errno, error.strerror or str(error))
  return f"{advice}{where}"
