"""Tests for distill_jax/data/generated.py: the talk's recipe, the tfds dataset and provenance."""

import numpy as np
import pytest

from distill_jax import data as data_lib
from distill_jax.data import DataError, GeneratedSplit, expand_small

SMALL_OFFSET = 59_000  # FashionMNIST-Small = train images 59,000..59,999


def _encoding_draws(count):
  """``draw_digits(j)`` whose pixels encode (garment i, draw j): pixel [0, 0] = i % 251,
  pixel [0, 1] = j; the calls are recorded."""
  calls = []

  def draw_digits(j):
    calls.append(j)
    images = np.zeros((count, 28, 28, 1), np.uint8)
    images[:, 0, 0, 0] = np.arange(count) % 251
    images[:, 0, 1, 0] = j
    return images

  return draw_digits, calls


def test_expand_small_at_the_talks_sizes():
  count, samples = 1_000, 70
  labels = np.arange(count) % 10
  source_index = SMALL_OFFSET + np.arange(count)
  draw_digits, calls = _encoding_draws(count)
  splits = expand_small(
    draw_digits,
    labels,
    source_index,
    samples_per_image=samples,
    split=(59_000, 1_000, 10_000),
    seed=0,
  )
  assert calls == list(range(samples))  # every draw asked for once
  assert {name: len(split) for name, split in splits.items()} == {"train": 60_000, "test": 10_000}
  train, test = splits["train"], splits["test"]
  source = np.concatenate([train.source_index, test.source_index])
  draw = np.concatenate([train.draw, test.draw])
  # Every image comes from FashionMNIST-Small, each Small image gives `samples` of them, and each
  # (garment, draw) pair appears exactly once across train and test.
  assert np.all((source >= SMALL_OFFSET) & (source < SMALL_OFFSET + count))
  np.testing.assert_array_equal(np.bincount(source - SMALL_OFFSET), np.full(count, samples))
  pairs = (source - SMALL_OFFSET) * samples + draw
  np.testing.assert_array_equal(np.sort(pairs), np.arange(count * samples))
  for split in (train, test):  # the image, label and provenance of a record belong together
    garment = split.source_index - SMALL_OFFSET
    np.testing.assert_array_equal(split.labels, labels[garment])
    np.testing.assert_array_equal(split.images[:, 0, 0, 0], garment % 251)
    np.testing.assert_array_equal(split.images[:, 0, 1, 0], split.draw)
  # Shuffled before the split: the test set holds draws of most garments, not the last ones.
  assert len(np.unique(test.source_index)) > 990
  assert test.draw.min() == 0 and test.draw.max() == samples - 1


def test_expand_small_is_seeded():
  labels, source_index = np.arange(20) % 10, SMALL_OFFSET + np.arange(20)

  def expand(seed):
    draw_digits, _ = _encoding_draws(20)
    return expand_small(
      draw_digits, labels, source_index, samples_per_image=5, split=(70, 10, 20), seed=seed
    )

  first, again, other = expand(0), expand(0), expand(1)
  for name in ("train", "test"):
    np.testing.assert_array_equal(first[name].images, again[name].images)
    np.testing.assert_array_equal(first[name].source_index, again[name].source_index)
  assert not np.array_equal(first["test"].source_index, other["test"].source_index)


def test_expand_small_refuses_bad_sizes():
  labels, source_index = np.zeros(10, np.int64), SMALL_OFFSET + np.arange(10)
  draw_digits, _ = _encoding_draws(10)
  with pytest.raises(
    DataError, match="holds 1,000 images, but 10 Small images × 7 samples make 70"
  ):
    expand_small(
      draw_digits, labels, source_index, samples_per_image=7, split=(900, 50, 50), seed=0
    )
  with pytest.raises(DataError, match=r"draw_digits\(0\) returned .* expected uint8"):
    expand_small(
      lambda j: np.zeros((10, 28, 28, 1), np.float32),
      labels,
      source_index,
      samples_per_image=2,
      split=(10, 5, 5),
      seed=0,
    )


def _generated(count, samples, split, calls):
  """A ``generate`` for the builder: ``expand_small`` of the encoding draws."""

  def generate():
    calls.append(1)
    draw_digits, _ = _encoding_draws(count)
    return expand_small(
      draw_digits,
      np.arange(count) % 10,
      SMALL_OFFSET + np.arange(count),
      samples_per_image=samples,
      split=split,
      seed=0,
    )

  return generate


