"""Gatys et al. (2016) neural style transfer on VGG-19 features, batched and jitted.

For an image x let F_l(x) ∈ R^{M_l × C_l} be VGG19's activation at layer l flattened over space
(M_l = H_l·W_l positions, C_l channels). Its Gram matrix is the spatially averaged second moment

    G_l(x) = F_l(x)ᵀ F_l(x) / M_l ∈ R^{C_l × C_l},   G_l[c, d] = (1/M_l) Σ_m F_l[m, c] F_l[m, d],

which keeps which channels fire together but forgets where: the "style". Given a content image
p and a style image a, style transfer minimizes over the pixels of x

    L(x) = α Σ_{l ∈ content} mean((F_l(x) − F_l(p))²)  +  β Σ_{l ∈ style} E_l(x),
    E_l(x) = mean((G_l(x) − G_l(a))²)                                   (normalize=False)
    E_l(x) = ‖G_l(x) − G_l(a)‖²_F / ‖G_l(a)‖²_F                         (normalize=True)

with α = ``content_weight`` and β = ``style_weight``. Without normalization E_l is 4 × Gatys et
al.'s E_l = Σ (G'_l − A'_l)² / (4 C_l² M_l²), whose Gram G' = FᵀF is not divided by M_l. With
normalization E_l = mean((G − A)²) / mean(A²) is the relative squared error: scale-free, and not
shrinking with the channel count. With random weights (ranVGG, ``vgg.random_weights``) the Gram
matrices of different layers differ by orders of magnitude, and without it each layer would
count according to its scale rather than its content. Every loss here is per image (shape
``[B]``), so a batch of images is optimized as independent problems (Adam's update is per pixel).

``stylize`` runs ``steps`` Adam updates on the pixels, starting from the content images and
clipping to [0, 1] after each step (projected gradient), in one of two loop modes:

* ``"python"``: a Python loop calling one jitted Adam step per iteration;
* ``"scan"``: all steps in one jitted ``lax.fori_loop``.

Both compute the same thing (to float rounding). On XLA CPU convolutions inside a loop body run
slower than in a standalone program (jax-ml/jax#12868): at 64×64, batch 16, the default layers,
random weights, on this project's 2-core CPU, a step took 1.25 s in the Python loop and 2.63 s
inside ``fori_loop`` (2.1×; compile + first step 3.8 s vs 5.8 s). So ``loop="auto"`` (the
default) picks ``"python"`` on CPU and ``"scan"`` on accelerators (not measured there; one
``fori_loop`` saves the per-step dispatch).

``default_style_image`` draws a colourful deterministic pattern, so the style needs no image
file. Mapping whole datasets (chunked, cached on disk) is ``distill_jax.maps.style``'s job.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from distill_jax import vgg

DEFAULT_CONTENT_LAYERS = ("relu4_2",)
DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
LOOPS = ("auto", "python", "scan")
_TINY = 1e-30  # guards the normalized style term against an all-zero target Gram (dead layer)


def gram_matrix(features: jax.Array) -> jax.Array:
  """``[B, H, W, C]`` activations → ``[B, C, C]`` Gram matrices ``Fᵀ F / (H·W)``."""
  if features.ndim != 4:
    raise ValueError(f"gram_matrix expects features [B, H, W, C], got shape {features.shape}.")
  batch, height, width, channels = features.shape
  flat = features.reshape(batch, height * width, channels)
  return jnp.einsum("bmc,bmd->bcd", flat, flat) / (height * width)


def style_loss(
  features: Mapping[str, jax.Array],
  target_grams: Mapping[str, jax.Array],
  normalize: bool = False,
) -> jax.Array:
  """Per-image style loss ``Σ_l E_l`` (see the module docstring), shape ``[B]``.

  Args:
    features: ``{layer: [B, H, W, C]}`` activations of the images being optimized.
    target_grams: ``{layer: [B or 1, C, C]}`` Gram matrices of the style images (one per image,
      or one broadcast to all); must have the same layers as ``features``.
    normalize: divide each layer's squared difference by the squared Frobenius norm of its
      target Gram (relative error; needed with random weights), instead of taking the mean.
  """
  _check_same_layers(features, target_grams, "style_loss", "target_grams")
  total = 0.0
  for name, activation in features.items():
    squared = jnp.square(gram_matrix(activation) - target_grams[name])
    if normalize:
      target_norm = jnp.sum(jnp.square(target_grams[name]), axis=(-2, -1))
      total = total + jnp.sum(squared, axis=(-2, -1)) / jnp.maximum(target_norm, _TINY)
    else:
      total = total + jnp.mean(squared, axis=(-2, -1))
  return total


def content_loss(features: Mapping[str, jax.Array], targets: Mapping[str, jax.Array]) -> jax.Array:
  """Per-image ``Σ_l mean((F_l − P_l)²)`` over the layers of ``features``, shape ``[B]``."""
  _check_same_layers(features, targets, "content_loss", "targets")
  total = 0.0
  for name, activation in features.items():
    total = total + jnp.mean(jnp.square(activation - targets[name]), axis=(1, 2, 3))
  return total


def _check_same_layers(features, targets, function: str, argument: str) -> None:
  if set(features) != set(targets):
    raise ValueError(
      f"{function}: features have layers {sorted(features)} but {argument} has "
      f"{sorted(targets)}; compute both for the same layers."
    )


@dataclasses.dataclass(frozen=True)
class TransferSettings:
  """Everything ``stylize`` compiles in (hashable: a static argument of the jitted functions)."""

  preprocessing: str = "torch"
  pool: str = "avg"
  content_layers: tuple[str, ...] = DEFAULT_CONTENT_LAYERS
  style_layers: tuple[str, ...] = DEFAULT_STYLE_LAYERS
  normalize_style: bool = True

  def __post_init__(self):
    if self.preprocessing not in vgg.PREPROCESSINGS:
      raise ValueError(
        f"unknown preprocessing {self.preprocessing!r}; use the one the VGG weights loader "
        f"returned ({' or '.join(vgg.PREPROCESSINGS)})."
      )
    if self.pool not in vgg.POOLS:
      raise ValueError(f"unknown pool {self.pool!r}; use 'avg' (Gatys et al.) or 'max'.")
    object.__setattr__(self, "content_layers", vgg.check_layers(self.content_layers))
    object.__setattr__(self, "style_layers", vgg.check_layers(self.style_layers))

  @property
  def layers(self) -> tuple[str, ...]:
    return tuple(dict.fromkeys(self.content_layers + self.style_layers))


def _features(vgg_params, images, settings: TransferSettings, layers) -> dict[str, jax.Array]:
  network = vgg.VGG19(preprocessing=settings.preprocessing, pool=settings.pool)
  return network.apply(vgg_params, images, layers)


def _targets(vgg_params, content_images, style_images, settings: TransferSettings):
  """(content features of the content images, Gram matrices of the style images)."""
  content = _features(vgg_params, content_images, settings, settings.content_layers)
  style = _features(vgg_params, style_images, settings, settings.style_layers)
  return content, {name: gram_matrix(activation) for name, activation in style.items()}


def _loss(images, vgg_params, targets, weights, settings: TransferSettings) -> jax.Array:
  """Per-image total loss ``α·content + β·style`` of ``images`` against precomputed targets."""
  content_targets, style_grams = targets
  content_weight, style_weight = weights
  features = _features(vgg_params, images, settings, settings.layers)
  content = content_loss(
    {name: features[name] for name in settings.content_layers}, content_targets
  )
  style = style_loss(
    {name: features[name] for name in settings.style_layers}, style_grams, settings.normalize_style
  )
  return content_weight * content + style_weight * style


def _adam_step(images, opt_state, vgg_params, targets, hyper, settings: TransferSettings):
  learning_rate, *weights = hyper
  grads = jax.grad(lambda x: jnp.sum(_loss(x, vgg_params, targets, weights, settings)))(images)
  updates, opt_state = optax.adam(learning_rate).update(grads, opt_state)
  return jnp.clip(images + updates, 0.0, 1.0), opt_state


@functools.partial(jax.jit, static_argnames="settings")
def _start(vgg_params, content_images, style_images, settings: TransferSettings):
  targets = _targets(vgg_params, content_images, style_images, settings)
  return targets, optax.adam(0.0).init(content_images)  # Adam's state does not hold the rate


_jitted_step = jax.jit(_adam_step, static_argnames="settings")


@functools.partial(jax.jit, static_argnames="settings")
def _stylize_scan(vgg_params, content_images, style_images, hyper, steps, settings):
  targets = _targets(vgg_params, content_images, style_images, settings)

  def body(_, state):
    return _adam_step(*state, vgg_params, targets, hyper, settings)

  state = (content_images, optax.adam(0.0).init(content_images))
  return jax.lax.fori_loop(0, steps, body, state)[0]


@functools.partial(jax.jit, static_argnames="settings")
def _jitted_loss(images, vgg_params, content_images, style_images, weights, settings):
  targets = _targets(vgg_params, content_images, style_images, settings)
  return _loss(images, vgg_params, targets, weights, settings)


def loss_settings(
  *,
  preprocessing: str,
  content_weight: float,
  style_weight: float,
  content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS,
  style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS,
  normalize_style: bool = True,
  pool: str = "avg",
) -> tuple[TransferSettings, tuple[jax.Array, jax.Array]]:
  """The loss options of ``transfer_loss`` and ``stylize``: ``(settings compiled in, (α, β))``.

  Args:
    preprocessing: the preprocessing returned with the VGG weights (``"torch"``/``"caffe"``).
    content_weight, style_weight: α and β of the loss.
    content_layers, style_layers: VGG19 activations (``relu{b}_{c}``) of each term.
    normalize_style: per-layer relative style error (use with random weights).
    pool: ``"avg"`` (Gatys et al. for synthesis) or ``"max"``.
  """
  settings = TransferSettings(
    preprocessing=preprocessing,
    pool=pool,
    content_layers=tuple(content_layers),
    style_layers=tuple(style_layers),
    normalize_style=bool(normalize_style),
  )
  return settings, (jnp.float32(content_weight), jnp.float32(style_weight))


def transfer_loss(
  images: jax.Array, content_images: jax.Array, style_images: jax.Array, vgg_params: dict, **options
) -> jax.Array:
  """The per-image loss ``L(x)`` (module docstring) that ``stylize`` minimizes, shape ``[B]``;
  ``options`` are ``loss_settings``'s keyword arguments."""
  settings, weights = loss_settings(**options)
  content_images, style_images = _check_images(content_images, style_images)
  images = jnp.asarray(images, jnp.float32)
  if images.shape != content_images.shape:
    raise ValueError(
      f"transfer_loss: images {images.shape} and content_images {content_images.shape} must "
      "have the same shape."
    )
  return _jitted_loss(images, vgg_params, content_images, style_images, weights, settings)


