"""The maps φ: shapes, values, determinism and the registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distill_jax import maps


def _images(n=4, size=28, seed=0):
  return jnp.asarray(np.random.default_rng(seed).random((n, size, size, 1), np.float32))


def test_registry():
  assert {"identity", "noise", "conv"} <= set(maps.map_names())
  with pytest.raises(ValueError, match="unknown mapping 'blur'; choose one of"):
    maps.get_map("blur")
  with pytest.raises(ValueError, match="already registered"):
    maps.register_map("conv", maps.dilated_conv_map)


def test_identity():
  x = _images()
  phi = maps.get_map("identity")
  np.testing.assert_array_equal(phi(x), x)
  assert not phi.stochastic


def test_noise_statistics_and_freshness():
  x = jnp.zeros((64, 28, 28, 1))
  phi = maps.get_map("noise", variance=0.1)
  assert phi.stochastic
  a = phi(x, jax.random.key(0))
  b = phi(x, jax.random.key(1))
  assert a.shape == x.shape
  np.testing.assert_allclose(np.var(np.asarray(a)), 0.1, rtol=0.03)
  np.testing.assert_allclose(np.mean(np.asarray(a)), 0.0, atol=0.005)
  assert not np.allclose(a, b)  # fresh noise per key
  np.testing.assert_array_equal(a, phi(x, jax.random.key(0)))  # same key, same noise
  with pytest.raises(ValueError, match="stochastic: pass a PRNG key"):
    phi(x)
  with pytest.raises(ValueError, match="variance must be >= 0"):
    maps.get_map("noise", variance=-1.0)


def test_conv_shape_and_values():
  x = _images()
  phi = maps.get_map("conv")
  y = phi(x)
  assert y.shape == (4, 24, 24, 1)
  assert phi.output_shape((28, 28, 1)) == (24, 24, 1)
  # Output (i, j) sums the five taps of the dilated cross pattern (effective 5x5 kernel).
  x0 = np.asarray(x[..., 0])
  want = (
    x0[:, 0:24, 0:24]
    + x0[:, 0:24, 4:28]
    + x0[:, 2:26, 2:26]
    + x0[:, 4:28, 0:24]
    + x0[:, 4:28, 4:28]
  )
  np.testing.assert_allclose(y[..., 0], want, rtol=1e-5)


def test_conv_is_per_channel():
  x = jnp.concatenate([_images(seed=1), 2 * _images(seed=1)], axis=-1)
  y = maps.get_map("conv")(x)
  assert y.shape == (4, 24, 24, 2)
  np.testing.assert_allclose(y[..., 1], 2 * y[..., 0], rtol=1e-5)


def test_maps_jit_and_bad_shapes():
  phi = maps.get_map("conv")
  x = _images()
  np.testing.assert_allclose(jax.jit(phi.fn)(x, None), phi(x), rtol=1e-6)
  with pytest.raises(ValueError, match=r"NHWC"):
    phi(x[..., 0])


def test_conv_matches_lax_convolution_for_any_kernel():
  kernel = np.random.default_rng(3).normal(size=(3, 3)).astype(np.float32)
  x = jnp.concatenate([_images(seed=4), _images(seed=5)], axis=-1)
  got = maps.dilated_conv_map(kernel, dilation=2)(x)
  rhs = jnp.tile(jnp.asarray(kernel)[:, :, None, None], (1, 1, 1, 2))
  want = jax.lax.conv_general_dilated(
    x,
    rhs,
    (1, 1),
    "VALID",
    rhs_dilation=(2, 2),
    dimension_numbers=("NHWC", "HWIO", "NHWC"),
    feature_group_count=2,
  )
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="at least 5x5"):
    maps.get_map("conv")(x[:, :4, :4])


def test_vae_map_needs_a_trained_vae():
  assert "vae" in maps.LEARNED_MAPS and "vae" in maps.map_names()
  with pytest.raises(ValueError, match="needs a trained VAE"):
    maps.get_map("vae")
