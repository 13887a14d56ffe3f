"""The ``(runs, data)`` mesh: row-sharded data sets (``parallel.put_rows``) over ``data`` and their
chunked evaluation layout; runs split over ``runs``, padded, gathered."""

import jax
import numpy as np
import pytest

from distill_jax import parallel


def _data_mesh(devices):
  """All ``devices`` on ``data`` (one run's batch split over them)."""
  return parallel.make_mesh(devices, devices_per_run=devices)


@pytest.mark.parametrize("devices", [1, 2])
@pytest.mark.parametrize("num_rows", [1, 7, 8, 13])
def test_put_rows_gives_each_device_its_rows_in_chunks(devices, num_rows):
  mesh = _data_mesh(devices)
  rows = np.arange(num_rows, dtype=np.float32) + 1
  placed = parallel.put_rows({"x": rows}, mesh, chunk_rows=3)["x"]
  per_device = parallel.rows_per_device(num_rows, mesh)
  chunks = -(-per_device // 3)
  assert placed.shape == (devices * chunks, 3)
  assert parallel.num_chunks(placed, mesh) == chunks
  assert placed.sharding.spec == parallel.batch_sharded(mesh).spec
  for d, shard in enumerate(sorted(placed.addressable_shards, key=lambda s: s.index[0].start)):
    expected = rows[d * per_device : (d + 1) * per_device]
    flat = np.asarray(shard.data).reshape(-1)
    np.testing.assert_array_equal(flat[: len(expected)], expected)
    np.testing.assert_array_equal(flat[len(expected) :], 0)  # padding
  batches = [np.asarray(parallel.take_chunk(placed, i, mesh)) for i in range(chunks)]
  assert all(batch.shape == (3 * devices,) for batch in batches)
  outputs = np.stack(batches)  # what a per-chunk program (predict) returns
  np.testing.assert_array_equal(parallel.rows_from_chunk_outputs(outputs, num_rows, mesh), rows)


def test_training_rows_keep_their_index():
  """Without chunks only the last shard is padded, so row i is at position i (the gather in
  the training step indexes the set with the original row numbers)."""
  mesh = _data_mesh(2)
  rows = np.arange(9, dtype=np.int32)
  placed = np.asarray(parallel.put_rows({"x": rows}, mesh)["x"])
  np.testing.assert_array_equal(placed[:9], rows)


def test_a_chunk_is_every_devices_own_rows_and_moves_no_data():
  mesh = _data_mesh(2)
  rows = np.arange(12, dtype=np.float32)
  placed = parallel.put_rows({"x": rows}, mesh, chunk_rows=2)["x"]  # shards 0..5 | 6..11
  take = jax.jit(lambda a, i: parallel.take_chunk(a, i, mesh))
  got = [np.asarray(take(placed, i)).tolist() for i in range(3)]
  assert got == [[0, 1, 6, 7], [2, 3, 8, 9], [4, 5, 10, 11]]  # chunk c: rows [2c, 2c + 2) of each
  text = take.lower(placed, 0).compile().as_text()
  assert "all-gather" not in text and "all-to-all" not in text and "all-reduce" not in text


def test_a_chunk_of_images_is_read_without_copying_the_set():
  """XLA CPU copied the whole test set per evaluation when the program reshaped it into chunks
  (images with a trailing size-1 axis); chunks made on the host are sliced in place."""
  mesh = _data_mesh(1)
  placed = parallel.put_rows({"x": np.zeros((4000, 28, 28, 1), np.float32)}, mesh, chunk_rows=1000)
  take = jax.jit(lambda a, i: parallel.take_chunk(a, i, mesh).sum())
  text = take.lower(placed["x"], 0).compile().as_text()
  assert not [line for line in text.splitlines() if "copy" in line and "4,1000,28,28,1" in line]


def test_process_rows_must_match_this_process_share():
  mesh = _data_mesh(1)
  with pytest.raises(ValueError, match=r"has 3 rows; this process holds rows 0:5 of 5"):
    parallel.put_rows(parallel.ProcessRows({"x": np.zeros(3)}, num_rows=5), mesh)
  placed = parallel.put_rows(parallel.ProcessRows({"x": np.ones(5)}, num_rows=5), mesh)
  np.testing.assert_array_equal(np.asarray(placed["x"]), np.ones(5))
  assert parallel.local_rows(5, mesh) == slice(0, 5)


def test_the_training_gather_moves_a_batch_not_the_data_set():
  """XLA gathers a batch from a row-sharded set with a masked local gather and an all-reduce
  of the batch, never an all-gather of the set."""
  mesh = _data_mesh(2)
  placed = parallel.put_rows({"x": np.ones((1000, 16), np.float32)}, mesh)["x"]
  indices = np.arange(64)

  def batch_sum(data, indices):
    return parallel.shard_batch(data[indices], mesh).sum()

  text = jax.jit(batch_sum).lower(placed, indices).compile().as_text()
  assert "all-reduce(" in text  # the batch is assembled across devices
  assert not [line for line in text.splitlines() if "all-gather(" in line and "16]" in line]
