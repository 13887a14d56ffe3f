"""φ_style (mapping ``style``): Gatys style transfer on VGG-19 features towards one or several
style images (the transfer itself: ``distill_jax/style.py``; VGG-19: ``distill_jax/vgg.py``).

``build`` loads ``style.weights`` (or draws random ranVGG weights, said in the logs and the
results), resizes the style images to the data's size, and wraps the transfer in the disk cache
(``maps/cache.py``): stylizing is expensive, so each mapped array is computed once per
``cache_key`` (a hash of the weights, style images and transfer settings). It also writes
``style_examples.png``.
"""

from __future__ import annotations

import hashlib
import os
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from distill_jax import checkpoints
from distill_jax import figures
from distill_jax import style as style_lib
from distill_jax import vgg as vgg_lib
from distill_jax.maps import cache
from distill_jax.maps import core


def style_index(images: np.ndarray, num_styles: int) -> np.ndarray:
  """Which of ``num_styles`` style images each image ``[B, H, W, C]`` gets: CRC-32 of its
  float32 pixels mod ``num_styles`` (a fixed function of the image, spread evenly)."""
  images = np.ascontiguousarray(np.asarray(images, np.float32))
  return np.array([zlib.crc32(image.tobytes()) % num_styles for image in images], np.int32)


def style_map(vgg_params, style_image, preprocessing: str = "torch", **stylize_options) -> core.Map:
  """φ_style: Gatys transfer of each image towards a style image (``style.stylize``;
  ``stylize_options`` are its steps, learning rate, weights and layers). ``style_image`` is
  ``[H, W, 3]`` (one style) or ``[K, H, W, 3]``: then image x gets style ``style_index(x, K)``,
  so φ stays a deterministic function of x (the same image gets the same style in Big, Small
  and test, in any batch). ``fn`` runs its own jitted loop: call it as it is, not under jit.
  """
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
    return style_lib.stylize(
      images, targets, vgg_params, preprocessing=preprocessing, **stylize_options
    )

  return core.Map("style", stylize, stochastic=False)


def style_image_paths(config) -> list[str]:
  """The files in ``style.style_image`` (comma-separated; empty: the generated default)."""
  return [path.strip() for path in config.style.style_image.split(",") if path.strip()]


def load_style_images(config) -> np.ndarray:
  """The style images ``[K, S, S, 3]``, float32 in [0, 1], S = ``data.image_size``: each file
  of ``style.style_image`` resized (bicubic), or ``distill_jax.style.default_style_image``."""
  size = config.data.image_size
  paths = style_image_paths(config)
  if not paths:
    return style_lib.default_style_image(size)[None]
  from PIL import Image

  images = []
  for path in paths:
    with Image.open(path) as image:
      resized = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    images.append(np.asarray(resized, np.float32) / 255.0)
  return np.stack(images)


def _vgg_weights(config) -> tuple[dict, str, str]:
  """``(VGG-19 parameters, preprocessing, an id naming the weights)`` from ``style.weights``,
  or random ranVGG weights (with a warning)."""
  sc = config.style
  if sc.weights:
    vgg_params, preprocessing = vgg_lib.load_weights(sc.weights)
    return vgg_params, preprocessing, "file-" + _file_digest(sc.weights)
  logging.warning(
    "style: no VGG-19 weights file (config.style.weights), so φ_style uses RANDOM VGG-19 "
    "weights (ranVGG, He, Wang & Hopcroft 2016) with per-layer normalized style losses. For "
    "pretrained weights pass --config.style.weights=<torchvision vgg19 .pth | Keras "
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 | .npz>."
  )
  vgg_params, preprocessing = vgg_lib.random_weights(jax.random.key(sc.weights_seed))
  return vgg_params, preprocessing, f"ranvgg-{sc.weights_seed}"


def _transfer_options(config) -> dict:
  sc = config.style
  return {
    "steps": int(sc.steps),
    "learning_rate": float(sc.learning_rate),
    "content_weight": float(sc.content_weight),
    "style_weight": float(sc.style_weight),
    "content_layers": tuple(sc.content_layers),
    "style_layers": tuple(sc.style_layers),
    "normalize_style": bool(sc.normalize_style),
    "pool": sc.pool,
  }


