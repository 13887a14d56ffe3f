"""Checksums for saved artifacts, so that a corrupted or partial one is never loaded.

``write_manifest(target, manifest)`` records the sha256 and size of every file of ``target`` (a
folder, or one file) in the JSON file ``manifest``; ``problem(target, manifest)`` says what is
wrong (missing manifest, missing / extra / changed file) or returns None when every byte
matches. ``set_aside(path)`` renames a bad artifact to ``<path>.corrupt-<time>`` (kept for a
post-mortem, out of the way of the rerun that rebuilds it). Checkpoints, the φ cache and
prepared tfds datasets use these (``checkpoints``, ``maps/cache.py``, ``data/tfds_io.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time

from distill_jax import files

_CHUNK = 1 << 20


def sha256(path: str) -> str:
  """The sha256 hex digest of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as file:
    for block in iter(lambda: file.read(_CHUNK), b""):
      digest.update(block)
  return digest.hexdigest()


def _listing(target: str) -> dict[str, str]:
  """{path relative to ``target`` ('.' for a file): absolute path} of every file of it."""
  if os.path.isfile(target):
    return {".": target}
  found = {}
  for folder, _, names in os.walk(target):
    for name in names:
      path = os.path.join(folder, name)
      found[os.path.relpath(path, target)] = path
  return found


def write_manifest(target: str, manifest: str) -> None:
  """Records every file of ``target`` (size and sha256) in ``manifest``, atomically."""
  os.makedirs(os.path.dirname(os.path.abspath(manifest)), exist_ok=True)
  entries = {
    relative: {"size": os.path.getsize(path), "sha256": sha256(path)}
    for relative, path in sorted(_listing(target).items())
  }
  files.write_json(manifest, {"target": os.path.basename(target), "files": entries}, indent=1)


def problem(target: str, manifest: str) -> str | None:
  """What is wrong with ``target`` against ``manifest``, or None when it matches exactly."""
  if not os.path.exists(manifest):
    return f"it has no checksum manifest ({os.path.basename(manifest)})"
  try:
    with open(manifest) as file:
      expected = json.load(file)["files"]
  except (OSError, ValueError, KeyError):
    return f"its checksum manifest {manifest} is unreadable"
  if not os.path.exists(target):
    return "it is missing"
  found = _listing(target)
  for relative in sorted(set(expected) - set(found)):
    return f"file {relative} is missing"
  for relative in sorted(set(found) - set(expected)):
    return f"file {relative} is not in its manifest"
  for relative, entry in sorted(expected.items()):
    path = found[relative]
    if os.path.getsize(path) != entry["size"]:
      return f"file {relative} has {os.path.getsize(path)} bytes, {entry['size']} were written"
    if sha256(path) != entry["sha256"]:
      return f"file {relative} does not match its checksum"
  return None


def set_aside(path: str) -> str:
  """Renames a bad artifact to ``<path>.corrupt-<YYYYmmdd-HHMMSS>``; returns the new name."""
  moved = f"{path.rstrip(os.sep)}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"
  os.replace(path, moved)
  return moved
