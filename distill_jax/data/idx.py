"""Pure-numpy reader for gzip-compressed LeCun IDX files (MNIST / Fashion-MNIST)."""

from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

from distill_jax.data.errors import FIX_HINT, DataError

IMAGES_MAGIC = 2051  # idx3: uint8, 3 dims
LABELS_MAGIC = 2049  # idx1: uint8, 1 dim
IMAGE_SIDE = 28
NUM_CLASSES = 10
GZIP_MAGIC = b"\x1f\x8b"


def _fail(path: str | os.PathLike, problem: str) -> DataError:
  return DataError(f"{os.fspath(path)}: {problem}; {FIX_HINT}")


def _read_gzip(path: str | os.PathLike) -> bytes:
  """Returns the uncompressed bytes of a .gz file, or raises DataError."""
  if not os.path.isfile(path):
    raise _fail(path, "file is missing")
  with open(path, "rb") as f:
    if f.read(2) != GZIP_MAGIC:
      raise _fail(path, "not a gzip file")
  try:
    with gzip.open(path, "rb") as f:
      return f.read()
  except (EOFError, zlib.error, OSError) as e:  # OSError includes gzip.BadGzipFile (CRC, ...)
    raise _fail(path, f"corrupt gzip ({e})") from None


def _header(path, data: bytes, expected_magic: int, ndim: int) -> tuple[int, ...]:
  """Checks the magic number and returns the dimension sizes from the header."""
  header_size = 4 + 4 * ndim
  if len(data) < header_size:
    raise _fail(path, f"only {len(data)} bytes, too short for an IDX header (truncated)")
  (magic,) = struct.unpack(">i", data[:4])
  if magic != expected_magic:
    raise _fail(path, f"bad magic number (expected {expected_magic}, got {magic})")
  return struct.unpack(f">{ndim}i", data[4:header_size])


def _payload(path, data: bytes, header_size: int, count: int, item_size: int, what: str):
  payload = memoryview(data)[header_size:]
  expected = count * item_size
  if len(payload) != expected:
    kind = "truncated" if len(payload) < expected else "trailing bytes"
    raise _fail(
      path,
      f"header says {count} {what} ({expected} bytes) but payload holds "
      f"{len(payload)} bytes ({kind})",
    )
  return np.frombuffer(payload, dtype=np.uint8).copy()  # writable, owns its memory


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
  """Reads an `*-images-idx3-ubyte.gz` file into a uint8 array of shape (N, 28, 28)."""
  data = _read_gzip(path)
  count, rows, cols = _header(path, data, IMAGES_MAGIC, ndim=3)
  if (rows, cols) != (IMAGE_SIDE, IMAGE_SIDE):
    raise _fail(path, f"images are {rows}x{cols}, expected {IMAGE_SIDE}x{IMAGE_SIDE}")
  pixels = _payload(path, data, 16, count, rows * cols, "images")
  return pixels.reshape(count, rows, cols)


def read_idx_labels(path: str | os.PathLike) -> np.ndarray:
  """Reads an `*-labels-idx1-ubyte.gz` file into a uint8 array of shape (N,) with values 0-9."""
  data = _read_gzip(path)
  (count,) = _header(path, data, LABELS_MAGIC, ndim=1)
  labels = _payload(path, data, 8, count, 1, "labels")
  if labels.size and labels.max() >= NUM_CLASSES:
    bad = int(np.argmax(labels >= NUM_CLASSES))
    raise _fail(path, f"labels outside 0-{NUM_CLASSES - 1} (label {labels[bad]} at index {bad})")
  return labels


def read_idx_pair(
  images_path: str | os.PathLike, labels_path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray]:
  """Reads matching image and label files; raises DataError if their counts differ."""
  images = read_idx_images(images_path)
  labels = read_idx_labels(labels_path)
  if len(images) != len(labels):
    raise DataError(
      f"{os.fspath(labels_path)}: holds {len(labels)} labels but "
      f"{os.fspath(images_path)} holds {len(images)} images (count mismatch); {FIX_HINT}"
    )
  return images, labels