def make_phi(config, cache_dir: str) -> tuple[cache.CachedMap, dict]:
  """φ_style of ``config.style``, cached under ``<cache_dir>/phi/<cache_key>``, and the facts
  about it for ``results.json`` (weights, style images, transfer settings, cache key)."""
  sc = config.style
  vgg_params, preprocessing, weights_id = _vgg_weights(config)
  style_images = load_style_images(config)
  options = _transfer_options(config)
  style_digest = hashlib.sha256(np.ascontiguousarray(style_images).tobytes()).hexdigest()[:16]
  cache_key = checkpoints.config_key(
    {"weights": weights_id, "preprocessing": preprocessing, "style": style_digest, **options}
  )
  phi = cache.cached(
    style_map(vgg_params, style_images, preprocessing, loop=sc.loop, **options),
    cache_dir=cache_dir,
    cache_key=cache_key,
    chunk_size=sc.batch_size,
  )
  info = {
    "vgg_weights": sc.weights or "random (ranVGG: no weights file given)",
    "random_weights": not sc.weights,
    "style_images": style_image_paths(config) or ["distill_jax.style.default_style_image"],
    "cache_key": cache_key,
    **{k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
  }
  return phi, info


def build(config, datasets, context: core.MapContext) -> core.BuiltMap:
  """The cached φ_style and ``style_examples.png`` (the first Small image of each class above
  its stylized version)."""
  phi, info = make_phi(config, context.cache_dir)
  style_images = load_style_images(config)
  small_images, small_labels = datasets[config.target_dataset]["small"]
  path = figures.style_examples(
    small_images,
    small_labels,
    phi.map_array(small_images, jax.random.key(0)),
    style_images,
    style_index(small_images, len(style_images)),
    os.path.join(context.workdir, "style_examples.png"),
  )
  return core.BuiltMap(phi=phi, key=info["cache_key"], info=info, figures=(path,))


def _file_digest(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()[:16]


def validate(config) -> None:
  """The ``style`` section: files exist and are readable, settings are in range."""
  sc = config.style
  if config.target_dataset != "imagenette":
    raise ValueError(
      f"mapping 'style' is for RGB images: target_dataset must be 'imagenette', got "
      f"{config.target_dataset!r}."
    )
  _validate_weights_file(sc.weights)
  for path in style_image_paths(config):
    _validate_style_image(path)
  if not isinstance(sc.steps, int) or sc.steps < 0 or sc.batch_size < 1:
    raise ValueError(
      f"style: steps must be an int >= 0 and batch_size >= 1; got {sc.steps}, {sc.batch_size}."
    )
  if not sc.learning_rate > 0 or sc.content_weight < 0 or sc.style_weight < 0:
    raise ValueError(
      "style: learning_rate must be > 0 and the content / style weights >= 0; got "
      f"{sc.learning_rate}, {sc.content_weight}, {sc.style_weight}."
    )
  if sc.loop not in style_lib.LOOPS:
    raise ValueError(f"style.loop must be one of {', '.join(style_lib.LOOPS)}, got {sc.loop!r}.")
  if sc.pool not in ("avg", "max"):
    raise ValueError(f"style.pool must be 'avg' or 'max', got {sc.pool!r}.")
  vgg_lib.check_layers(tuple(sc.content_layers) + tuple(sc.style_layers))


def _validate_weights_file(weights: str) -> None:
  if not weights:
    return
  if not os.path.isfile(weights):
    raise ValueError(
      f"style.weights: no file {weights!r}; give a VGG-19 weights file (torchvision vgg19 "
      "state dict .pth, Keras vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5, or .npz) or "
      "'' for random weights (ranVGG)."
    )
  if os.path.splitext(weights)[1].lower() not in vgg_lib.WEIGHT_EXTENSIONS:
    raise ValueError(
      f"style.weights: {weights!r} has none of the extensions "
      f"{', '.join(vgg_lib.WEIGHT_EXTENSIONS)}; rename it after its format (torchvision state "
      "dict .pth, Keras .h5, vgg.save_npz .npz) or pass '' for random weights (ranVGG)."
    )


def _validate_style_image(path: str) -> None:
  from PIL import Image

  if not os.path.isfile(path):
    raise ValueError(
      f"style.style_image: no file {path!r}; give an image file, several separated by "
      "commas, or '' for the default generated style image."
    )
  try:
    with Image.open(path) as image:
      image.verify()
  except Exception as error:  # PIL raises many types for unreadable files
    raise ValueError(
      f"style.style_image: cannot read {path!r} as an image ({type(error).__name__}: "
      f"{error}); give a PNG or JPEG file."
    ) from error


FAMILY = core.MapFamily(names=("style",), build=build, validate=validate)
