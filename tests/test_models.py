"""Models: output shapes and parameter counts of the seed's teacher and student."""

import jax
import flax.linen as nn
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


def _plain_and_narrow_losses(inputs, labels):
  """The cross-entropy of ``inputs @ kernel + bias`` through ``lax.dot_general`` and through
  ``narrow_kernel_dot_general``, as functions of ``(kernel, bias)``."""

  def loss(dot_general):
    def fn(kernel, bias):
      logits = dot_general(inputs, kernel, (((inputs.ndim - 1,), (0,)), ((), ()))) + bias
      picked = jnp.take_along_axis(jax.nn.log_softmax(logits), labels[..., None], -1)
      return -picked.mean()

    return fn

  return loss(jax.lax.dot_general), loss(models.narrow_kernel_dot_general)


def test_narrow_kernel_dot_matches_dot_general_in_value_and_gradients():
  keys = jax.random.split(jax.random.key(3), 4)
  inputs = jax.random.normal(keys[0], (2, 50, 784))  # batch axes before the features
  kernel = jax.random.normal(keys[1], (784, 10)) * 0.03
  bias = jax.random.normal(keys[2], (10,))
  labels = jax.random.randint(keys[3], (2, 50), 0, 10)
  plain, narrow = _plain_and_narrow_losses(inputs, labels)
  assert float(narrow(kernel, bias)) == pytest.approx(float(plain(kernel, bias)), rel=1e-6)
  want = jax.grad(plain, argnums=(0, 1))(kernel, bias)
  for got in (
    jax.grad(narrow, argnums=(0, 1))(kernel, bias),
    jax.jit(jax.grad(narrow, argnums=(0, 1)))(kernel, bias),
  ):
    for g, w in zip(got, want):
      assert g.shape == w.shape
      assert jnp.allclose(g, w, rtol=1e-5, atol=1e-7), float(jnp.abs(g - w).max())
  # the inputs' gradient too (a layer inside a network passes it on)
  input_grad = lambda dot: jax.grad(lambda x: dot(x, kernel, (((2,), (0,)), ((), ()))).sum())  # noqa: E731
  assert jnp.allclose(
    input_grad(models.narrow_kernel_dot_general)(inputs), input_grad(jax.lax.dot_general)(inputs)
  )


def test_narrow_kernel_dot_under_vmap_over_runs():
  """The runs axis: vmapped kernels, each run its own batch (as the students' epoch)."""
  keys = jax.random.split(jax.random.key(4), 3)
  inputs = jax.random.normal(keys[0], (5, 40, 300))
  kernels = jax.random.normal(keys[1], (5, 300, 3)) * 0.05
  labels = jax.random.randint(keys[2], (5, 40), 0, 3)

  def run_grad(use_narrow):
    def one(x, y, kernel):
      plain, narrow = _plain_and_narrow_losses(x, y)
      return jax.grad(narrow if use_narrow else plain)(kernel, jnp.zeros(3))

    return jax.jit(jax.vmap(one))(inputs, labels, kernels)

  assert jnp.allclose(run_grad(True), run_grad(False), rtol=1e-5, atol=1e-7)


def test_narrow_kernel_dot_refuses_other_contractions():
  x, kernel = jnp.ones((4, 300)), jnp.ones((300, 5))
  with pytest.raises(ValueError, match="contracts the inputs' last axis"):
    models.narrow_kernel_dot_general(x, kernel.T, (((1,), (1,)), ((), ())))
  with pytest.raises(ValueError, match="default precision"):
    models.narrow_kernel_dot_general(x, kernel, (((1,), (0,)), ((), ())), jax.lax.Precision.HIGHEST)


@pytest.mark.parametrize(
  "model,input_shape,revision",
  [
    (models.get_model("linear"), (28, 28, 1), models.ARITHMETIC_REVISION),  # 784 → 10
    (models.get_model("mlp", hidden=(256, 128, 64, 64)), (24, 24, 1), 1),  # 64 → 10 at the end
    (models.get_model("linear"), (8, 8, 1), 1),  # 64 → 10
    (models.get_model("cnn", features=(8,), dense=256), (8, 8, 1), models.ARITHMETIC_REVISION),
  ],
)
def test_arithmetic_revision_names_models_with_a_narrow_output_layer(model, input_shape, revision):
  assert models.arithmetic_revision(model, input_shape) == revision


class _PlainLinear(nn.Module):
  """The linear student as a plain ``nn.Dense`` (no narrow kernel dot)."""

  @nn.compact
  def __call__(self, images):
    return nn.Dense(10)(images.reshape(images.shape[0], -1))


def test_linear_student_uses_the_narrow_kernel_dot_and_keeps_its_parameters():
  """The same parameters as a plain Dense from the same key, logits and gradients equal to
  rounding; the layer's dot is the narrow one."""
  student, plain = models.get_model("linear"), _PlainLinear()
  params, want = _init(student, (28, 28, 1)), _init(plain, (28, 28, 1))
  assert jax.tree.map(jnp.array_equal, params, want) == jax.tree.map(lambda _: True, want)
  images = jax.random.uniform(jax.random.key(1), (16, 28, 28, 1))
  grads = [jax.grad(lambda p, m=m: m.apply(p, images).std())(params) for m in (student, plain)]
  for got, expected in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    assert jnp.allclose(got, expected, rtol=1e-5, atol=1e-7)
  assert models.dense(10, 784, "flax").dot_general is models.narrow_kernel_dot_general
  assert models.dense(10, 64, "flax").dot_general is None
  assert models.dense(64, 784, "flax").dot_general is None
