"""Models: output shapes and parameter counts of the seed's teacher and student."""

import jax
import jax.numpy as jnp
import pytest

from distill_jax import models


def _init(model, input_shape, seed=0):
  """The model's parameters for ``input_shape`` (jitted: eager init compiles op by op)."""
  return jax.jit(model.init)(jax.random.key(seed), jnp.zeros((1, *input_shape)))


def _count(params):
  return sum(x.size for x in jax.tree.leaves(params))


@pytest.mark.parametrize(
  "name,input_shape",
  [("mlp", (28, 28, 1)), ("mlp", (24, 24, 1)), ("linear", (28, 28, 1)), ("cnn", (28, 28, 1))],
)
def test_logits_shape(name, input_shape):
  model = models.get_model(name)
  params = _init(model, input_shape)
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
  params = _init(model, (32, 32, 3))
  # Global pooling: the parameter count does not depend on the input size ...
  assert model.apply(params, jnp.ones((2, 64, 64, 3))).shape == (2, 10)
  convs = (3 * 9 * 8 + 8) + (8 * 9 * 16 + 16) + (16 * 9 * 32 + 32)
  assert _count(params) == convs + (32 * 16 + 16) + (16 * 10 + 10)
  # ... while the flattening CNN's dense layer sees (32 / 2³)² · 32 inputs.
  flat = models.get_model("cnn", features=(8, 16, 32), dense=16)
  flat_params = _init(flat, (32, 32, 3))
  assert _count(flat_params) == convs + (4 * 4 * 32 * 16 + 16) + (16 * 10 + 10)


def test_unknown_model():
  with pytest.raises(ValueError, match="unknown model 'resnet'"):
    models.get_model("resnet")


def _layers(params):
  """``[(kernel, bias)]`` of every Dense / Conv layer, in creation order."""
  layers = params["params"]
  return [(layers[name]["kernel"], layers[name]["bias"]) for name in layers]


@pytest.mark.parametrize(
  "name,input_shape,fan_ins",
  [
    ("mlp", (28, 28, 1), (784, 256, 128, 64, 64)),
    ("linear", (24, 24, 1), (576,)),
    # cnn (8, 16) → dense 32: convs see 3·3·C inputs, the dense layers the flattened map.
    ("cnn", (8, 8, 3), (3 * 3 * 3, 3 * 3 * 8, 2 * 2 * 16, 32)),
  ],
)
def test_torch_init_bounds(name, input_shape, fan_ins):
  """PyTorch's nn.Linear / nn.Conv2d defaults: kernel and bias in [−1/√fan_in, 1/√fan_in]."""
  model = models.get_model(name, init="torch", features=(8, 16), dense=32)
  params = _init(model, input_shape)
  layers = _layers(params)
  assert len(layers) == len(fan_ins)
  for (kernel, bias), fan_in in zip(layers, fan_ins):
    assert kernel.shape[:-1] == (fan_in,) or int(jnp.prod(jnp.array(kernel.shape[:-1]))) == fan_in
    bound = 1 / fan_in**0.5
    for values in (kernel, bias):
      assert float(jnp.abs(values).max()) <= bound
    # Not a degenerate draw: the kernel fills its range.
    assert float(jnp.abs(kernel).max()) > 0.9 * bound


def test_torch_init_moments_on_a_large_layer():
  """Var of U(−b, b) is b²/3 = 1/(3 fan_in); Flax's lecun_normal kernel has 1/fan_in, zero bias."""
  fan_in, width = 1000, 2000
  torch_params = _init(models.get_model("mlp", hidden=(width,), init="torch"), (fan_in, 1, 1), 1)
  kernel, bias = _layers(torch_params)[0]
  assert float(kernel.mean()) == pytest.approx(0.0, abs=2e-4)
  assert float(kernel.var()) == pytest.approx(1 / (3 * fan_in), rel=0.01)
  assert float(bias.var()) == pytest.approx(1 / (3 * fan_in), rel=0.1)
  flax_params = _init(models.get_model("mlp", hidden=(width,), init="flax"), (fan_in, 1, 1), 1)
  kernel, bias = _layers(flax_params)[0]
  assert float(kernel.var()) == pytest.approx(1 / fan_in, rel=0.02)
  assert not bias.any()


def test_torch_init_matches_pytorch_layers():
  """Same bounds and spread as torch.nn.Linear / Conv2d's own reset_parameters (when torch is
  installed: the ``bench`` / ``test`` extras)."""
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  torch_linear = torch.nn.Linear(500, 400)
  torch_conv = torch.nn.Conv2d(16, 64, 3)
  cnn = models.get_model("cnn", init="torch", features=(64,), dense=400, global_pool=True)
  (conv_kernel, conv_bias), _, _ = _layers(_init(cnn, (8, 8, 16)))
  mlp = models.get_model("mlp", hidden=(400,), init="torch")
  (dense_kernel, dense_bias), _ = _layers(_init(mlp, (500, 1, 1)))
  pairs = [
    (conv_kernel, torch_conv.weight, 16 * 9),
    (conv_bias, torch_conv.bias, 16 * 9),
    (dense_kernel, torch_linear.weight, 500),
    (dense_bias, torch_linear.bias, 500),
  ]
  for ours, theirs, fan_in in pairs:
    theirs = theirs.detach().numpy()
    assert ours.size == theirs.size
    bound = 1 / fan_in**0.5
    assert float(jnp.abs(ours).max()) <= bound and float(abs(theirs).max()) <= bound
    rel = 0.03 if ours.size > 1000 else 0.3  # biases: 64 / 400 draws
    assert float(ours.std()) == pytest.approx(float(theirs.std()), rel=rel)


def test_unknown_init():
  with pytest.raises(ValueError, match="unknown init 'xavier'"):
    models.get_model("mlp", init="xavier")