def test_tfds_round_trip_with_provenance_and_reuse(tmp_path):
  split, calls = (70, 10, 20), []
  generated = _generated(20, 5, split, calls)
  splits = data_lib.load_generated_mnist(
    "vae_test_small", generate=generated, tfds_dir=str(tmp_path), split_sizes=split
  )
  assert {name: len(labels) for name, (_, labels) in splits.items()} == {
    "big": 70,
    "small": 10,
    "test": 20,
  }
  expected = generated()  # what was written, record by record
  train_images = np.concatenate([splits["big"][0], splits["small"][0]])
  np.testing.assert_array_equal(train_images, expected["train"].images / np.float32(255))
  np.testing.assert_array_equal(splits["test"][1], expected["test"].labels)
  for name in ("big", "small", "test"):
    provenance = data_lib.generated_mnist_provenance(
      "vae_test_small", tfds_dir=str(tmp_path), split=name, split_sizes=split
    )
    np.testing.assert_array_equal(provenance["label"], splits[name][1])
    garment = provenance["source_index"] - SMALL_OFFSET
    assert np.all((garment >= 0) & (garment < 20))
    np.testing.assert_array_equal(splits[name][0][:, 0, 0, 0] * 255, garment)
    np.testing.assert_array_equal(splits[name][0][:, 0, 1, 0] * 255, provenance["draw"])

  calls.clear()
  again = data_lib.load_generated_mnist(
    "vae_test_small", generate=generated, tfds_dir=str(tmp_path), split_sizes=split
  )
  assert calls == []  # prepared once: read back without generating
  np.testing.assert_array_equal(again["test"][0], splits["test"][0])
  with pytest.raises(DataError, match=r"has splits .* but \(big, small, test\) = \(60, 10, 30\)"):
    data_lib.load_generated_mnist(
      "vae_test_small", generate=generated, tfds_dir=str(tmp_path), split_sizes=(60, 10, 30)
    )


def test_builder_errors(tmp_path):
  with pytest.raises(DataError, match="not prepared"):
    data_lib.load_generated_mnist("vae_absent_mean", generate=None, tfds_dir=str(tmp_path))

  def too_small():
    empty = GeneratedSplit(
      np.zeros((5, 28, 28, 1), np.uint8), np.zeros(5), np.zeros(5), np.zeros(5)
    )
    return {"train": empty, "test": empty}

  with pytest.raises(DataError, match="expected uint8 images of shape"):
    data_lib.load_generated_mnist("vae_small_mean", generate=too_small, tfds_dir=str(tmp_path))

  def no_provenance():
    images = np.zeros((5, 28, 28, 1), np.uint8)
    return {
      name: GeneratedSplit(images, np.zeros(5), np.zeros(3), np.zeros(5))
      for name in ("train", "test")
    }

  with pytest.raises(DataError, match="expected 5 source_index"):
    data_lib.load_generated_mnist(
      "vae_bad_mean", generate=no_provenance, tfds_dir=str(tmp_path), split_sizes=(3, 2, 5)
    )


def test_to_uint8():
  with pytest.raises(DataError, match="NaN"):
    data_lib.to_uint8(np.array([0.5, np.nan]))
  np.testing.assert_array_equal(
    data_lib.to_uint8(np.array([0.0, 0.5, 1.0, 1.2])), [0, 128, 255, 255]
  )


def test_a_damaged_prepared_dataset_is_set_aside_and_prepared_again(tmp_path, caplog):
  split, calls = (70, 10, 20), []
  generated = _generated(20, 5, split, calls)
  first = data_lib.load_generated_mnist(
    "vae_test_small", generate=generated, tfds_dir=str(tmp_path), split_sizes=split
  )
  (record_file,) = tmp_path.glob("distill_generated_mnist/vae_test_small/*/*-train.array_record*")
  data = bytearray(record_file.read_bytes())
  data[len(data) // 2] ^= 0xFF  # one flipped bit pattern in the middle of the records
  record_file.write_bytes(bytes(data))
  calls.clear()
  again = data_lib.load_generated_mnist(
    "vae_test_small", generate=generated, tfds_dir=str(tmp_path), split_sizes=split
  )
  assert calls == [1]  # made again, not read from the damaged records
  np.testing.assert_array_equal(again["big"][0], first["big"][0])
  assert any("is damaged" in record.getMessage() for record in caplog.records)
  assert len(list(tmp_path.glob("distill_generated_mnist/vae_test_small/*.corrupt-*"))) == 1
