"""The runs axis: independent runs split over devices give each run the numbers it has alone on
one device, with no communication in the compiled epoch (``data`` = 1)."""

import json
import logging
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from distill_jax import epochs
from distill_jax import losses
from distill_jax import parallel
from tests import test_train
from tests.conftest import REPO_ROOT

COLLECTIVES = re.compile(r"\b(all-reduce|all-gather|reduce-scatter|collective-permute|all-to-all)")


def test_make_mesh_puts_every_device_on_runs_by_default():
  mesh = parallel.make_mesh()
  assert mesh.axis_names == ("runs", "data")
  assert (parallel.run_groups(mesh), parallel.data_devices(mesh)) == (2, 1)
  split = parallel.make_mesh(2, devices_per_run=2)
  assert (parallel.run_groups(split), parallel.data_devices(split)) == (1, 2)
  with pytest.raises(ValueError, match="devices_per_run=3 must be a whole number >= 1 that div"):
    parallel.make_mesh(2, devices_per_run=3)


def test_pad_put_and_gather_runs():
  mesh = parallel.make_mesh()
  assert [parallel.padded_runs(r, mesh) for r in (1, 2, 3, 4)] == [2, 2, 4, 4]
  values = np.arange(3, dtype=np.float32)
  padded = parallel.pad_runs({"x": values, "k": jax.random.split(jax.random.key(0), 3)}, 4)
  np.testing.assert_array_equal(padded["x"], [0, 1, 2, 2])  # the last run repeated
  assert (
    jax.random.key_data(padded["k"][3]).tolist() == jax.random.key_data(padded["k"][2]).tolist()
  )
  placed = parallel.put_runs(padded, mesh)
  assert placed["x"].sharding.spec == parallel.runs_sharded(mesh).spec
  assert [s.data.shape for s in placed["x"].addressable_shards] == [(2,), (2,)]  # 2 runs each
  gathered = parallel.gather_runs(placed)["x"]
  assert isinstance(gathered, np.ndarray)
  np.testing.assert_array_equal(gathered, padded["x"])


def test_one_process_places_every_run_on_its_mesh():
  placement = parallel.place_runs(parallel.make_mesh(), 3)
  assert (placement.start, placement.stop, placement.padded, placement.local) == (0, 4, 4, False)
  assert placement.mesh.devices.size == 2
  single = parallel.place_runs(parallel.make_mesh(), 1)  # fewer runs than groups: one group
  assert (single.padded, single.mesh.devices.size) == (1, 1)
  assert parallel.process_mesh(parallel.make_mesh()).devices.size == 2


def test_process_blocks_join_in_process_order_one_exchange_per_dtype():
  """``_gather_blocks`` as 2 processes would run it: each passes its block of 2 runs of a tree
  with leaves of several shapes and dtypes; the fake all-gather concatenates the blocks."""
  rng = np.random.default_rng(0)

  def tree(block):
    return {
      "w": rng.random((block, 3, 2), np.float32), "b": rng.random((block,), np.float32),
      "count": rng.integers(0, 9, (block, 1)).astype(np.int32), "empty": np.zeros((block, 0)),
    }  # fmt: skip

  blocks = [tree(2), tree(2)]

  def passed(block):  # what a process hands the all-gather: one flat array per dtype
    flats = {}

    def capture(flat, tiled):
      flats[flat.dtype] = flat
      return np.concatenate([flat, flat])

    parallel._gather_blocks(block, capture)
    return flats

  from_process_1 = passed(blocks[1])
  exchanges = []

  def allgather(flat, tiled):  # process 0's view: its flat, then process 1's
    assert tiled and flat.ndim == 2
    exchanges.append(str(flat.dtype))
    return np.concatenate([flat, from_process_1[flat.dtype]])

  joined = parallel._gather_blocks(blocks[0], allgather)
  assert exchanges == ["float32", "float64", "int32"]  # one per dtype, in the same order anywhere
  for name in blocks[0]:
    want = np.concatenate([blocks[0][name], blocks[1][name]])
    assert joined[name].dtype == want.dtype
    np.testing.assert_array_equal(joined[name], want)


def _placed_epoch(mesh, num_runs=4, steps_per_call=None):
  """A toy epoch program and its placed inputs on ``mesh``, as ``train.fit`` builds them."""
  images, labels = test_train._data(n=80)
  init_fn = lambda key: test_train.MODEL.init(key, jnp.zeros((1, 8, 8, 1)))  # noqa: E731
  tx = optax.adam(1e-2)
  init_keys, keys = epochs.split_run_keys(jax.random.split(jax.random.key(0), num_runs))
  states = parallel.put_runs(epochs.init_states(init_fn, tx, init_keys), mesh)
  keys, hparams = parallel.put_runs((keys, {"scale": np.ones(num_runs, np.float32)}), mesh)
  data = parallel.put_rows({"image": images, "label": labels}, mesh)
  chunk = 20 // parallel.data_devices(mesh)
  test = parallel.put_rows({"image": images[:40], "label": labels[:40]}, mesh, chunk_rows=chunk)
  weight = parallel.put_rows({"w": np.ones(40, np.float32)}, mesh, chunk_rows=chunk)["w"]
  epoch_fn = epochs.make_epoch_fn(
    test_train._loss_fn, losses.classification_metrics(test_train.MODEL.apply), tx,
    num_examples=80, batch_size=20, mesh=mesh, steps_per_call=steps_per_call,
  )  # fmt: skip
  return epoch_fn, (states, data, keys, 0, hparams, None, (test, weight))


