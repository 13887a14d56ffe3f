"""Tests for distill_jax/checkpoints.py: keys, save / restore, locks and corrupt checkpoints."""

import glob
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest

from distill_jax import checkpoints

STATE = {"w": jnp.arange(4096, dtype=jnp.float32), "b": jnp.ones(3)}


def _save(directory, epochs=(1,)):
  with checkpoints.Checkpointer(directory, {"what": "test"}) as checkpointer:
    for epoch in epochs:
      checkpointer.save(epoch, STATE, {"epoch": epoch})


def _largest_file(directory, step="*"):
  pattern = os.path.join(directory, "checkpoints", step, "**")
  paths = [p for p in glob.glob(pattern, recursive=True)]
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


def _damage(directory, how, step="*"):
  if how == "flip":  # XOR 64 bytes in the middle of the largest data file
    path = _largest_file(directory, step)
    data = bytearray(open(path, "rb").read())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    open(path, "wb").write(bytes(data))
  elif how == "truncate":
    path = _largest_file(directory)
    os.truncate(path, os.path.getsize(path) // 2)
  else:
    for manifest in glob.glob(os.path.join(directory, "manifests", "*.json")):
      os.remove(manifest)


@pytest.mark.parametrize("damage", ["flip", "truncate", "no_manifest"])
def test_a_damaged_checkpoint_is_never_loaded(tmp_path, damage, caplog):
  directory = str(tmp_path / "entry")
  _save(directory)
  _damage(directory, damage)
  with checkpoints.Checkpointer(directory, {"what": "test"}) as checkpointer:
    assert checkpointer.latest_epoch() is None  # nothing to reuse: the work starts again
  aside = glob.glob(os.path.join(directory, "set_aside", "1.corrupt-*"))
  if damage == "no_manifest":  # a save cut short: removed, not kept
    assert aside == [] and not os.path.exists(os.path.join(directory, "checkpoints", "1"))
  else:  # damaged: kept for a post-mortem, out of the way
    assert len(aside) == 1 and os.path.isdir(os.path.join(aside[0], "state"))
  message = {
    "flip": "does not match its checksum",
    "truncate": "bytes",
    "no_manifest": "not finished saving",
  }
  assert any(message[damage] in record.getMessage() for record in caplog.records)
  _save(directory)  # and the rebuilt entry works
  with checkpoints.Checkpointer(directory) as checkpointer:
    assert checkpointer.latest_epoch() == 1


def _listing(directory):
  return (
    sorted(os.listdir(os.path.join(directory, "checkpoints"))),
    sorted(os.listdir(os.path.join(directory, "manifests"))),
  )


def test_only_the_newest_verified_epoch_is_kept(tmp_path):
  directory = str(tmp_path / "entry")
  _save(directory, epochs=(1, 2, 3))
  assert _listing(directory) == (["3"], ["3.json"])


class _Stop(BaseException):
  """Stands for an interruption (a KeyboardInterrupt that nothing may catch)."""


def _interrupt_once(monkeypatch, owner, name, after=False):
  """Makes ``owner.name`` raise ``_Stop`` on its next call (after running, with ``after``)."""
  original = getattr(owner, name)

  def interrupted(*args, **kwargs):
    monkeypatch.setattr(owner, name, original)
    if after:
      original(*args, **kwargs)
    raise _Stop

  monkeypatch.setattr(owner, name, interrupted)


# Interruption points of a save of epoch 2 with epoch 1 saved, and the epoch resumed from.
_INTERRUPTIONS = {
  "orbax save starts": (checkpoints.ocp.CheckpointManager, "save", False, 1),
  "orbax save in flight": (checkpoints.ocp.CheckpointManager, "wait_until_finished", False, 1),
  "before the manifest": (checkpoints.integrity, "write_manifest", False, 1),
  "after the manifest": (checkpoints.integrity, "write_manifest", True, 2),
  "deleting the older step": (checkpoints.ocp.CheckpointManager, "delete", False, 2),
  "after deleting the older step": (checkpoints.ocp.CheckpointManager, "delete", True, 2),
  "removing the older manifest": (checkpoints, "_remove", False, 2),
}


@pytest.mark.parametrize("point", sorted(_INTERRUPTIONS))
def test_an_interrupted_save_keeps_the_last_verified_epoch(tmp_path, monkeypatch, point):
  owner, name, after, resumed = _INTERRUPTIONS[point]
  directory = str(tmp_path / "entry")
  _save(directory, epochs=(1,))
  second = {"w": STATE["w"] + 1, "b": STATE["b"]}
  with pytest.raises(_Stop):
    with checkpoints.Checkpointer(directory, {"what": "test"}) as checkpointer:
      _interrupt_once(monkeypatch, owner, name, after)
      checkpointer.save(2, second, {"epoch": 2})
  with checkpoints.Checkpointer(directory, {"what": "test"}) as checkpointer:
    assert checkpointer.latest_epoch() == resumed
    state, meta = checkpointer.restore(resumed, STATE)
  expected = STATE if resumed == 1 else second
  np.testing.assert_array_equal(state["w"], expected["w"])
  assert meta == {"epoch": resumed}
  assert _listing(directory) == ([str(resumed)], [f"{resumed}.json"])  # leftovers cleared


def test_a_leftover_temporary_folder_is_removed(tmp_path):
  directory = str(tmp_path / "entry")
  _save(directory, epochs=(1,))
  leftover = os.path.join(directory, "checkpoints", "2.orbax-checkpoint-tmp-1733")
  os.makedirs(os.path.join(leftover, "state"))
  open(os.path.join(leftover, "state", "part"), "wb").write(b"\0" * 100)
  with checkpoints.Checkpointer(directory) as checkpointer:
    assert checkpointer.latest_epoch() == 1
  assert _listing(directory) == (["1"], ["1.json"])


def test_a_damaged_newest_epoch_falls_back_to_a_verified_older_one(tmp_path):
  """Two verified epochs on disk (an interruption before the older one was deleted), the newer
  one then damaged: the older is resumed from, the newer set aside."""
  directory = str(tmp_path / "entry")
  _save(directory, epochs=(1,))
  kept = str(tmp_path / "kept")
  shutil.copytree(directory, kept)
  _save(directory, epochs=(2,))
  shutil.copytree(
    os.path.join(kept, "checkpoints", "1"), os.path.join(directory, "checkpoints", "1")
  )
  shutil.copy(os.path.join(kept, "manifests", "1.json"), os.path.join(directory, "manifests"))
  _damage(directory, "flip", step="2")
  with checkpoints.Checkpointer(directory) as checkpointer:
    assert checkpointer.latest_epoch() == 1
  assert glob.glob(os.path.join(directory, "set_aside", "2.corrupt-*"))


def test_restore_refuses_an_epoch_damaged_after_opening(tmp_path):
  directory = str(tmp_path / "entry")
  _save(directory)
  with checkpoints.Checkpointer(directory) as checkpointer:
    path = _largest_file(directory)
    os.truncate(path, 10)
    with pytest.raises(checkpoints.CorruptCheckpointError, match="epoch 1 cannot be loaded"):
      checkpointer.restore(1, STATE)
