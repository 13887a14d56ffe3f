"""Teacher and student networks (Flax linen: pure ``init``/``apply``), chosen by name.

* ``mlp``: flatten → Dense+ReLU per hidden width → Dense(num_classes). The seed's teacher is
  784-256-128-64-64-10, i.e. ``hidden=(256, 128, 64, 64)``.
* ``linear``: flatten → Dense(num_classes), the seed's student (an ``mlp`` with no hidden layer).
* ``cnn``: per width in ``features`` a 3×3 conv + ReLU + 2×2 average-pool block, then (flattened,
  or averaged over space with ``global_pool``) one hidden Dense + ReLU, Dense(num_classes). The
  default (32, 64) is Flax's MNIST example; e.g. (32, 64, 128) with ``global_pool`` for
  Imagenette.

Every model maps NHWC images ``[N, H, W, C]`` to logits ``[N, num_classes]``; ``num_classes``
is the dataset's class count (10 for the built-in ones).

A user adds a model with ``register_model(name, factory)``: ``factory(section, num_classes)``
gets the whole ``teacher`` / ``student`` config section (so it may read fields the user adds
there, which then enter the checkpoint keys) and returns a Flax module; ``--config.teacher.
model=<name>`` then picks it. Its output on a fixed probe enters the keys too
(``fingerprints.of_model``), so an edited model body is retrained, not reused.

Initialization (``init``), for every Dense and Conv layer with ``fan_in`` inputs per output
(``in_features`` for Dense, ``kh · kw · in_channels`` for Conv):

* ``flax``: Flax's defaults, kernel ~ lecun_normal (truncated normal, Var = 1 / fan_in), bias = 0.
* ``torch``: PyTorch's defaults for ``nn.Linear`` / ``nn.Conv2d`` (``kaiming_uniform_(a=√5)``
  and its bias rule): kernel and bias ~ U(−1/√fan_in, 1/√fan_in), i.e. Var = 1 / (3 fan_in).
  The reference (PyTorch) code of the talk uses these.

Narrow output layers (``narrow_kernel_dot_general``): a Dense layer with at least
``NARROW_MIN_INPUTS`` inputs and fewer than ``NARROW_MAX_OUTPUTS`` outputs (the linear student,
784 → 10) computes its kernel gradient ``∂L/∂W = Xᵀ G`` (``[in, out]``) as ``(Gᵀ X)ᵀ``: XLA's CPU
dot is ~3× faster writing a ``[10, 784]`` result than a ``[784, 10]`` one (25 vmapped
students' step on 2 cores: 1.6 ms → 0.55 ms for that product). The values are those of
``lax.dot_general`` up to float rounding (another summation order); ``ARITHMETIC_REVISION``
names that change in the checkpoint keys. It is a ``jax.custom_vjp``: reverse mode (``grad``,
``vjp``) works, forward mode (``jvp``, ``jacfwd``) through such a layer does not.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

INIT_NAMES = ("flax", "torch")

# Bumped whenever a built-in model computes its outputs or gradients with other arithmetic (a
# new summation order changes the trained parameters in their last bits): the teachers' and
# students' checkpoint keys hold it, so work saved by the older arithmetic is not reused.
# 2: ``narrow_kernel_dot_general`` for narrow output layers.
ARITHMETIC_REVISION = 2
NARROW_MIN_INPUTS = 256
NARROW_MAX_OUTPUTS = 16


@jax.custom_vjp
def _narrow_kernel_dot(inputs: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.dot_general(inputs, kernel, (((inputs.ndim - 1,), (0,)), ((), ())))


def _narrow_kernel_dot_fwd(inputs, kernel):
  return _narrow_kernel_dot(inputs, kernel), (inputs, kernel)


def _narrow_kernel_dot_bwd(residuals, output_grad):
  inputs, kernel = residuals
  inputs_grad = jax.lax.dot_general(
    output_grad, kernel, (((output_grad.ndim - 1,), (1,)), ((), ()))
  )
  rows = inputs.reshape(-1, inputs.shape[-1])  # [N, in]
  row_grads = output_grad.reshape(-1, output_grad.shape[-1])  # [N, out]
  kernel_grad_t = jax.lax.dot_general(row_grads, rows, (((0,), (0,)), ((), ())))  # [out, in]
  # The barrier keeps XLA from folding the transpose back into the dot (the slow layout).
  return inputs_grad, jax.lax.optimization_barrier(kernel_grad_t).T


_narrow_kernel_dot.defvjp(_narrow_kernel_dot_fwd, _narrow_kernel_dot_bwd)


def narrow_kernel_dot_general(inputs, kernel, dimension_numbers, precision=None):
  """``nn.Dense``'s ``dot_general`` for narrow output layers: ``inputs @ kernel`` whose kernel
  gradient is computed as ``(Gᵀ X)ᵀ`` (see the module docstring). Only Dense's own contraction
  (last axis of ``inputs`` with axis 0 of ``kernel``) at default precision."""
  expected = (((inputs.ndim - 1,), (0,)), ((), ()))
  given = tuple(tuple(tuple(axes) for axes in pair) for pair in dimension_numbers)
  if given != expected or precision is not None:
    raise ValueError(
      f"narrow_kernel_dot_general contracts the inputs' last axis with the kernel's first at "
      f"default precision (as nn.Dense does); got {dimension_numbers}, precision={precision}."
    )
  return _narrow_kernel_dot(inputs, kernel)


def is_narrow(in_features: int, features: int) -> bool:
  """Whether a Dense layer ``in_features → features`` is a narrow output layer."""
  return in_features >= NARROW_MIN_INPUTS and features < NARROW_MAX_OUTPUTS


def dense(features: int, in_features: int, init_scheme: str) -> nn.Dense:
  """``nn.Dense(features)`` with the scheme's initialization, and
  ``narrow_kernel_dot_general`` when it is a narrow output layer (module docstring)."""
  extra = {"dot_general": narrow_kernel_dot_general} if is_narrow(in_features, features) else {}
  return nn.Dense(features, **layer_init(init_scheme, in_features), **extra)


def arithmetic_revision(model: nn.Module, input_shape: tuple[int, ...]) -> int:
  """``ARITHMETIC_REVISION`` for a built-in model with a narrow output layer, else 1 (its
  arithmetic is what it always was): what the checkpoint keys record (``None`` keeps a key as
  it was). From the parameter shapes alone (``jax.eval_shape``, nothing is computed)."""
  params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, *input_shape)))
  kernels = [
    leaf.shape
    for path, leaf in jax.tree_util.tree_leaves_with_path(params)
    if getattr(path[-1], "key", None) == "kernel" and leaf.ndim == 2
  ]
  return ARITHMETIC_REVISION if any(is_narrow(*shape) for shape in kernels) else 1


def symmetric_uniform(bound: float):
  """A Flax initializer drawing U(−bound, bound) for every entry."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, minval=-bound, maxval=bound)

  return init


