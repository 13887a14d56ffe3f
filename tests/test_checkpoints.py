"""Tests for distill_jax/checkpoints.py: keys, save / restore, locks and corrupt checkpoints."""

import glob
import os

import jax.numpy as jnp
import numpy as np
import pytest

from distill_jax import checkpoints

STATE = {"w": jnp.arange(4096, dtype=jnp.float32), "b": jnp.ones(3)}


def _save(directory, epochs=(1,)):
  with checkpoints.Checkpointer(directory, {"what": "test"}) as checkpointer:
    for epoch in epochs:
      checkpointer.save(epoch, STATE, {"epoch": epoch})


def _largest_file(directory):
  paths = [p for p in glob.glob(os.path.join(directory, "checkpoints", "**"), recursive=True)]
  return max((p for p in paths if os.path.isfile(p)), key=os.path.getsize)


def test_config_key_is_stable_and_order_free():
  assert checkpoints.config_key({"a": 1, "b": [1, 2]}) == checkpoints.config_key(
    {"b": [1, 2], "a": 1}
  )
  assert checkpoints.config_key({"a": 1}) != checkpoints.config_key({"a": 2})


def test_save_restore_round_trip_with_manifests(tmp_path):
  directory = str(tmp_path / "entry")
  _save(directory, epochs=(1, 2))
  assert sorted(os.listdir(os.path.join(directory, "manifests"))) == ["2.json"]  # max_to_keep=1
  with checkpoints.Checkpointer(directory) as checkpointer:
    assert checkpointer.latest_epoch() == 2
    state, meta = checkpointer.restore(2, STATE)
  np.testing.assert_array_equal(state["w"], STATE["w"])
  assert meta == {"epoch": 2}


@pytest.mark.parametrize("damage", ["flip", "truncate", "no_manifest"])
def test_a_damaged_checkpoint_is_set_aside_never_loaded(tmp_path, damage, caplog):
  directory = str(tmp_path / "entry")
  _save(directory)
  if damage == "flip":  # XOR 64 bytes in the middle of the largest data file
    path = _largest_file(directory)
    data = bytearray(open(path, "rb").read())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    open(path, "wb").write(bytes(data))
  elif damage == "truncate":
    path = _largest_file(directory)
    os.truncate(path, os.path.getsize(path) // 2)
  else:
    os.remove(os.path.join(directory, "manifests", "1.json"))
  with checkpoints.Checkpointer(directory, {"what": "test"}) as checkpointer:
    assert checkpointer.latest_epoch() is None  # nothing to reuse: the work starts again
  aside = glob.glob(directory + ".corrupt-*")
  assert len(aside) == 1 and os.path.isdir(os.path.join(aside[0], "checkpoints"))
  message = {
    "flip": "does not match its checksum",
    "truncate": "bytes",
    "no_manifest": "no checksum",
  }
  assert any(message[damage] in record.getMessage() for record in caplog.records)
  _save(directory)  # and the rebuilt entry works
  with checkpoints.Checkpointer(directory) as checkpointer:
    assert checkpointer.latest_epoch() == 1


def test_restore_refuses_an_epoch_damaged_after_opening(tmp_path):
  directory = str(tmp_path / "entry")
  _save(directory)
  with checkpoints.Checkpointer(directory) as checkpointer:
    path = _largest_file(directory)
    os.truncate(path, 10)
    with pytest.raises(checkpoints.CorruptCheckpointError, match="epoch 1 cannot be loaded"):
      checkpointer.restore(1, STATE)
