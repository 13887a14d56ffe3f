"""Cache keys hold what the work was made from: a changed map body or changed data is redone."""

import json
import logging

import jax.numpy as jnp
import numpy as np
import pytest

from distill_jax import checkpoints
from distill_jax import experiment
from distill_jax import fingerprints
from distill_jax import maps
from distill_jax.maps import cache
from distill_jax.maps import core
from distill_jax.maps import fixed
from tests.test_experiment import tiny_config


def test_arrays_change_with_any_byte_dtype_or_shape():
  x = np.arange(12, dtype=np.float32).reshape(3, 4)
  same = fingerprints.arrays(x, np.arange(3))
  assert fingerprints.arrays(x.copy(), np.arange(3)) == same
  flipped = x.copy()
  flipped[2, 3] = 11.5
  assert fingerprints.arrays(flipped, np.arange(3)) != same
  assert fingerprints.arrays(x.reshape(4, 3), np.arange(3)) != same
  assert fingerprints.arrays(x.astype(np.float64), np.arange(3)) != same
  assert fingerprints.arrays(np.arange(3), x) != same  # order matters


def _flip(axis):
  return maps.Map("flip", lambda images, key: jnp.flip(images, axis), stochastic=False)


def test_a_map_is_known_by_what_it_does():
  shape = (28, 28, 1)
  assert fingerprints.of_map(_flip(1), shape) == fingerprints.of_map(_flip(1), shape)
  assert fingerprints.of_map(_flip(1), shape) != fingerprints.of_map(_flip(2), shape)
  noise = maps.get_map("noise", variance=0.1)  # stochastic: probed with a fixed key
  assert fingerprints.of_map(noise, shape) == fingerprints.of_map(noise, shape)
  assert fingerprints.of_map(noise, shape) != fingerprints.of_map(
    maps.get_map("noise", variance=0.2), shape
  )
  cached = cache.cached(_flip(1), cache_dir="/nonexistent", cache_key="abc123", chunk_size=8)
  assert fingerprints.of_map(cached, shape) == "cached:abc123"  # not probed: its key names it


def test_why_new_names_the_content_that_changed(tmp_path):
  settings = {"what": "teacher", "teacher": {"epochs": 3}}
  old = tmp_path / "old"
  old.mkdir()
  (old / "config.json").write_text(json.dumps({**settings, "data": "aa", "phi_key": "p"}))
  new = str(tmp_path / "new")
  assert checkpoints.why_new(new, {**settings, "data": "bb", "phi_key": "p"}) == (
    "the data changed since old"
  )
  assert checkpoints.why_new(new, {**settings, "data": "bb", "phi_key": "q"}) == (
    "the data and φ changed since old"
  )
  other_settings = {"what": "teacher", "teacher": {"epochs": 4}, "data": "bb", "phi_key": "p"}
  assert checkpoints.why_new(new, other_settings) is None  # a new setting: nothing to explain


@pytest.fixture
def user_map(monkeypatch):
  """A map registered as a user would (``maps.register_map``), whose body the test can change
  under the same name and options."""
  monkeypatch.setattr(fixed, "_FACTORIES", dict(fixed._FACTORIES))
  monkeypatch.setattr(core, "_FAMILIES", dict(core._FAMILIES))
  maps.register_map("user_flip", lambda: _flip(1))

  def change_body(axis):
    monkeypatch.setitem(fixed._FACTORIES, "user_flip", lambda: _flip(axis))

  return change_body


def test_a_changed_map_body_or_changed_data_is_not_reused(
  shared_data_dir, shared_tfds_dir, tmp_path, user_map, monkeypatch, caplog
):
  """The user edits φ's body (same name, same options): the teachers are retrained and the
  students through φ too; the target data changes (same shapes): the students are retrained.
  Unchanged inputs reuse everything."""
  caplog.set_level(logging.INFO, logger="absl")
  config = tiny_config("identity")
  config.mapping = "user_flip"
  run = lambda: experiment.run_experiment(  # noqa: E731
    config, str(tmp_path / "run"), data_dir=shared_data_dir, tfds_dir=shared_tfds_dir
  )
  first = run()
  assert not first["teacher"]["reused_checkpoint"]
  assert run()["teacher"]["reused_checkpoint"]  # nothing changed: reused

  user_map(2)  # another body under the same name
  caplog.clear()
  changed_map = run()
  assert not changed_map["teacher"]["reused_checkpoint"]
  assert "not reusing the cached teachers: φ changed" in caplog.text
  assert "students[teacher_phi]: not resuming the saved runs: φ and the teacher changed" in (
    caplog.text
  )
  assert changed_map["teacher"]["test_accuracy"] != first["teacher"]["test_accuracy"]

  from distill_jax import data as data_lib

  load = data_lib.load

  def noisy_target(name, *args, **kwargs):  # the same shapes, other images
    splits = load(name, *args, **kwargs)
    small = splits["small"]
    rng = np.random.default_rng(0)
    noise = rng.random(small.images.shape, dtype=np.float32).astype(small.images.dtype)
    return {**splits, "small": data_lib.Split(noise, small.labels)}

  monkeypatch.setattr(data_lib, "load", noisy_target)
  caplog.clear()
  changed_data = run()
  assert "students[no_teacher]: not resuming the saved runs: the data changed" in caplog.text
  assert not np.allclose(
    changed_data["arms"]["no_teacher"]["test_accuracy"],
    changed_map["arms"]["no_teacher"]["test_accuracy"],
  )
