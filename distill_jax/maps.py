"""The maps φ: X_t → X_s that carry a target-domain image into the teacher's source domain.

Every map is a pure function ``phi(images, key) -> images`` on a batch of NHWC float images.
Deterministic maps ignore ``key``; stochastic ones (``noise``) draw fresh randomness from it,
so the caller decides when randomness is new (per batch while training).

Registered maps (``get_map(name, **options)``):

* ``identity``: φ(x) = x.
* ``noise``: φ(x) = x + ε, ε ~ N(0, σ² I), σ² = ``variance`` (0.1 by default).
* ``conv``: the fixed 3×3 kernel [[1,0,1],[0,1,0],[1,0,1]] with dilation 2 (effective 5×5) and
  VALID padding: 28×28 → 24×24 (576 features).

New maps (the VAE and style transfer) register themselves with :func:`register_map`.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

ImageFn = Callable[[jax.Array, jax.Array | None], jax.Array]

DILATED_KERNEL = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]], np.float32)


@dataclasses.dataclass(frozen=True)
class Map:
  """A map φ with what the trainer needs to know about it.

  Attributes:
    name: registry name.
    fn: pure ``(images [N,H,W,C], key) -> images``.
    stochastic: whether φ draws randomness (then soft targets cannot be precomputed).
    output_shape: function from an input image shape ``(H, W, C)`` to the output shape.
    chunk_size: how many images to map per call when mapping a whole dataset.
    cache_key: for an expensive deterministic φ (style transfer), a string naming everything φ
      depends on; whole mapped datasets are then cached on disk under it (``None``: no cache).
    jittable: whether callers may wrap ``fn`` in ``jax.jit``.
  """

  name: str
  fn: ImageFn
  stochastic: bool
  output_shape: Callable[[tuple[int, ...]], tuple[int, ...]] = lambda shape: tuple(shape)
  chunk_size: int = 2000
  cache_key: str | None = None
  jittable: bool = True  # False: ``fn`` runs its own jitted loop (style transfer on CPU)

  def __call__(self, images: jax.Array, key: jax.Array | None = None) -> jax.Array:
    if images.ndim != 4:
      raise ValueError(
        f"map {self.name!r} expects NHWC images [N, H, W, C], got shape {images.shape}."
      )
    if self.stochastic and key is None:
      raise ValueError(f"map {self.name!r} is stochastic: pass a PRNG key.")
    return self.fn(images, key)


def identity_map() -> Map:
  return Map("identity", lambda images, key: images, stochastic=False)


def noise_map(variance: float = 0.1) -> Map:
  """φ(x) = x + ε with ε ~ N(0, variance·I), fresh for every key."""
  if not variance >= 0:
    raise ValueError(f"noise variance must be >= 0, got {variance}.")
  std = float(np.sqrt(variance))

  def add_noise(images, key):
    return images + std * jax.random.normal(key, images.shape, images.dtype)

  return Map("noise", add_noise, stochastic=True)


def dilated_conv_map(kernel: np.ndarray = DILATED_KERNEL, dilation: int = 2) -> Map:
  """φ(x) = x ⋆ k, one fixed kernel per channel, dilated, VALID padding."""
  kernel = np.asarray(kernel, np.float32)
  kh, kw = kernel.shape
  eff_h, eff_w = (kh - 1) * dilation + 1, (kw - 1) * dilation + 1

  taps = [(i, j, float(kernel[i, j])) for i in range(kh) for j in range(kw) if kernel[i, j] != 0]

  def convolve(images, key):
    # The kernel is a constant with few non-zero taps: a weighted sum of shifted views of the
    # images is exactly the VALID cross-correlation (what lax.conv computes), and on CPU it is
    # ~10x faster than XLA's grouped dilated convolution.
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

  return Map("conv", convolve, stochastic=False, output_shape=output_shape)


def vae_map(model=None, params=None, sample: bool = False) -> Map:
  """φ_vae: garments → digit probabilities from a trained two-decoder VAE (``distill_jax.vae``).

  Deterministic (decoded at the encoder mean) unless ``sample``, which decodes a sampled z.
  """
  if model is None or params is None:
    raise ValueError(
      "mapping 'vae' needs a trained VAE: pass model= and params= (experiment.run_experiment "
      "trains or loads one)."
    )
  from distill_jax import vae  # the VAE module does not import maps

  return Map("vae", vae.make_phi(model, params, sample=sample), stochastic=sample)


def style_map(
  vgg_params=None,
  preprocessing: str = "torch",
  style_image=None,
  cache_key: str | None = None,
  batch_size: int = 64,
  **stylize_options,
) -> Map:
  """φ_style: Gatys style transfer of each image towards a style image on VGG-19 features
  (``distill_jax.style.stylize``; ``stylize_options`` are its steps, learning rate, weights and
  layers). ``style_image`` is ``[H, W, 3]`` (one style) or ``[K, H, W, 3]``: then image x gets
  style ``style_index(x, K)``, a hash of its pixels, so φ stays a deterministic function of x
  (the same image gets the same style in Big, Small and test, in any batch). Expensive, so
  whole datasets are mapped ``batch_size`` images at a time and cached under ``cache_key``
  (which must name the weights, style images and options).
  """
  if vgg_params is None or style_image is None:
    raise ValueError(
      "mapping 'style' needs VGG-19 weights and a style image: pass vgg_params= and "
      "style_image= (experiment.run_experiment loads or draws them)."
    )
  from distill_jax import style  # maps does not depend on VGG unless style is used

  style_images = jnp.asarray(style_image)
  if style_images.ndim == 3:
    style_images = style_images[None]
  if style_images.ndim != 4 or style_images.shape[0] < 1 or style_images.shape[-1] != 3:
    raise ValueError(
      f"style_image must be [H, W, 3] or [K, H, W, 3] RGB, got shape {style_images.shape}."
    )
  num_styles = style_images.shape[0]

  def stylize(images, key):
    del key
    if num_styles == 1:
      targets = style_images[0]
    else:
      targets = style_images[style_index(np.asarray(images), num_styles)]
    return style.stylize(
      images, targets, vgg_params, preprocessing=preprocessing, **stylize_options
    )

  return Map(
    "style",
    stylize,
    stochastic=False,
    chunk_size=batch_size,
    cache_key=cache_key,
    jittable=False,
  )


def style_index(images: np.ndarray, num_styles: int) -> np.ndarray:
  """Which of ``num_styles`` style images each image ``[B, H, W, C]`` gets: CRC-32 of its
  float32 pixels mod ``num_styles`` (a fixed function of the image, spread evenly)."""
  images = np.ascontiguousarray(np.asarray(images, np.float32))
  return np.array([zlib.crc32(image.tobytes()) % num_styles for image in images], np.int32)


_REGISTRY: dict[str, Callable[..., Map]] = {
  "identity": identity_map,
  "noise": noise_map,
  "conv": dilated_conv_map,
  "vae": vae_map,
  "style": style_map,
}

# Maps whose factory needs trained parameters; the experiment trains them first.
LEARNED_MAPS = frozenset({"vae"})
# Maps the experiment builds itself (trains a model or loads weights for); all keep the shape.
BUILT_MAPS = frozenset({"vae", "style"})


def register_map(name: str, factory: Callable[..., Map]) -> None:
  """Adds a map factory to the registry under ``name`` (error if the name is taken)."""
  if name in _REGISTRY:
    raise ValueError(f"map {name!r} is already registered.")
  _REGISTRY[name] = factory


def map_names() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def get_map(name: str, **options) -> Map:
  """Builds the registered map ``name`` with its options (e.g. ``variance`` for noise)."""
  if name not in _REGISTRY:
    raise ValueError(f"unknown mapping {name!r}; choose one of {', '.join(map_names())}.")
  return _REGISTRY[name](**options)