def stylize(
  content_images: jax.Array,
  style_images: jax.Array,
  vgg_params: dict,
  *,
  steps: int,
  learning_rate: float,
  loop: str = "auto",
  **loss_options,
) -> jax.Array:
  """Gatys style transfer of a batch: ``steps`` Adam updates on the pixels from the content.

  Args:
    content_images: ``[B, H, W, 3]`` RGB in [0, 1].
    style_images: ``[H', W', 3]``, ``[1, H', W', 3]`` (one style for all) or ``[B, H', W', 3]``
      (one per content image), RGB in [0, 1]; the size may differ from the content's.
    vgg_params: VGG19 variables (``vgg.load_weights`` / ``vgg.random_weights``).
    steps: number of Adam updates (0 returns the content images).
    learning_rate: Adam's step size in pixel units (pixels live in [0, 1]).
    loop: ``"python"`` (a jitted step per iteration), ``"scan"`` (one jitted ``fori_loop``) or
      ``"auto"`` (python on CPU, scan otherwise).
    **loss_options: the loss (``loss_settings``): ``preprocessing`` (the one returned with
      ``vgg_params``), ``content_weight``, ``style_weight``, the layers, ``normalize_style``,
      ``pool``.

  Returns:
    ``[B, H, W, 3]`` float32 images in [0, 1]. Deterministic; one compilation per shape and
    settings (the weights, learning rate and step count are not compiled in).
  """
  settings, weights = loss_settings(**loss_options)
  content_images, style_images = _check_images(content_images, style_images)
  if not (isinstance(steps, (int, np.integer)) and steps >= 0):
    raise ValueError(f"stylize: steps must be an integer >= 0, got {steps!r}.")
  if loop not in LOOPS:
    raise ValueError(f"stylize: unknown loop {loop!r}; use one of {', '.join(LOOPS)}.")
  if loop == "auto":
    loop = "python" if jax.default_backend() == "cpu" else "scan"
  hyper = (jnp.float32(learning_rate), *weights)
  vgg_params = jax.tree.map(jnp.asarray, vgg_params)  # on device once, not once per step
  if loop == "scan":
    return _stylize_scan(
      vgg_params, content_images, style_images, hyper, jnp.int32(steps), settings
    )
  targets, opt_state = _start(vgg_params, content_images, style_images, settings)
  images = content_images
  for _ in range(steps):
    images, opt_state = _jitted_step(images, opt_state, vgg_params, targets, hyper, settings)
  return images


