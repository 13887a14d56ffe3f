"""Models: output shapes and parameter counts of the seed's teacher and student."""

import jax
import jax.numpy as jnp
import pytest

from distill_jax import models


def _count(params):
  return sum(x.size for x in jax.tree.leaves(params))


@pytest.mark.parametrize(
  "name,input_shape",
  [("mlp", (28, 28, 1)), ("mlp", (24, 24, 1)), ("linear", (28, 28, 1)), ("cnn", (28, 28, 1))],
)
def test_logits_shape(name, input_shape):
  model = models.get_model(name)
  params = model.init(jax.random.key(0), jnp.zeros((1, *input_shape)))
  assert model.apply(params, jnp.ones((3, *input_shape))).shape == (3, 10)


def test_seed_architectures():
  teacher = models.get_model("mlp", hidden=(256, 128, 64, 64))
  params = teacher.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  want = (784 * 256 + 256) + (256 * 128 + 128) + (128 * 64 + 64) + (64 * 64 + 64) + (64 * 10 + 10)
  assert _count(params) == want
  student = models.get_model("linear")
  assert _count(student.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))) == 7850


def test_cnn_features_and_global_pool():
  model = models.get_model("cnn", features=(8, 16, 32), dense=16, global_pool=True)
  params = model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  # Global pooling: the parameter count does not depend on the input size ...
  assert model.apply(params, jnp.ones((2, 64, 64, 3))).shape == (2, 10)
  convs = (3 * 9 * 8 + 8) + (8 * 9 * 16 + 16) + (16 * 9 * 32 + 32)
  assert _count(params) == convs + (32 * 16 + 16) + (16 * 10 + 10)
  # ... while the flattening CNN's dense layer sees (32 / 2³)² · 32 inputs.
  flat = models.get_model("cnn", features=(8, 16, 32), dense=16)
  flat_params = flat.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))
  assert _count(flat_params) == convs + (4 * 4 * 32 * 16 + 16) + (16 * 10 + 10)


def test_unknown_model():
  with pytest.raises(ValueError, match="unknown model 'resnet'"):
    models.get_model("resnet")
