"""The maps φ: shapes, values, determinism and the registry."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from distill_jax import maps


def _images(n=4, size=28, seed=0):
  return jnp.asarray(np.random.default_rng(seed).random((n, size, size, 1), np.float32))


def test_registry():
  assert {"identity", "noise", "conv"} <= set(maps.map_names())
  with pytest.raises(ValueError, match="unknown map 'blur'; choose one of"):
    maps.get_map("blur")
  with pytest.raises(ValueError, match="'conv' is built in"):
    maps.register_map("conv", maps.dilated_conv_map)
  with pytest.raises(ValueError, match="'style' is built in"):  # another family's name
    maps.register_map("style", maps.dilated_conv_map)


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
  with pytest.raises(ValueError, match="variance must be finite and >= 0"):
    maps.get_map("noise", variance=-1.0)


def test_noise_clip_as_the_authors_code():
  """clip=True: φ(x) = clip(x + ε, 0, 1); the same ε as unclipped for the same key."""
  x = jnp.full((32, 28, 28, 1), 0.05)
  key = jax.random.key(3)
  free = np.asarray(maps.get_map("noise", variance=0.0064)(x, key))
  clipped = np.asarray(maps.get_map("noise", variance=0.0064, clip=True)(x, key))
  assert free.min() < 0 and (free > 1).sum() == 0  # 0.05 − 0.08·N goes below 0 often
  np.testing.assert_array_equal(clipped, np.clip(free, 0.0, 1.0))
  np.testing.assert_allclose(np.std(free - 0.05), 0.08, rtol=0.03)
  with pytest.raises(ValueError, match="clip must be True or False"):
    maps.get_map("noise", clip="yes")


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


def test_families_by_mapping_name():
  assert set(maps.mapping_names()) >= {
    "identity",
    "noise",
    "conv",
    "vae",
    "generated",
    "generated_full",
    "style",
  }
  assert maps.family_for("conv") is maps.family_for("identity")  # the fixed maps' family
  assert maps.family_for("generated") is maps.family_for("vae")
  assert maps.family_for("generated_full") is maps.family_for("vae")
  with pytest.raises(ValueError, match="unknown mapping 'blur'; choose one of"):
    maps.family_for("blur")


def test_register_map_makes_a_new_mapping(monkeypatch):
  from distill_jax.maps import core, fixed

  monkeypatch.setattr(fixed, "_FACTORIES", dict(fixed._FACTORIES))
  monkeypatch.setattr(core, "_FAMILIES", dict(core._FAMILIES))

  def flip_map(axis: int = 2):
    return maps.Map("flip", lambda images, key: jnp.flip(images, axis), stochastic=False)

  maps.register_map("flip", flip_map)
  assert "flip" in maps.mapping_names() and "flip" in maps.map_names()
  config = ml_collections.ConfigDict({"mapping": "flip", "maps": {"flip": {"axis": 1}}})
  built = maps.family_for("flip").build(config, {}, None)
  x = _images()
  np.testing.assert_array_equal(built.phi(x), x[:, ::-1])
  # Registering again (a config file run twice) replaces the factory.
  maps.register_map("flip", lambda axis: maps.Map("flip", lambda images, key: -images, False))
  np.testing.assert_array_equal(maps.family_for("flip").build(config, {}, None).phi(x), -x)


def test_map_array_chunks_and_keys():
  x = np.asarray(_images(n=5))
  phi = maps.get_map("noise", variance=0.1)
  key = jax.random.key(3)
  mapped = phi.map_array(x, key, chunk_size=2)
  jitted = jax.jit(phi.fn)  # map_array runs φ jitted (XLA may fuse it differently from eager)
  want = np.concatenate(
    [jitted(jnp.asarray(x[i : i + 2]), jax.random.fold_in(key, i)) for i in (0, 2, 4)]
  )
  np.testing.assert_array_equal(mapped, want)  # chunk [i, i + 2) draws from fold_in(key, i)
  conv = maps.get_map("conv")
  np.testing.assert_allclose(conv.map_array(x, key, chunk_size=3), conv(jnp.asarray(x)), rtol=1e-6)


def test_cached_map_is_computed_once_per_input_and_resumes(tmp_path):
  calls = []

  def double(images, key):
    calls.append(images.shape[0])
    return images * 2.0

  phi = maps.cached(
    maps.Map("double", double, stochastic=False),
    cache_dir=str(tmp_path),
    cache_key="d1",
    chunk_size=4,
  )
  images = np.arange(10 * 2 * 2 * 1, dtype=np.float32).reshape(10, 2, 2, 1)
  key = jax.random.key(0)
  mapped = phi.map_array(images, key)
  np.testing.assert_array_equal(mapped, images * 2)
  assert calls == [4, 4, 2]
  folder = tmp_path / "phi" / "d1"
  assert len(list(folder.glob("*.npy"))) == 1 and not list(folder.glob("*.parts"))
  assert len(list(folder.glob("*.npy.sha256.json"))) == 1  # its checksum manifest

  # Same input: read back, φ not called again; another input: a second file.
  calls.clear()
  np.testing.assert_array_equal(phi.map_array(images, key), mapped)
  assert calls == []
  phi.map_array(images + 1, key)
  assert len(list(folder.glob("*.npy"))) == 2

  # An interrupted run keeps its finished chunks: fake one chunk done with a marker value.
  other = images + 5
  phi2 = maps.cached(phi, cache_dir=str(tmp_path), cache_key="d2", chunk_size=4)
  first = phi2.map_array(other, key)
  (path,) = (tmp_path / "phi" / "d2").glob("*.npy")
  parts = path.parent / (path.name[: -len(".npy")] + ".parts")
  parts.mkdir()
  np.save(parts / f"{0:09d}.npy", np.full((4, 2, 2, 1), -1.0, np.float32))
  path.unlink()
  calls.clear()
  resumed = phi2.map_array(other, key)
  np.testing.assert_array_equal(resumed[:4], -1.0)  # the kept chunk, not recomputed
  np.testing.assert_array_equal(resumed[4:], first[4:])
  assert calls == [4, 2]
  with pytest.raises(ValueError, match="stochastic"):
    maps.cached(maps.get_map("noise"), cache_dir=str(tmp_path), cache_key="n", chunk_size=4)


def test_a_truncated_cache_entry_is_set_aside_and_mapped_again(tmp_path, caplog):
  phi = maps.cached(
    maps.Map("double", lambda images, key: images * 2.0, stochastic=False),
    cache_dir=str(tmp_path),
    cache_key="d",
    chunk_size=4,
  )
  images = np.arange(40, dtype=np.float32).reshape(10, 2, 2, 1)
  phi.map_array(images, jax.random.key(0))
  (path,) = (tmp_path / "phi" / "d").glob("*.npy")
  os.truncate(path, path.stat().st_size - 8)  # a cut-short copy, say
  again = phi.map_array(images, jax.random.key(0))
  np.testing.assert_array_equal(again, images * 2)  # mapped again, not read from the stub
  assert len(list(path.parent.glob("*.npy.corrupt-*"))) == 1
  assert any("is damaged" in record.getMessage() for record in caplog.records)
