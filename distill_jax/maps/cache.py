"""A disk cache for an expensive deterministic map (style transfer): each input array is mapped
once, kept as ``<cache_dir>/phi/<cache_key>/<sha256 of the images>_<shape>.npy``, and read back
by every later run; an interrupted run keeps the chunks it finished (``*.parts/``). Each entry
is written under its lock (``locks.hold``), so concurrent runs map it once."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from distill_jax import integrity
from distill_jax import locks
from distill_jax import parallel
from distill_jax.maps.core import Map


@dataclasses.dataclass(frozen=True)
class CachedMap(Map):
  """``Map`` whose ``map_array`` goes through the disk cache in ``folder``.

  ``fn`` is called as it is, ``chunk_size`` images at a time (it may run its own jitted loop,
  as style transfer does); the key is ignored for the cache since φ is deterministic.
  """

  folder: str = ""
  chunk_size: int = 128

  def map_array(self, images: np.ndarray, key: jax.Array, chunk_size: int | None = None):
    del chunk_size  # the cached map's own chunk size names its cache parts
    digest = hashlib.sha256(np.ascontiguousarray(images).view(np.uint8)).hexdigest()[:16]
    digest += f"_{len(images)}x{'x'.join(map(str, images.shape[1:]))}"
    path = os.path.join(self.folder, digest + ".npy")
    mapped = None
    if parallel.is_primary():  # the other processes of a multi-process run read its file
      with locks.hold(os.path.join(self.folder, digest), what=f"φ({self.name}) cache"):
        mapped = self._map_or_load(images, key, path)
    parallel.barrier(f"phi cache {digest}")
    return np.load(path) if mapped is None else mapped

  def _map_or_load(self, images: np.ndarray, key: jax.Array, path: str) -> np.ndarray:
    """The cached array at ``path``, or φ of ``images`` mapped chunk by chunk and saved there
    (called with the entry's lock held)."""
    digest = os.path.basename(path)[: -len(".npy")]
    manifest = path + ".sha256.json"
    if os.path.exists(path):
      problem = integrity.problem(path, manifest)
      if problem is None:
        logging.info("φ(%s): reusing %d mapped images from %s", self.name, len(images), path)
        return np.load(path)
      moved = integrity.set_aside(path)
      logging.warning(
        "φ(%s): the cached %s is damaged (%s); set aside as %s, mapping again.",
        self.name,
        path,
        problem,
        moved,
      )
    parts_folder = os.path.join(self.folder, digest + ".parts")
    os.makedirs(parts_folder, exist_ok=True)
    started, chunks = time.perf_counter(), []
    for i in range(0, len(images), self.chunk_size):
      part = os.path.join(parts_folder, f"{i:09d}.npy")
      if os.path.exists(part):
        chunks.append(np.load(part))
        continue
      chunk = jnp.asarray(images[i : i + self.chunk_size])
      chunks.append(np.asarray(self.fn(chunk, jax.random.fold_in(key, i))))
      _save_atomically(part, chunks[-1])
      logging.info(
        "φ(%s): %d/%d images mapped (%.0fs)",
        self.name,
        min(i + self.chunk_size, len(images)),
        len(images),
        time.perf_counter() - started,
      )
    mapped = np.concatenate(chunks)
    _save_atomically(path, mapped)
    integrity.write_manifest(path, manifest)
    shutil.rmtree(parts_folder, ignore_errors=True)
    return mapped


def cached(phi: Map, *, cache_dir: str, cache_key: str, chunk_size: int) -> CachedMap:
  """``phi`` with its whole-array results cached under ``<cache_dir>/phi/<cache_key>``;
  ``cache_key`` must name everything φ depends on. Only for a deterministic φ."""
  if phi.stochastic:
    raise ValueError(f"map {phi.name!r} is stochastic: its results cannot be cached.")
  return CachedMap(
    name=phi.name,
    fn=phi.fn,
    stochastic=False,
    output_shape=phi.output_shape,
    folder=os.path.join(cache_dir, "phi", cache_key),
    chunk_size=chunk_size,
  )


def _save_atomically(path: str, array: np.ndarray) -> None:
  np.save(path + ".tmp.npy", array)
  os.replace(path + ".tmp.npy", path)
