"""The fixed maps φ, named by ``config.mapping`` with options from ``config.maps.<name>``:

* ``identity``: φ(x) = x.
* ``noise``: φ(x) = x + ε, ε ~ N(0, σ² I), σ² = ``variance`` (0.1 by default, the talk's
  N(0, 1/10)), fresh per key; ``clip=True`` clips φ(x) to [0, 1]. The authors' code differs
  from the talk: it adds 0.08·N(0, 1) and clips, i.e. ``variance=0.0064, clip=True``.
* ``conv``: the fixed 3×3 kernel [[1,0,1],[0,1,0],[1,0,1]] with dilation 2 (effective 5×5) and
  VALID padding: 28×28 → 24×24 (576 features).

``register_map(name, factory)`` adds another one: ``factory(**options) -> Map``; it is then a
valid ``--mapping`` with its options under ``config.maps.<name>``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from distill_jax.maps import core

DILATED_KERNEL = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], np.float32)


def identity_map() -> core.Map:
  return core.Map("identity", lambda images, key: images, stochastic=False)


def noise_map(variance: float = 0.1, clip: bool = False) -> core.Map:
  """φ(x) = x + ε with ε ~ N(0, variance·I), fresh for every key; clipped to [0, 1] when
  ``clip`` (the authors' code: ``variance=0.0064, clip=True``)."""
  if not 0 <= variance < np.inf:
    raise ValueError(f"noise variance must be finite and >= 0 (the talk: 0.1), got {variance}.")
  if not isinstance(clip, bool):
    raise ValueError(f"noise clip must be True or False, got {clip!r}.")
  std = float(np.sqrt(variance))

  def add_noise(images, key):
    noisy = images + std * jax.random.normal(key, images.shape, images.dtype)
    return jnp.clip(noisy, 0.0, 1.0) if clip else noisy

  return core.Map("noise", add_noise, stochastic=True)


def dilated_conv_map(kernel: np.ndarray = DILATED_KERNEL, dilation: int = 2) -> core.Map:
  """φ(x) = x ⋆ k, one fixed kernel per channel, dilated, VALID padding."""
  if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 1:
    raise ValueError(
      f"conv dilation must be an int >= 1 (1: the plain kernel; the talk: 2), got {dilation!r}."
    )
  kernel = np.asarray(kernel, np.float32)
  if kernel.ndim != 2 or not np.any(kernel):
    raise ValueError(f"conv kernel must be a non-zero 2-D array, got {kernel.tolist()!r}.")
  kh, kw = kernel.shape
  eff_h, eff_w = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1
  taps = [(i, j, float(kernel[i, j])) for i in range(kh) for j in range(kw) if kernel[i, j] != 0]

  def convolve(images, key):
    # The kernel is a constant with few non-zero taps: a weighted sum of shifted views of the
    # images is exactly the VALID cross-correlation (what lax.conv computes), and on CPU it is
    # much faster than XLA's grouped dilated convolution.
    out_h, out_w = images.shape[1] - eff_h + 1, images.shape[2] - eff_w + 1
    if out_h < 1 or out_w < 1:
      raise ValueError(
        f"map 'conv' needs images of at least {eff_h}x{eff_w}, got {images.shape[1:3]}."
      )
    total = jnp.zeros((images.shape[0], out_h, out_w, images.shape[3]), images.dtype)
    for i, j, weight in taps:
      r, c = i * dilation, j * dilation
      total = total + weight * images[:, r : r + out_h, c : c + out_w, :]
    return total

  def output_shape(shape):
    h, w, c = shape
    return (h - eff_h + 1, w - eff_w + 1, c)

  return core.Map("conv", convolve, stochastic=False, output_shape=output_shape)


_FACTORIES: dict[str, Callable[..., core.Map]] = {
  "identity": identity_map,
  "noise": noise_map,
  "conv": dilated_conv_map,
}


def map_names() -> tuple[str, ...]:
  """The fixed maps' names."""
  return tuple(sorted(_FACTORIES))


def get_map(name: str, **options) -> core.Map:
  """Builds the fixed map ``name`` with its options (e.g. ``variance`` for noise)."""
  if name not in _FACTORIES:
    raise ValueError(f"unknown map {name!r}; choose one of {', '.join(map_names())}.")
  return _FACTORIES[name](**options)


def map_options(config) -> dict:
  """``config.maps.<mapping>`` as a dict (empty when the config has none)."""
  options = config.maps.get(config.mapping, {}) if "maps" in config else {}
  return dict(options.to_dict() if hasattr(options, "to_dict") else options)


def build(config, datasets, context) -> core.BuiltMap:
  del datasets, context  # a fixed map depends on its options only
  return core.BuiltMap(phi=get_map(config.mapping, **map_options(config)))


def validate(config) -> None:
  """Builds the map once, so that bad options fail before any work."""
  try:
    get_map(config.mapping, **map_options(config))
  except TypeError as error:  # an option the factory does not take
    raise ValueError(
      f"config.maps.{config.mapping}: {error}; the options are the keyword arguments of the "
      f"map's factory in distill_jax/maps/fixed.py."
    ) from None


def output_shape(config, shape: tuple[int, ...]) -> tuple[int, ...]:
  return tuple(get_map(config.mapping, **map_options(config)).output_shape(tuple(shape)))


_BUILT_IN = frozenset(_FACTORIES)
FAMILY = core.MapFamily(
  names=tuple(_FACTORIES), build=build, validate=validate, output_shape=output_shape
)


def register_map(name: str, factory: Callable[..., core.Map]) -> None:
  """Adds a fixed map: ``factory(**config.maps.<name>) -> Map``; ``--mapping=<name>`` then
  works. A built-in mapping name is an error; registering a user's map again replaces its
  factory (a config file or notebook cell run twice): cached teachers stay right, as φ's
  behaviour is in their keys (``fingerprints.of_map``)."""
  if name in _BUILT_IN or (name in core.mapping_names() and name not in _FACTORIES):
    raise ValueError(f"map {name!r} is built in; register yours under another name.")
  if name not in _FACTORIES:
    core.register_family(dataclasses.replace(FAMILY, names=(name,)))
  _FACTORIES[name] = factory