def test_the_compiled_epoch_of_runs_holds_no_collective():
  """All devices on runs: each trains its own runs, nothing is communicated (the scanned epoch,
  training and evaluation); the same program with each run's batch split over two devices
  all-reduces (the check can fail)."""
  for devices_per_run, communicates in ((1, False), (2, True)):
    mesh = parallel.make_mesh(2, devices_per_run=devices_per_run)
    epoch_fn, args = _placed_epoch(mesh)
    text = epoch_fn.lower(*args).compile().as_text()
    assert bool(COLLECTIVES.search(text)) == communicates, devices_per_run
    states, metrics = epoch_fn(*args)
    assert metrics["train_loss"].sharding.spec == parallel.runs_sharded(mesh).spec


def test_the_stepped_epoch_trains_each_group_on_its_own_devices():
  mesh = parallel.make_mesh()
  epoch_fn, args = _placed_epoch(mesh, steps_per_call=2)
  states, metrics = epoch_fn(*args)
  devices = [d for d in mesh.devices.flat]
  for leaf in (metrics["train_loss"], *jax.tree.leaves(states)):
    assert leaf.sharding.spec == parallel.runs_sharded(mesh).spec
    assert sorted(s.device.id for s in leaf.addressable_shards) == sorted(d.id for d in devices)
  scanned, _ = _placed_epoch(mesh)
  _, want = scanned(*_placed_epoch(mesh)[1])
  np.testing.assert_allclose(metrics["test_accuracy"], want["test_accuracy"], atol=1e-6)


@pytest.mark.parametrize("steps_per_call", [None, 1])
def test_three_runs_on_two_groups_equal_one_device(steps_per_call, caplog):
  """3 runs padded to 4 on 2 run groups; each run's history and parameters as on 1 device.
  The stepped epoch gives the same bits (one program per run either way); the scanned epoch of
  a vmapped block of runs rounds differently in the last place (measured: |Δ| <= 1.2e-7 over
  3 epochs of this toy problem)."""
  one = test_train._fit(seeds=(0, 1, 2), mesh=parallel.make_mesh(1), steps_per_call=steps_per_call)
  caplog.set_level(logging.INFO, logger="absl")  # other tests may have set absl to WARNING
  two = test_train._fit(seeds=(0, 1, 2), mesh=parallel.make_mesh(2), steps_per_call=steps_per_call)
  assert "toy: 3 runs on 2 run groups: padded to 4" in caplog.text
  tolerance = {"atol": 0, "rtol": 0} if steps_per_call else {"atol": 1e-6, "rtol": 0}
  for metric, values in one.history.items():
    assert two.history[metric].shape == (3, 3)
    np.testing.assert_allclose(two.history[metric], values, **tolerance)
  for got, want in zip(jax.tree.leaves(two.params), jax.tree.leaves(one.params)):
    assert got.shape[0] == 3 and isinstance(got, np.ndarray)  # host arrays: for any mesh
    np.testing.assert_allclose(got, want, atol=1e-5 if not steps_per_call else 0, rtol=0)


def test_fewer_runs_than_groups_train_once():
  """One run on 2 groups trains on one group only (no padded copy), same numbers."""
  one = test_train._fit(seeds=(4,), mesh=parallel.make_mesh(1))
  two = test_train._fit(seeds=(4,), mesh=parallel.make_mesh(2))
  np.testing.assert_allclose(two.history["train_loss"], one.history["train_loss"], atol=1e-6)
  assert parallel.place_runs(parallel.make_mesh(2), 1).mesh.devices.size == 1


def test_a_checkpoint_resumes_on_another_mesh(tmp_path):
  """Checkpoints hold the real runs as host arrays: saved on 2 run groups, resumed on 1 device."""
  from distill_jax.checkpoints import Checkpointer

  seeds = (0, 1, 2)
  reference = test_train._fit(seeds=seeds, epochs=3, mesh=parallel.make_mesh(1))
  with Checkpointer(str(tmp_path)) as checkpointer:
    test_train._fit(
      seeds=seeds, epochs=2, mesh=parallel.make_mesh(2), checkpointer=checkpointer,
      checkpoint_every=1,
    )  # fmt: skip
  with Checkpointer(str(tmp_path)) as checkpointer:
    resumed = test_train._fit(
      seeds=seeds, epochs=3, mesh=parallel.make_mesh(1), checkpointer=checkpointer
    )
  np.testing.assert_allclose(
    resumed.history["train_loss"], reference.history["train_loss"], atol=1e-6
  )


_FOUR_DEVICES = """
import json, sys
import numpy as np
from distill_jax import parallel
from tests import test_train
result = test_train._fit(seeds=(0, 1, 2, 3, 4), mesh=parallel.make_mesh(0), steps_per_call={spc})
print("HISTORY " + json.dumps({{k: v.tolist() for k, v in result.history.items()}}))
"""


@pytest.mark.parametrize("steps_per_call", [None, 1])
def test_four_devices_equal_one_device(steps_per_call):
  """5 runs on 4 fake CPU devices (padded to 8) in a process of their own."""
  env = dict(
    os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu",
    XLA_FLAGS="--xla_force_host_platform_device_count=4",
  )  # fmt: skip
  script = _FOUR_DEVICES.format(spc=steps_per_call)
  done = subprocess.run(
    [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
  )
  assert done.returncode == 0, done.stderr[-3000:]
  (line,) = [line for line in done.stdout.splitlines() if line.startswith("HISTORY ")]
  four = json.loads(line[len("HISTORY ") :])
  one = test_train._fit(
    seeds=(0, 1, 2, 3, 4), mesh=parallel.make_mesh(1), steps_per_call=steps_per_call
  )
  tolerance = 0 if steps_per_call else 1e-6
  for metric, values in one.history.items():
    np.testing.assert_allclose(four[metric], values, atol=tolerance, rtol=0)