def default_style_image(size: int | tuple[int, int]) -> np.ndarray:
  """A deterministic colourful ``[H, W, 3]`` float32 pattern in [0, 1] (``size`` = S or (H, W)).

  With u, v ∈ [0, 1) the column and row coordinates, each channel is a sinusoid of warped
  coordinates (interfering waves and diagonal stripes):

      R = ½ + ½ sin(2π (3u + 0.6 sin(2π·2v)))
      G = ½ + ½ sin(2π (4v + 0.5 cos(2π·3u)) + 1)
      B = ½ + ½ sin(2π·5 (u + v) + 2 sin(2π·u·v))

  so its Gram statistics are rich at every VGG scale and no image file is needed.
  """
  height, width = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
  if not (height >= 1 and width >= 1):
    raise ValueError(f"default_style_image: size must be >= 1, got {size!r}.")
  v, u = np.meshgrid(np.arange(height) / height, np.arange(width) / width, indexing="ij")
  red = np.sin(2 * np.pi * (3 * u + 0.6 * np.sin(2 * np.pi * 2 * v)))
  green = np.sin(2 * np.pi * (4 * v + 0.5 * np.cos(2 * np.pi * 3 * u)) + 1.0)
  blue = np.sin(2 * np.pi * 5 * (u + v) + 2.0 * np.sin(2 * np.pi * u * v))
  return (0.5 + 0.5 * np.stack([red, green, blue], axis=-1)).astype(np.float32)


def _check_images(content_images, style_images) -> tuple[jax.Array, jax.Array]:
  content_images = jnp.asarray(content_images, jnp.float32)
  style_images = jnp.asarray(style_images, jnp.float32)
  if style_images.ndim == 3:
    style_images = style_images[None]
  if content_images.ndim != 4 or content_images.shape[-1] != 3:
    raise ValueError(
      f"content_images must be RGB [B, H, W, 3] in [0, 1], got shape {content_images.shape}; "
      "repeat a grayscale channel 3 times first."
    )
  if style_images.ndim != 4 or style_images.shape[-1] != 3:
    raise ValueError(
      f"style_images must be RGB [H, W, 3] or [B, H, W, 3] in [0, 1], got shape "
      f"{style_images.shape}."
    )
  if style_images.shape[0] not in (1, content_images.shape[0]):
    raise ValueError(
      f"{style_images.shape[0]} style images for {content_images.shape[0]} content images; "
      "pass one style image (for all) or one per content image."
    )
  return content_images, style_images
