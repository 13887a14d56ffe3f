"""Content fingerprints for cache keys: what a cached teacher, VAE or student run was made from.

A checkpoint directory is named by its configuration (``checkpoints.config_key``); names and
options alone would let a run reuse work computed from other data or another φ (a map whose
body was edited under the same name, a dataset file replaced by another of the same shape).
Keys therefore also hold:

- ``arrays(...)``: a hash of the arrays themselves (dtype, shape and bytes of each), e.g. the
  images and labels a teacher trains and is scored on;
- ``of_map(phi, input_shape)``: a hash of φ's *behaviour*: its output on a fixed probe batch
  (uniform noise of the target image shape, a fixed key), rounded to 4 decimals so that a
  recompiled but equal φ keeps its fingerprint. A cached map (``maps.cache.CachedMap``, e.g.
  style transfer, too costly to probe) is named by its cache key, which already names its
  weights, style images and options.
- ``of_model(model, input_shape)``: a user's model (``models.register_model``) by the same
  probe: its logits with parameters initialized from a fixed key, rounded alike (the built-in
  models are named by their settings and, once their arithmetic changed, by
  ``models.arithmetic_revision``).

A changed input gives a new key, so the work is redone; an unchanged one reuses it.
"""

from __future__ import annotations

import hashlib
import os

import jax
import numpy as np

PROBE_IMAGES = 4
PROBE_SEED = 20_260_000
DECIMALS = 4


def arrays(*values: np.ndarray) -> str:
  """A 16-hex-digit hash of the arrays' dtypes, shapes and bytes, in order."""
  digest = hashlib.sha256()
  for value in values:
    value = np.ascontiguousarray(value)
    digest.update(f"{value.dtype.str}{value.shape};".encode())
    digest.update(value.view(np.uint8).reshape(-1))
  return digest.hexdigest()[:16]


def probe_batch(input_shape: tuple[int, ...]) -> np.ndarray:
  """The fixed probe: ``PROBE_IMAGES`` images of ``input_shape``, uniform in [0, 1]."""
  rng = np.random.default_rng(PROBE_SEED)
  return rng.random((PROBE_IMAGES, *input_shape), dtype=np.float32)


def of_map(phi, input_shape: tuple[int, ...]) -> str:
  """φ's fingerprint (see the module docstring): ``"cached:<key>"`` for a cached map, else a
  hash of φ on the probe batch with a fixed key, rounded to ``DECIMALS`` decimals."""
  from distill_jax.maps import cache  # maps import the checkpoints that use this module

  if isinstance(phi, cache.CachedMap):  # its cache key names what it is computed from
    return "cached:" + os.path.basename(os.path.normpath(phi.folder))
  output = phi.map_array(probe_batch(tuple(input_shape)), jax.random.key(PROBE_SEED))
  rounded = np.round(np.asarray(output, np.float64), DECIMALS) + 0.0  # + 0.0: no negative zeros
  return arrays(rounded)


def of_model(model, input_shape: tuple[int, ...]) -> str:
  """A model's fingerprint: its parameter shapes and its logits on the probe batch with
  parameters initialized from a fixed key, rounded to ``DECIMALS`` decimals."""
  probe = probe_batch(tuple(input_shape))
  params = model.init(jax.random.key(PROBE_SEED), probe)
  logits = np.round(np.asarray(model.apply(params, probe), np.float64), DECIMALS) + 0.0
  shapes = [np.asarray(leaf.shape) for leaf in jax.tree.leaves(params)]
  return arrays(logits, *shapes)
