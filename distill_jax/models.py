"""Teacher and student networks (Flax linen: pure ``init``/``apply``), chosen by name.

* ``mlp``: flatten → Dense+ReLU per hidden width → Dense(num_classes). The seed's teacher is
  784-256-128-64-64-10, i.e. ``hidden=(256, 128, 64, 64)``.
* ``linear``: flatten → Dense(num_classes), the seed's student (an ``mlp`` with no hidden layer).
* ``cnn``: per width in ``features`` a 3×3 conv + ReLU + 2×2 average-pool block, then (flattened,
  or averaged over space with ``global_pool``) one hidden Dense + ReLU, Dense(num_classes). The
  default (32, 64) is Flax's MNIST example; e.g. (32, 64, 128) with ``global_pool`` for
  Imagenette.

Every model maps NHWC images ``[N, H, W, C]`` to logits ``[N, num_classes]``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
  """Fully connected ReLU network on flattened inputs."""

  hidden: Sequence[int] = (256, 128, 64, 64)
  num_classes: int = 10

  @nn.compact
  def __call__(self, images):
    x = images.reshape(images.shape[0], -1)
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_classes)(x)


class CNN(nn.Module):
  """A small convolutional network (as in Flax's MNIST example)."""

  features: Sequence[int] = (32, 64)
  dense: int = 256
  num_classes: int = 10
  global_pool: bool = False  # average over space before the dense layers (any input size)

  @nn.compact
  def __call__(self, images):
    x = images
    for width in self.features:
      x = nn.relu(nn.Conv(width, kernel_size=(3, 3))(x))
      x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = x.mean(axis=(1, 2)) if self.global_pool else x.reshape(x.shape[0], -1)
    x = nn.relu(nn.Dense(self.dense)(x))
    return nn.Dense(self.num_classes)(x)


MODEL_NAMES = ("mlp", "linear", "cnn")


def get_model(
  name: str,
  *,
  num_classes: int = 10,
  hidden: Sequence[int] = (256, 128, 64, 64),
  features: Sequence[int] = (32, 64),
  dense: int = 256,
  global_pool: bool = False,
) -> nn.Module:
  """Builds the model ``name`` (one of ``MODEL_NAMES``); ``hidden`` is for ``mlp``,
  ``features``, ``dense`` and ``global_pool`` for ``cnn``."""
  if name == "mlp":
    return MLP(hidden=tuple(hidden), num_classes=num_classes)
  if name == "linear":
    return MLP(hidden=(), num_classes=num_classes)
  if name == "cnn":
    return CNN(
      features=tuple(features), dense=dense, num_classes=num_classes, global_pool=global_pool
    )
  raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}.")


def from_config(part_config) -> nn.Module:
  """The model of a ``teacher`` / ``student`` config section (``model`` and its widths)."""
  return get_model(
    part_config.model,
    hidden=part_config.hidden,
    features=part_config.features,
    dense=part_config.dense,
    global_pool=part_config.global_pool,
  )


def layer_widths(part_config) -> tuple[int, ...]:
  """Widths that describe the model: conv features + dense for a cnn, else the hidden widths."""
  if part_config.model == "cnn":
    return (*part_config.features, part_config.dense)
  return tuple(part_config.hidden)


def init_fn(model: nn.Module, input_shape: tuple[int, ...]):
  """``key -> params`` of ``model`` for images of ``input_shape`` (H, W, C)."""
  return lambda key: model.init(key, jnp.zeros((1, *input_shape), jnp.float32))


def validate(part_config, where: str) -> None:
  """Raises ValueError naming a bad model choice of section ``where`` and the fix."""
  if part_config.model not in MODEL_NAMES:
    raise ValueError(
      f"unknown {where} model {part_config.model!r}; choose one of {', '.join(MODEL_NAMES)}."
    )
