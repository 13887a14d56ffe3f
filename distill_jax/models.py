"""Teacher and student networks (Flax linen: pure ``init``/``apply``), chosen by name.

* ``mlp``: flatten → Dense+ReLU per hidden width → Dense(num_classes). The seed's teacher is
  784-256-128-64-64-10, i.e. ``hidden=(256, 128, 64, 64)``.
* ``linear``: flatten → Dense(num_classes), the seed's student (an ``mlp`` with no hidden layer).
* ``cnn``: two 3×3 conv + ReLU + 2×2 average-pool blocks, one hidden Dense, Dense(num_classes).

Every model maps NHWC images ``[N, H, W, C]`` to logits ``[N, num_classes]``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn


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

  @nn.compact
  def __call__(self, images):
    x = images
    for width in self.features:
      x = nn.relu(nn.Conv(width, kernel_size=(3, 3))(x))
      x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = x.reshape(x.shape[0], -1)
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
) -> nn.Module:
  """Builds the model ``name`` (one of ``MODEL_NAMES``)."""
  if name == "mlp":
    return MLP(hidden=tuple(hidden), num_classes=num_classes)
  if name == "linear":
    return MLP(hidden=(), num_classes=num_classes)
  if name == "cnn":
    return CNN(features=tuple(features), dense=dense, num_classes=num_classes)
  raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}.")
