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
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

INIT_NAMES = ("flax", "torch")


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
      x = nn.relu(nn.Dense(width, **layer_init(self.init_scheme, x.shape[-1]))(x))
    return nn.Dense(self.num_classes, **layer_init(self.init_scheme, x.shape[-1]))(x)


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
    x = nn.relu(nn.Dense(self.dense, **layer_init(self.init_scheme, x.shape[-1]))(x))
    return nn.Dense(self.num_classes, **layer_init(self.init_scheme, x.shape[-1]))(x)


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
