"""Gram matrices, style/content losses and batched Gatys style transfer (ranVGG weights)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from distill_jax import style, vgg

# A cheap setting (three conv layers) for the tests of mechanics; the defaults are tested once.
LIGHT = dict(content_layers=("relu2_1",), style_layers=("relu1_1", "relu2_1"))


@pytest.fixture(scope="module")
def weights():
  return vgg.random_weights(jax.random.key(0))


def _content_images(batch, size, seed=0):
  """Smooth colourful images (ramps and waves) in [0, 1]."""
  y, x = np.mgrid[0:size, 0:size] / size
  images = [
    np.stack([x, y, 0.5 + 0.3 * np.sin(6 * x * (i + 1) + seed)], axis=-1) for i in range(batch)
  ]
  return np.stack(images).astype(np.float32)


def test_gram_matrix_hand_computed():
  # One image, H = 2, W = 1, C = 2: positions (1, 2) and (3, 4).
  features = np.array([[[[1.0, 2.0]], [[3.0, 4.0]]]], np.float32)
  # G = Fᵀ F / (H W) = [[1+9, 2+12], [2+12, 4+16]] / 2.
  expected = np.array([[[5.0, 7.0], [7.0, 10.0]]], np.float32)
  np.testing.assert_allclose(style.gram_matrix(features), expected)
  # Per image; scaling the features by 2 scales the Gram by 4.
  both = style.gram_matrix(np.concatenate([features, 2 * features]))
  np.testing.assert_allclose(both, np.concatenate([expected, 4 * expected]))
  with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
    style.gram_matrix(features[0])


def test_style_loss_values_zero_at_target_and_broadcast():
  rng = np.random.default_rng(0)
  features = {"a": rng.normal(size=(2, 3, 3, 4)), "b": rng.normal(size=(2, 2, 2, 5))}
  features = {name: jnp.asarray(value, jnp.float32) for name, value in features.items()}
  own = {name: style.gram_matrix(value) for name, value in features.items()}
  for normalize in (False, True):
    np.testing.assert_allclose(style.style_loss(features, own, normalize), [0.0, 0.0], atol=1e-6)

  style_features = {name: 1.5 * value[:1] + 0.3 for name, value in features.items()}
  target = {name: style.gram_matrix(value) for name, value in style_features.items()}  # [1, C, C]
  plain = np.asarray(style.style_loss(features, target, normalize=False))
  relative = np.asarray(style.style_loss(features, target, normalize=True))
  assert plain.shape == relative.shape == (2,)
  assert np.all(plain > 0) and np.all(relative > 0)
  # By hand with numpy: mean squared Gram difference / relative squared Frobenius error.
  for i in range(2):
    want_plain = want_relative = 0.0
    for name, value in features.items():
      flat = np.asarray(value[i]).reshape(-1, value.shape[-1])
      g = flat.T @ flat / flat.shape[0]
      a = np.asarray(target[name][0])
      want_plain += np.mean((g - a) ** 2)
      want_relative += np.sum((g - a) ** 2) / np.sum(a**2)
    np.testing.assert_allclose(plain[i], want_plain, rtol=1e-5)
    np.testing.assert_allclose(relative[i], want_relative, rtol=1e-5)

  # Scale: features and style ×s → the plain loss ×s⁴, the normalized one unchanged.
  scaled = {name: 10 * value for name, value in features.items()}
  scaled_target = {name: 100 * value for name, value in target.items()}
  np.testing.assert_allclose(style.style_loss(scaled, scaled_target), 1e4 * plain, rtol=1e-4)
  np.testing.assert_allclose(style.style_loss(scaled, scaled_target, True), relative, rtol=1e-4)

  with pytest.raises(ValueError, match="same layers"):
    style.style_loss(features, {"a": target["a"]})


def test_content_loss_is_mse():
  rng = np.random.default_rng(1)
  features = {"c": jnp.asarray(rng.normal(size=(3, 2, 2, 4)), jnp.float32)}
  np.testing.assert_allclose(style.content_loss(features, features), np.zeros(3), atol=0)
  target = {"c": features["c"] + jnp.arange(3.0)[:, None, None, None]}  # image i shifted by i
  np.testing.assert_allclose(style.content_loss(features, target), [0.0, 1.0, 4.0], rtol=1e-6)


def test_loss_gradients_match_finite_differences():
  rng = np.random.default_rng(2)
  features = jnp.asarray(rng.uniform(size=(1, 2, 2, 3)), jnp.float32)
  target = style.gram_matrix(jnp.asarray(rng.uniform(size=(1, 3, 3, 3)), jnp.float32))
  for normalize in (False, True):
    check_grads(
      lambda f: style.style_loss({"x": f}, {"x": target}, normalize).sum(),
      (features,),
      order=1,
      modes=["rev"],
      eps=1e-2,
      atol=1e-2,
      rtol=1e-2,
    )


def test_transfer_loss_gradient_through_vgg_is_finite(weights):
  variables, preprocessing = weights
  content = _content_images(2, 16)
  images = np.clip(content + 0.05 * np.random.default_rng(3).normal(size=content.shape), 0, 1)
  options = dict(preprocessing=preprocessing, content_weight=1.0, style_weight=10.0, **LIGHT)
  grads = jax.grad(
    lambda x: style.transfer_loss(
      x, content, style.default_style_image(16), variables, **options
    ).sum()
  )(jnp.asarray(images, jnp.float32))
  assert grads.shape == images.shape
  assert np.all(np.isfinite(grads)) and float(jnp.abs(grads).max()) > 0


def test_stylize_defaults_lower_the_loss_in_range_and_deterministic(weights):
  variables, preprocessing = weights
  content = _content_images(2, 16)
  style_image = style.default_style_image(16)
  options = dict(preprocessing=preprocessing, content_weight=1.0, style_weight=10.0)
  out = style.stylize(content, style_image, variables, steps=5, learning_rate=0.05, **options)
  assert out.shape == content.shape and out.dtype == jnp.float32
  assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
  assert not np.allclose(out, content)
  before = style.transfer_loss(content, content, style_image, variables, **options)
  after = style.transfer_loss(out, content, style_image, variables, **options)
  assert np.all(np.asarray(after) < np.asarray(before)), (before, after)
  again = style.stylize(content, style_image, variables, steps=5, learning_rate=0.05, **options)
  np.testing.assert_array_equal(np.asarray(again), np.asarray(out))
  zero_steps = style.stylize(
    content, style_image, variables, steps=0, learning_rate=0.05, **options
  )
  np.testing.assert_array_equal(np.asarray(zero_steps), content)


def test_scan_loop_equals_python_loop(weights):
  variables, preprocessing = weights
  content, style_image = _content_images(2, 16), style.default_style_image(16)
  options = dict(
    preprocessing=preprocessing, steps=5, learning_rate=0.05, content_weight=1.0, **LIGHT
  )
  python = style.stylize(
    content, style_image, variables, style_weight=10.0, loop="python", **options
  )
  scan = style.stylize(content, style_image, variables, style_weight=10.0, loop="scan", **options)
  np.testing.assert_allclose(scan, python, atol=1e-4)
  assert not np.allclose(python, content)


def test_stylize_compiles_once_per_shape(weights, monkeypatch):
  """A second batch of the same shape (other pixels, other learning rate) is not re-traced."""
  variables, preprocessing = weights
  traces = []
  original = style.content_loss
  monkeypatch.setattr(
    style, "content_loss", lambda *args: traces.append(1) or original(*args)
  )  # called once per trace of the loss
  options = dict(preprocessing=preprocessing, steps=2, content_weight=1.0, style_weight=5.0)
  style_image = style.default_style_image(8)  # shapes used by no other test: a fresh trace
  first = style.stylize(
    _content_images(3, 12),
    style_image,
    variables,
    learning_rate=0.05,
    loop="python",
    **options,
    **LIGHT,
  )
  assert len(traces) >= 1
  count = len(traces)
  second = style.stylize(
    _content_images(3, 12, seed=1),
    style_image,
    variables,
    learning_rate=0.02,
    loop="python",
    **options,
    **LIGHT,
  )
  assert len(traces) == count
  assert first.shape == second.shape == (3, 12, 12, 3)
  assert not np.allclose(first, second)


def test_one_style_per_content_image(weights):
  variables, preprocessing = weights
  content = _content_images(2, 16)
  style_a = style.default_style_image(16)
  style_b = style_a[::-1, :, ::-1].copy()  # flipped pattern, channels reversed
  options = dict(
    preprocessing=preprocessing,
    steps=3,
    learning_rate=0.05,
    content_weight=1.0,
    style_weight=10.0,
    **LIGHT,
  )
  shared = style.stylize(content, style_a, variables, **options)
  per_image = style.stylize(content, np.stack([style_a, style_b]), variables, **options)
  np.testing.assert_allclose(per_image[0], shared[0], atol=1e-4)  # same style: same result
  assert not np.allclose(per_image[1], shared[1], atol=1e-3)
  with pytest.raises(ValueError, match="3 style images for 2 content images"):
    style.stylize(content, np.stack([style_a] * 3), variables, **options)


def test_stylize_argument_errors(weights):
  variables, preprocessing = weights
  content, style_image = _content_images(1, 8), style.default_style_image(8)
  options = dict(learning_rate=0.05, content_weight=1.0, style_weight=1.0)
  with pytest.raises(ValueError, match="steps must be an integer >= 0"):
    style.stylize(content, style_image, variables, preprocessing="torch", steps=-1, **options)
  with pytest.raises(ValueError, match="unknown loop"):
    style.stylize(
      content, style_image, variables, preprocessing="torch", steps=1, loop="while", **options
    )
  with pytest.raises(ValueError, match="unknown preprocessing"):
    style.stylize(content, style_image, variables, preprocessing="tf", steps=1, **options)
  with pytest.raises(ValueError, match="use 'relu4_2'"):
    style.stylize(
      content,
      style_image,
      variables,
      preprocessing="torch",
      steps=1,
      content_layers=("conv4_2",),
      **options,
    )
  with pytest.raises(ValueError, match="grayscale"):
    style.stylize(
      content[..., :1], style_image, variables, preprocessing="torch", steps=1, **options
    )


def test_default_style_image():
  image = style.default_style_image(24)
  assert image.shape == (24, 24, 3) and image.dtype == np.float32
  assert image.min() >= 0.0 and image.max() <= 1.0
  assert np.all(image.reshape(-1, 3).std(axis=0) > 0.2)  # colourful, every channel varies
  np.testing.assert_array_equal(image, style.default_style_image(24))
  assert style.default_style_image((8, 20)).shape == (8, 20, 3)
  # The formula of the docstring at one pixel (row 3, column 5 of 24).
  u, v = 5 / 24, 3 / 24
  red = 0.5 + 0.5 * np.sin(2 * np.pi * (3 * u + 0.6 * np.sin(2 * np.pi * 2 * v)))
  np.testing.assert_allclose(image[3, 5, 0], red, rtol=1e-6)


def test_style_map_with_several_styles_picks_one_per_image_by_its_pixels(weights):
  from distill_jax.maps import style as style_maps

  variables, preprocessing = weights
  content = _content_images(6, 16)
  style_a = style.default_style_image(16)
  style_b = style_a[::-1, :, ::-1].copy()
  options = dict(steps=2, learning_rate=0.05, content_weight=1.0, style_weight=10.0, **LIGHT)
  phi = style_maps.style_map(
    variables, np.stack([style_a, style_b]), preprocessing=preprocessing, **options
  )
  chosen = style_maps.style_index(content, 2)
  assert set(chosen.tolist()) == {0, 1}  # these six images use both styles
  np.testing.assert_array_equal(style_maps.style_index(content[::-1], 2), chosen[::-1])  # per image
  mapped = np.asarray(phi(content, jax.random.key(0)))
  for style_number, style_image in enumerate((style_a, style_b)):
    own = chosen == style_number
    want = style.stylize(
      content[own], style_image, variables, preprocessing=preprocessing, **options
    )
    np.testing.assert_allclose(mapped[own], want, atol=1e-5)
  # A function of each image alone: mapping in other batches gives the same images.
  halves = np.concatenate([phi(content[:3], None), phi(content[3:], None)])
  np.testing.assert_allclose(halves, mapped, atol=1e-5)
  # One style given as [1, H, W, 3] is the same map as [H, W, 3].
  single = style_maps.style_map(variables, style_a[None], preprocessing=preprocessing, **options)
  want = style.stylize(content, style_a, variables, preprocessing=preprocessing, **options)
  np.testing.assert_allclose(single(content, None), want, atol=1e-5)
  with pytest.raises(ValueError, match=r"\[K, H, W, 3\]"):
    style_maps.style_map(variables, style_a[..., :2])