def layer_init(init: str, fan_in: int) -> dict:
  """``kernel_init`` / ``bias_init`` keyword arguments of a layer with ``fan_in`` inputs per
  output under the scheme ``init`` (see the module docstring); ``{}`` keeps Flax's defaults."""
  if init == "flax":
    return {}
  if init == "torch":
    bound = 1.0 / float(fan_in) ** 0.5
    return {"kernel_init": symmetric_uniform(bound), "bias_init": symmetric_uniform(bound)}
  raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INIT_NAMES)}.")


class MLP(nn.Module):
  """Fully connected ReLU network on flattened inputs."""

  hidden: Sequence[int] = (256, 128, 64, 64)
  num_classes: int = 10
  init_scheme: str = "flax"  # "flax" | "torch" (see the module docstring)

  @nn.compact
  def __call__(self, images):
    x = images.reshape(images.shape[0], -1)
    for width in self.hidden:
      x = nn.relu(dense(width, x.shape[-1], self.init_scheme)(x))
    return dense(self.num_classes, x.shape[-1], self.init_scheme)(x)


class CNN(nn.Module):
  """A small convolutional network (as in Flax's MNIST example)."""

  features: Sequence[int] = (32, 64)
  dense: int = 256
  num_classes: int = 10
  global_pool: bool = False  # average over space before the dense layers (any input size)
  init_scheme: str = "flax"  # "flax" | "torch" (see the module docstring)

  @nn.compact
  def __call__(self, images):
    x = images
    for width in self.features:
      conv_init = layer_init(self.init_scheme, 3 * 3 * x.shape[-1])
      x = nn.relu(nn.Conv(width, kernel_size=(3, 3), **conv_init)(x))
      x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = x.mean(axis=(1, 2)) if self.global_pool else x.reshape(x.shape[0], -1)
    x = nn.relu(dense(self.dense, x.shape[-1], self.init_scheme)(x))
    return dense(self.num_classes, x.shape[-1], self.init_scheme)(x)


