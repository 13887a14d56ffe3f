"""The map type, what a map family builds, and the registry of families.

A map ``φ: X_t → X_s`` is a pure function ``phi(images, key) -> images`` on a batch of NHWC
float images. Deterministic maps ignore ``key``; stochastic ones draw fresh randomness from it,
so the caller decides when randomness is new (per batch while training).

Maps come in families, each in its own module of this package: the fixed maps (``fixed.py``:
identity, noise, conv), the learned VAE map (``vae.py``) and style transfer (``style.py``). A
family registers one ``MapFamily`` under the ``config.mapping`` names it serves; the experiment
looks the family up by name and calls its ``build(config, datasets, context)``, which returns a
``BuiltMap``: the map, a key naming it in checkpoint keys, facts for ``results.json``, figures
and, for a map that makes the teacher's data (GeneratedMNIST), that source set.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

ImageFn = Callable[[jax.Array, jax.Array | None], jax.Array]
Splits = dict[str, tuple[np.ndarray, np.ndarray]]  # split -> (images NHWC, labels)


def same_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
  return tuple(shape)


@dataclasses.dataclass(frozen=True)
class Map:
  """A map φ and what the trainer needs to know about it.

  Attributes:
    name: the map's name (e.g. ``conv``).
    fn: pure ``(images [N, H, W, C], key) -> images``.
    stochastic: whether φ draws randomness (then soft targets cannot be precomputed).
    output_shape: function from an input image shape ``(H, W, C)`` to the output shape.
  """

  name: str
  fn: ImageFn
  stochastic: bool
  output_shape: Callable[[tuple[int, ...]], tuple[int, ...]] = same_shape

  def __call__(self, images: jax.Array, key: jax.Array | None = None) -> jax.Array:
    if images.ndim != 4:
      raise ValueError(
        f"map {self.name!r} expects NHWC images [N, H, W, C], got shape {images.shape}."
      )
    if self.stochastic and key is None:
      raise ValueError(f"map {self.name!r} is stochastic: pass a PRNG key.")
    return self.fn(images, key)

  @functools.cached_property
  def _jitted_fn(self):  # one compilation per map (and chunk shape), not one per call
    return jax.jit(self.fn)

  def map_array(self, images: np.ndarray, key: jax.Array, chunk_size: int = 2000) -> np.ndarray:
    """φ applied to a whole host array, ``chunk_size`` images per jitted call; a stochastic φ
    draws chunk ``[i, i + chunk_size)`` from ``fold_in(key, i)``."""
    return np.concatenate(
      [
        np.asarray(
          self._jitted_fn(jnp.asarray(images[i : i + chunk_size]), jax.random.fold_in(key, i))
        )
        for i in range(0, len(images), chunk_size)
      ]
    )


@dataclasses.dataclass(frozen=True)
class MapContext:
  """What a family's ``build`` may use besides the config and the loaded datasets.

  ``load(name)`` returns all splits of a dataset, whole (no ``data.max_*`` subsets; loaded once
  per experiment); ``mesh`` is where models train; trained maps and expensive mapped arrays are
  kept under ``cache_dir``; tfds datasets a family makes go to ``tfds_dir``; figures to
  ``workdir``.
  """

  load: Callable[[str], Splits]
  mesh: Any
  cache_dir: str
  tfds_dir: str
  workdir: str


@dataclasses.dataclass(frozen=True)
class BuiltMap:
  """A family's answer to ``build``.

  Attributes:
    phi: the map.
    key: names a learned or expensive φ (a checkpoint or cache key) in the teacher's and
      students' checkpoint keys; None for maps fully named by their options.
    info: facts about φ for ``results.json`` (``phi``), e.g. the VAE's test −ELBO.
    figures: paths of the figures the family wrote.
    source_splits: a source set made from φ (GeneratedMNIST), when the config asks for it.
    source_key: names that source set (its tfds builder config) in the teacher's key.
  """

  phi: Map
  key: str | None = None
  info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  figures: tuple[str, ...] = ()
  source_splits: Splits | None = None
  source_key: str | None = None


def _no_checks(config) -> None:
  del config


@dataclasses.dataclass(frozen=True)
class MapFamily:
  """A family of maps: how to build one from the config, and how to check its config section.

  Attributes:
    names: the ``config.mapping`` values this family serves.
    build: ``(config, datasets, context) -> BuiltMap``; ``datasets`` holds the experiment's
      source and target sets (``data.max_*`` subsets applied), ``context`` is a ``MapContext``.
    validate: raises ValueError naming a bad value of the family's config and its fix; runs
      before any work.
    output_shape: ``(config, input image shape) -> φ's output shape``, known before building.
  """

  names: tuple[str, ...]
  build: Callable[[Any, Mapping[str, Splits], MapContext], BuiltMap]
  validate: Callable[[Any], None] = _no_checks
  output_shape: Callable[[Any, tuple[int, ...]], tuple[int, ...]] = lambda config, shape: tuple(
    shape
  )


# mapping name -> its family, or the module defining ``FAMILY`` (imported on first use, so that
# importing the package does not pull in VGG, the VAE and tfds).
_FAMILIES: dict[str, MapFamily | str] = {
  "generated": "distill_jax.maps.vae",
  "generated_full": "distill_jax.maps.vae",
  "style": "distill_jax.maps.style",
  "vae": "distill_jax.maps.vae",
}


def register_family(family: MapFamily) -> None:
  """Makes ``family`` the builder of each of its ``names`` (error if a name is taken)."""
  taken = sorted(set(family.names) & set(_FAMILIES))
  if taken:
    raise ValueError(f"mapping name(s) {', '.join(taken)} already registered.")
  for name in family.names:
    _FAMILIES[name] = family


def mapping_names() -> tuple[str, ...]:
  """Every valid ``config.mapping``."""
  return tuple(sorted(_FAMILIES))


def family_for(mapping: str) -> MapFamily:
  """The family that builds ``config.mapping``; ValueError listing the valid names."""
  if mapping not in _FAMILIES:
    raise ValueError(f"unknown mapping {mapping!r}; choose one of {', '.join(mapping_names())}.")
  family = _FAMILIES[mapping]
  if isinstance(family, str):
    family = _FAMILIES[mapping] = importlib.import_module(family).FAMILY
  return family