MODEL_NAMES = ("mlp", "linear", "cnn")  # built in
_REGISTERED: dict[str, Callable[[Any, int], nn.Module]] = {}  # a user's models


def register_model(name: str, factory: Callable[[Any, int], nn.Module]) -> None:
  """Makes ``name`` a valid ``teacher.model`` / ``student.model``: ``factory(section,
  num_classes) -> nn.Module``. A built-in name is an error; registering a user's model again
  replaces it (a config file or notebook cell run twice)."""
  if name in MODEL_NAMES:
    raise ValueError(f"model {name!r} is built in; register yours under another name.")
  if not callable(factory):
    raise TypeError(f"register_model({name!r}, factory): factory must be callable.")
  _REGISTERED[name] = factory


def model_names() -> tuple[str, ...]:
  """Every valid ``model``: the built-in ones and the registered ones."""
  return (*MODEL_NAMES, *sorted(_REGISTERED))


def is_registered(name: str) -> bool:
  """Whether ``name`` is a user's model (``register_model``), not a built-in one."""
  return name in _REGISTERED


def get_model(
  name: str,
  *,
  num_classes: int = 10,
  hidden: Sequence[int] = (256, 128, 64, 64),
  features: Sequence[int] = (32, 64),
  dense: int = 256,
  global_pool: bool = False,
  init: str = "flax",
) -> nn.Module:
  """Builds the model ``name`` (one of ``MODEL_NAMES``); ``hidden`` is for ``mlp``,
  ``features``, ``dense`` and ``global_pool`` for ``cnn``; ``init`` is one of ``INIT_NAMES``."""
  if init not in INIT_NAMES:
    raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INIT_NAMES)}.")
  if name == "mlp":
    return MLP(hidden=tuple(hidden), num_classes=num_classes, init_scheme=init)
  if name == "linear":
    return MLP(hidden=(), num_classes=num_classes, init_scheme=init)
  if name == "cnn":
    return CNN(
      features=tuple(features),
      dense=dense,
      num_classes=num_classes,
      global_pool=global_pool,
      init_scheme=init,
    )
  raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}.")


def from_config(part_config, num_classes: int = 10) -> nn.Module:
  """The model of a ``teacher`` / ``student`` config section (``model`` and its widths) with
  ``num_classes`` outputs."""
  if part_config.model in _REGISTERED:
    return _REGISTERED[part_config.model](part_config, num_classes)
  return get_model(
    part_config.model,
    num_classes=num_classes,
    hidden=part_config.hidden,
    features=part_config.features,
    dense=part_config.dense,
    global_pool=part_config.global_pool,
    init=part_config.init,
  )


def layer_widths(part_config) -> tuple[int, ...]:
  """Widths that describe the model: conv features + dense for a cnn, else the hidden widths."""
  if part_config.model == "cnn":
    return (*part_config.features, part_config.dense)
  if part_config.model in _REGISTERED:
    return ()
  return tuple(part_config.hidden)


def init_fn(model: nn.Module, input_shape: tuple[int, ...]):
  """``key -> params`` of ``model`` for images of ``input_shape`` (H, W, C)."""
  return lambda key: model.init(key, jnp.zeros((1, *input_shape), jnp.float32))


def validate(part_config, where: str) -> None:
  """Raises ValueError naming a bad model choice of section ``where`` and the fix."""
  if part_config.model not in model_names():
    raise ValueError(
      f"unknown {where} model {part_config.model!r}; choose one of {', '.join(model_names())}, "
      "or register yours in a --config file (models.register_model)."
    )
  if part_config.init not in INIT_NAMES:
    raise ValueError(
      f"unknown {where} init {part_config.init!r}; set --config.{where}.init to one of "
      f"{', '.join(INIT_NAMES)}."
    )
