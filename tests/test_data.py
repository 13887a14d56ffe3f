"""Tests for distill_jax.data: IDX reading, the tfds builders, load_splits and load."""

from __future__ import annotations

import gzip
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from distill_jax.data import (
  DATASET_NAMES,
  GENERATED_MNIST,
  IDX_DATASETS,
  IDX_SPLITS,
  IDX_SPLIT_SIZES,
  idx_split_sizes,
  idx_splits,
  IMAGENETTE_SPLITS,
  SPLIT_NAMES,
  DataError,
  DistillFashionMnist,
  DistillMnist,
  IdxImageClassificationBuilder,
  image_shape,
  load,
  load_splits,
  read_idx_images,
  read_idx_labels,
  read_idx_pair,
  resolve_data_dir,
  subset,
  subset_positions,
)
from distill_jax.data import imagenette, loading, tfds_io
from distill_jax.data.builders import IDX_FILE_NAMES

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FIX_HINT = "DISTILL_DATA_DIR"  # every file error tells how to fix it


# ---------------------------------------------------------------- helpers


def write_idx_images(path, images: np.ndarray, *, magic: int = 2051, count=None, gz=True):
  """Writes a (N, H, W) uint8 array as an IDX3 file (gzip unless gz=False)."""
  n, rows, cols = images.shape
  data = struct.pack(">iiii", magic, n if count is None else count, rows, cols)
  data += images.astype(np.uint8).tobytes()
  _write(path, data, gz)


def write_idx_labels(path, labels: np.ndarray, *, magic: int = 2049, count=None, gz=True):
  """Writes a (N,) uint8 array as an IDX1 file (gzip unless gz=False)."""
  data = struct.pack(">ii", magic, len(labels) if count is None else count)
  data += np.asarray(labels, dtype=np.uint8).tobytes()
  _write(path, data, gz)


def _write(path, data: bytes, gz: bool):
  Path(path).write_bytes(gzip.compress(data) if gz else data)


def make_tiny_dataset(folder: Path, *, seed: int, n_train: int = 30, n_test: int = 10):
  """Writes the four official file names with random content; returns the arrays written."""
  rng = np.random.default_rng(seed)
  folder.mkdir(parents=True, exist_ok=True)
  arrays = {}
  for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    write_idx_images(folder / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx_labels(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    arrays[split] = (images, labels)
  return arrays


def assert_one_line_error(excinfo, path):
  message = str(excinfo.value)
  assert str(path) in message
  assert "\n" not in message
  assert FIX_HINT in message


def read_with_tfds(builder, split):
  """Reads a split with tfds's own per-record decoding (the reference for our fast path)."""
  source = builder.as_data_source(split=split)
  records = [source[i] for i in range(len(source))]
  images = np.stack([r["image"] for r in records]) if records else np.zeros((0, 28, 28, 1))
  labels = np.array([r["label"] for r in records])
  return images, labels


# ---------------------------------------------------------------- IDX files


def test_idx_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
  labels = np.array([0, 1, 2, 3, 9, 8, 7], dtype=np.uint8)
  write_idx_images(tmp_path / "img.gz", images)
  write_idx_labels(tmp_path / "lab.gz", labels)

  got_images, got_labels = read_idx_pair(tmp_path / "img.gz", tmp_path / "lab.gz")
  assert got_images.dtype == np.uint8 and got_images.shape == (7, 28, 28)
  assert got_labels.dtype == np.uint8 and got_labels.shape == (7,)
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)
  np.testing.assert_array_equal(read_idx_images(tmp_path / "img.gz"), images)
  np.testing.assert_array_equal(read_idx_labels(str(tmp_path / "lab.gz")), labels)


def test_idx_empty_files_are_valid(tmp_path):
  write_idx_images(tmp_path / "img.gz", np.zeros((0, 28, 28), np.uint8))
  write_idx_labels(tmp_path / "lab.gz", np.zeros((0,), np.uint8))
  assert read_idx_images(tmp_path / "img.gz").shape == (0, 28, 28)
  assert read_idx_labels(tmp_path / "lab.gz").shape == (0,)


def _images(n=3):
  return np.zeros((n, 28, 28), np.uint8)


def _gzipped_noise():
  return gzip.compress(np.random.default_rng(0).integers(0, 256, 2000, np.uint8).tobytes())


@pytest.mark.parametrize(
  "write, read, expected",
  [
    (lambda p: None, read_idx_images, "missing"),
    (lambda p: p.write_bytes(b"plain bytes, not gzip"), read_idx_images, "not a gzip"),
    (lambda p: p.write_bytes(_gzipped_noise()[:500]), read_idx_labels, "corrupt gzip"),
    (
      lambda p: p.write_bytes(_gzipped_noise()[:-8] + b"\0" * 8),
      read_idx_labels,
      "corrupt gzip (CRC check failed",
    ),
    (
      lambda p: write_idx_images(p, _images(), magic=2049),
      read_idx_images,
      "bad magic number (expected 2051, got 2049)",
    ),
    (
      lambda p: write_idx_labels(p, np.zeros(3), magic=2051),
      read_idx_labels,
      "bad magic number (expected 2049, got 2051)",
    ),
    (
      lambda p: write_idx_images(p, _images(3), count=5),
      read_idx_images,
      "header says 5 images (3920 bytes) but payload holds 2352 bytes (truncated)",
    ),
    (
      lambda p: write_idx_labels(p, np.zeros(3), count=4),
      read_idx_labels,
      "header says 4 labels (4 bytes) but payload holds 3 bytes (truncated)",
    ),
    (lambda p: write_idx_labels(p, np.zeros(3), count=2), read_idx_labels, "trailing bytes"),
    (lambda p: p.write_bytes(gzip.compress(b"\0\0\x08")), read_idx_labels, "truncated"),
    (lambda p: write_idx_images(p, np.zeros((2, 27, 28), np.uint8)), read_idx_images, "27x28"),
    (
      lambda p: write_idx_labels(p, np.array([1, 2, 10])),
      read_idx_labels,
      "labels outside 0-9 (label 10 at index 2)",
    ),
  ],
  ids=[
    "missing",
    "not_gzip",
    "cut_gzip",
    "bad_crc_gzip",
    "images_bad_magic",
    "labels_bad_magic",
    "images_truncated",
    "labels_truncated",
    "labels_trailing",
    "header_truncated",
    "wrong_image_size",
    "label_out_of_range",
  ],
)
def test_idx_errors_name_the_file(tmp_path, write, read, expected):
  path = tmp_path / "some-file-idx-ubyte.gz"
  write(path)
  with pytest.raises(DataError) as excinfo:
    read(path)
  assert expected in str(excinfo.value)
  assert_one_line_error(excinfo, path)
  assert isinstance(excinfo.value, ValueError)


def test_idx_count_mismatch(tmp_path):
  write_idx_images(tmp_path / "img.gz", _images(4))
  write_idx_labels(tmp_path / "lab.gz", np.zeros(3))
  with pytest.raises(DataError, match="3 labels .* 4 images") as excinfo:
    read_idx_pair(tmp_path / "img.gz", tmp_path / "lab.gz")
  assert_one_line_error(excinfo, tmp_path / "lab.gz")
  assert str(tmp_path / "img.gz") in str(excinfo.value)


# ---------------------------------------------------------------- builders on tiny data


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """Tiny mnist + fashion_mnist folders (same file names, different content), prepared once."""
  root = tmp_path_factory.mktemp("tiny_raw")
  written = {
    "mnist": make_tiny_dataset(root / "mnist", seed=1),
    "fashion_mnist": make_tiny_dataset(root / "fashion_mnist", seed=2),
  }
  tfds_dir = tmp_path_factory.mktemp("tiny_tfds")
  for name in IDX_DATASETS:
    load_splits(name, data_dir=str(root), tfds_dir=str(tfds_dir), splits=("test",))
  return root, tfds_dir, written


def test_builders_registered_and_distinct():
  assert DistillMnist.name == "distill_mnist"
  assert DistillFashionMnist.name == "distill_fashion_mnist"
  builders = tfds.list_builders(with_community_datasets=False)
  assert {"distill_mnist", "distill_fashion_mnist"} <= set(builders)
  assert IdxImageClassificationBuilder.name not in builders  # abstract base


def test_checksums_registered():
  """tfds finds checksums.tsv next to builders.py and it covers every URL we download."""
  for builder_cls in (DistillMnist, DistillFashionMnist):
    url_infos = builder_cls.url_infos
    assert url_infos, builder_cls._checksums_path
    for file_name in IDX_FILE_NAMES:
      info = url_infos[builder_cls.BASE_URL + file_name]
      assert info.filename == file_name and info.size > 0 and len(info.checksum) == 64


@pytest.mark.parametrize("name", IDX_DATASETS)
def test_tiny_builder_keeps_sizes_order_and_datasets_apart(tiny, name):
  _, tfds_dir, written = tiny
  builder = {"mnist": DistillMnist, "fashion_mnist": DistillFashionMnist}[name](
    data_dir=str(tfds_dir)
  )
  assert builder.info.splits["train"].num_examples == 30
  assert builder.info.splits["test"].num_examples == 10
  for split in ("train", "test"):
    images, labels = read_with_tfds(builder, split)
    want_images, want_labels = written[name][split]
    np.testing.assert_array_equal(labels, want_labels)  # order kept, right dataset
    np.testing.assert_array_equal(images[..., 0], want_images)
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1)
  other = written["fashion_mnist" if name == "mnist" else "mnist"]
  assert not np.array_equal(written[name]["train"][0], other["train"][0])


def test_tiny_load_splits_matches_tfds_decoding(tiny, monkeypatch):
  """load_splits' fast batched decoding equals tfds's own decoding, and slices are right."""
  root, tfds_dir, written = tiny
  monkeypatch.setitem(IDX_SPLITS, "big", "train[:25]")
  monkeypatch.setitem(IDX_SPLITS, "small", "train[25:]")
  # Already prepared by the fixture: must not generate again.
  monkeypatch.setattr(
    IdxImageClassificationBuilder,
    "_generate_examples",
    lambda *a, **k: pytest.fail("dataset was prepared a second time"),
  )
  for name in IDX_DATASETS:
    out = load_splits(name, data_dir=str(root), tfds_dir=str(tfds_dir))
    assert set(out) == {"big", "small", "test"}
    images, labels = written[name]["train"]
    for split, rows in (("big", slice(0, 25)), ("small", slice(25, 30))):
      x, y = out[split]
      assert x.dtype == np.float32 and y.dtype == np.int32
      np.testing.assert_array_equal(y, labels[rows])
      np.testing.assert_array_equal(x[..., 0], images[rows] / np.float32(255))
    builder = (
      DistillMnist(data_dir=str(tfds_dir))
      if name == "mnist"
      else DistillFashionMnist(data_dir=str(tfds_dir))
    )
    ref_images, ref_labels = read_with_tfds(builder, "test")
    np.testing.assert_array_equal(out["test"][1], ref_labels)
    np.testing.assert_array_equal(out["test"][0], ref_images / np.float32(255))


def test_a_larger_small_pool_moves_images_from_big_to_small_without_overlap(tiny):
  """small_pool=N: Small is the last N training images, Big the others, in their order."""
  root, tfds_dir, written = tiny
  for name in IDX_DATASETS:
    out = load(name, data_dir=str(root), tfds_dir=str(tfds_dir), small_pool=12)
    images, labels = written[name]["train"]
    for split, rows in (("big", slice(0, 18)), ("small", slice(18, 30))):
      np.testing.assert_array_equal(out[split][1], labels[rows])
      np.testing.assert_array_equal(out[split][0][..., 0], images[rows] / np.float32(255))
    kept = load(  # max_small: a seeded subset of the pool, as of the talk's Small
      name, data_dir=str(root), tfds_dir=str(tfds_dir), small_pool=12, max_sizes={"small": 5}
    )
    np.testing.assert_array_equal(kept["small"][1], labels[18:][subset_positions(12, 5)])
    np.testing.assert_array_equal(kept["big"][1], out["big"][1])


def test_small_pool_sizes_and_bad_values():
  assert idx_splits() == IDX_SPLITS and idx_split_sizes() == IDX_SPLIT_SIZES
  assert idx_splits(10_000) == {"big": "train[:-10000]", "small": "train[-10000:]", "test": "test"}
  assert idx_split_sizes(10_000) == {"big": 50_000, "small": 10_000, "test": 10_000}
  for bad in (0, 60_000, 2.5, True, "1000"):
    with pytest.raises(DataError, match=r"small_pool = .*an int from 1 to 59,999"):
      idx_splits(bad)


def test_download_path_without_manual_dir(tmp_path, monkeypatch):
  """No data_dir: the builder downloads the official URLs (faked here) and reads those files."""
  fake_downloads = tmp_path / "fake_downloads"
  written = make_tiny_dataset(fake_downloads, seed=3, n_train=4, n_test=3)
  requested = {}

  def fake_download(self, urls):
    requested.update(urls)
    return {key: fake_downloads / url.rsplit("/", 1)[1] for key, url in urls.items()}

  monkeypatch.setattr(tfds.download.DownloadManager, "download", fake_download)
  checked = []  # the network is faked too: the reachability check is only recorded
  monkeypatch.setattr(tfds_io, "check_reachable", lambda builder: checked.append(builder.name))
  out = load_splits(
    "fashion_mnist", data_dir=None, tfds_dir=str(tmp_path / "tfds"), splits=("test",)
  )
  assert set(requested.values()) == {DistillFashionMnist.BASE_URL + f for f in IDX_FILE_NAMES}
  assert set(requested.values()) <= set(DistillFashionMnist.url_infos)
  np.testing.assert_array_equal(out["test"][1], written["test"][1])
  assert (tmp_path / "tfds" / "downloads" / "distill_fashion_mnist").is_dir()
  assert checked == ["distill_fashion_mnist"]


# ---------------------------------------------------------------- load_splits arguments


def test_missing_data_dir_fails_fast(tmp_path):
  missing = tmp_path / "no_such_root"
  start = time.perf_counter()
  with pytest.raises(DataError) as excinfo:
    load_splits("mnist", data_dir=str(missing), tfds_dir=str(tmp_path / "tfds"))
  assert time.perf_counter() - start < 5
  assert_one_line_error(excinfo, missing / "mnist")
  assert not (tmp_path / "tfds" / "distill_mnist").exists()


def test_missing_file_fails_fast(tmp_path):
  make_tiny_dataset(tmp_path / "raw" / "mnist", seed=4)
  (tmp_path / "raw" / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
  start = time.perf_counter()
  with pytest.raises(DataError, match="missing") as excinfo:
    load_splits("mnist", data_dir=str(tmp_path / "raw"), tfds_dir=str(tmp_path / "tfds"))
  assert time.perf_counter() - start < 5
  assert_one_line_error(excinfo, tmp_path / "raw" / "mnist" / "t10k-labels-idx1-ubyte.gz")


def test_corrupt_file_raises_data_error_and_leaves_nothing_prepared(tmp_path):
  make_tiny_dataset(tmp_path / "raw" / "mnist", seed=5)
  bad = tmp_path / "raw" / "mnist" / "train-labels-idx1-ubyte.gz"
  write_idx_labels(bad, np.zeros(29))  # 30 images, 29 labels
  with pytest.raises(DataError, match="29 labels") as excinfo:
    load_splits("mnist", data_dir=str(tmp_path / "raw"), tfds_dir=str(tmp_path / "tfds"))
  assert_one_line_error(excinfo, bad)
  assert not (tmp_path / "tfds" / "distill_mnist" / "1.0.0").exists()


def test_unknown_dataset_and_split(tmp_path):
  with pytest.raises(DataError, match="unknown dataset 'cifar10'; valid: mnist, fashion_mnist"):
    load_splits("cifar10", data_dir=str(tmp_path), tfds_dir=str(tmp_path))
  with pytest.raises(DataError, match="unknown split 'val'; valid: big, small, test"):
    load_splits("mnist", data_dir=str(tmp_path), tfds_dir=str(tmp_path), splits=("val",))


def test_resolve_data_dir(monkeypatch):
  monkeypatch.delenv("DISTILL_DATA_DIR", raising=False)
  assert resolve_data_dir(None) is None
  assert resolve_data_dir("/flag") == "/flag"
  monkeypatch.setenv("DISTILL_DATA_DIR", "/env")
  assert resolve_data_dir(None) == "/env"
  assert resolve_data_dir("/flag") == "/flag"
  monkeypatch.setenv("DISTILL_DATA_DIR", "")
  assert resolve_data_dir(None) is None


def test_split_and_dataset_constants():
  assert SPLIT_NAMES == ("big", "small", "test")
  assert IDX_SPLITS == {"big": "train[:59000]", "small": "train[59000:]", "test": "test"}
  assert IMAGENETTE_SPLITS == {"big": "train", "small": "train", "test": "val"}
  assert set(IDX_SPLITS) == set(IMAGENETTE_SPLITS) == set(SPLIT_NAMES)
  assert IDX_DATASETS == ("mnist", "fashion_mnist")
  assert DATASET_NAMES == ("fashion_mnist", "imagenette", "mnist")
  assert GENERATED_MNIST == "generated_mnist"


# ---------------------------------------------------------------- load and image_shape


def _fake_splits(sizes):
  """{split: (images, labels)} whose pixels encode the example index, as a loader returns."""
  out = {}
  for split, n in sizes.items():
    index = np.arange(n)
    images = np.broadcast_to(index[:, None, None, None] / np.float32(n), (n, 28, 28, 1))
    out[split] = (np.ascontiguousarray(images, np.float32), index.astype(np.int32))
  return out


def test_load_passes_the_checked_sizes_of_the_mnist_family_to_load_splits(monkeypatch):
  """``load`` hands the MNIST family's ``max_sizes`` to ``load_splits``, which reads only the
  kept records (equal to ``subset`` of the whole split: the tiny-tree test below)."""
  full = _fake_splits({"big": 50, "small": 8, "test": 20})
  calls = []

  def fake_load_splits(name, *, data_dir, tfds_dir, splits, max_sizes, small_pool):
    calls.append((name, data_dir, tfds_dir, splits, max_sizes, small_pool))
    return {split: full[split] for split in splits}

  monkeypatch.setattr(loading, "load_splits", fake_load_splits)
  out = load(
    "mnist",
    data_dir="raw",
    tfds_dir="prepared",
    image_size=64,  # ignored for the MNIST family
    max_sizes={"big": 7, "small": 8},
    small_pool=3000,
  )
  assert calls == [
    ("mnist", "raw", "prepared", SPLIT_NAMES, {"big": 7, "small": 8, "test": None}, 3000)
  ]
  assert all(out[split] is full[split] for split in SPLIT_NAMES)
  with pytest.raises(DataError, match=r"max_sizes\['big'\] must be an int >= 1"):
    load("mnist", data_dir="raw", tfds_dir="prepared", max_sizes={"big": -1})
  test = load("fashion_mnist", data_dir=None, tfds_dir="t", splits="test")["test"]
  assert test is full["test"]
  assert calls[-1] == ("fashion_mnist", None, "t", ("test",), {"test": None}, 1000)


def test_load_passes_imagenette_options_through(monkeypatch):
  calls = []

  images, labels = np.zeros((2, 48, 48, 3), np.float32), np.zeros(2, np.int32)

  def fake_load_imagenette(**kwargs):
    calls.append(kwargs)
    return {"small": (images, labels)}

  monkeypatch.setattr(imagenette, "load_imagenette", fake_load_imagenette)
  limits = {"big": 3}
  result = load(
    "imagenette",
    data_dir="raw",
    tfds_dir="prepared",
    splits=("small",),
    image_size=48,
    imagenette_small=20,
    max_sizes=limits,
  )
  assert result["small"].images is images and result["small"].labels is labels  # a Split
  assert calls == [
    dict(
      data_dir="raw",
      tfds_dir="prepared",
      image_size=48,
      splits=("small",),
      small_size=20,
      max_sizes=limits,
    )
  ]


@pytest.mark.parametrize("name", ["cifar10", GENERATED_MNIST, "MNIST"])
def test_load_unknown_dataset(name, tmp_path, monkeypatch):
  monkeypatch.setattr(loading, "load_splits", lambda *a, **k: pytest.fail("dispatched"))
  with pytest.raises(
    DataError, match=f"unknown dataset '{name}'; valid: fashion_mnist, imagenette, mnist"
  ):
    load(name, data_dir=str(tmp_path), tfds_dir=str(tmp_path))


def test_load_checks_splits_and_max_sizes_before_reading(tmp_path, monkeypatch):
  monkeypatch.setattr(loading, "load_splits", lambda *a, **k: pytest.fail("data was read"))
  with pytest.raises(DataError, match="unknown split 'val'; valid: big, small, test"):
    load("mnist", data_dir=None, tfds_dir=str(tmp_path), splits=("test", "val"))
  for bad in (0, -1, 2.5, True, "10"):
    with pytest.raises(DataError, match=r"max_sizes\['test'\] must be an int >= 1 or None"):
      load("mnist", data_dir=None, tfds_dir=str(tmp_path), max_sizes={"test": bad})


def test_subset():
  split = _fake_splits({"test": 10})["test"]
  for size in (None, 10, 11):
    kept = subset(split, size)
    assert kept[0] is split[0] and kept[1] is split[1]
  images, labels = subset(split, 4, seed=2)
  np.testing.assert_array_equal(labels, np.sort(np.random.default_rng(2).permutation(10)[:4]))
  np.testing.assert_array_equal(images, split[0][labels])


def test_load_tiny_mnist_family_equals_load_splits_subsets(tiny, monkeypatch):
  root, tfds_dir, _ = tiny
  monkeypatch.setitem(IDX_SPLITS, "big", "train[:25]")
  monkeypatch.setitem(IDX_SPLITS, "small", "train[25:]")
  for name in IDX_DATASETS:
    full = load_splits(name, data_dir=str(root), tfds_dir=str(tfds_dir))
    out = load(name, data_dir=str(root), tfds_dir=str(tfds_dir), max_sizes={"big": 9, "test": 10})
    assert set(out) == set(SPLIT_NAMES)
    chosen = subset_positions(25, 9)
    np.testing.assert_array_equal(out["big"][0], full["big"][0][chosen])
    np.testing.assert_array_equal(out["big"][1], full["big"][1][chosen])
    for split in ("small", "test"):
      np.testing.assert_array_equal(out[split][0], full[split][0])
      np.testing.assert_array_equal(out[split][1], full[split][1])


def test_image_shape():
  for name in (*IDX_DATASETS, GENERATED_MNIST):
    assert image_shape(name) == (28, 28, 1)
    assert image_shape(name, image_size=224) == (28, 28, 1)
  assert image_shape("imagenette") == (32, 32, 3)
  assert image_shape("imagenette", 224) == (224, 224, 3)
  assert image_shape("imagenette", np.int64(16)) == (16, 16, 3)
  with pytest.raises(DataError, match="image_size"):
    image_shape("imagenette", 4)
  with pytest.raises(DataError, match="unknown dataset 'cifar10'; valid: .*generated_mnist"):
    image_shape("cifar10")


# ---------------------------------------------------------------- real Fashion-MNIST


@pytest.fixture(scope="session")
def fashion(tmp_path_factory):
  if not (SHARED_DATA / "fashion_mnist").is_dir():
    pytest.skip(f"real data not available: {SHARED_DATA / 'fashion_mnist'} is absent")
  tfds_dir = tmp_path_factory.mktemp("fashion_tfds")
  start = time.perf_counter()
  splits = load_splits("fashion_mnist", data_dir=str(SHARED_DATA), tfds_dir=str(tfds_dir))
  print(f"\nfashion_mnist first prepare + load: {time.perf_counter() - start:.1f} s")
  return splits, tfds_dir


def test_real_fashion_mnist_splits(fashion):
  splits, _ = fashion
  sizes = {name: len(labels) for name, (_, labels) in splits.items()}
  assert sizes == {"big": 59_000, "small": 1_000, "test": 10_000}
  for name, (images, labels) in splits.items():
    assert images.shape == (sizes[name], 28, 28, 1) and images.dtype == np.float32
    assert labels.shape == (sizes[name],) and labels.dtype == np.int32
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels.min() == 0 and labels.max() == 9
  train_labels = np.concatenate([splits["big"][1], splits["small"][1]])
  np.testing.assert_array_equal(np.bincount(train_labels), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(splits["test"][1]), [1000] * 10)
  train_mean = (
    splits["big"][0].sum(dtype=np.float64) + splits["small"][0].sum(dtype=np.float64)
  ) / (60_000 * 784)
  assert abs(train_mean - 0.2860) < 5e-5
  assert abs(splits["test"][0].mean(dtype=np.float64) - 0.2868) < 5e-5


def test_real_small_is_last_1000_of_train(fashion):
  splits, _ = fashion
  folder = SHARED_DATA / "fashion_mnist"
  images = read_idx_images(folder / "train-images-idx3-ubyte.gz")
  labels = read_idx_labels(folder / "train-labels-idx1-ubyte.gz")
  small_images, small_labels = splits["small"]
  np.testing.assert_array_equal(small_labels, labels[59_000:])
  np.testing.assert_array_equal(small_images[..., 0], images[59_000:] / np.float32(255))
  np.testing.assert_array_equal(splits["big"][1], labels[:59_000])


def test_real_second_load_reuses_prepared(fashion, monkeypatch):
  _, tfds_dir = fashion
  monkeypatch.setattr(
    IdxImageClassificationBuilder,
    "_generate_examples",
    lambda *a, **k: pytest.fail("dataset was prepared a second time"),
  )
  start = time.perf_counter()
  splits = load_splits("fashion_mnist", data_dir=str(SHARED_DATA), tfds_dir=str(tfds_dir))
  elapsed = time.perf_counter() - start
  print(f"\nfashion_mnist cached load of 70,000 records: {elapsed:.1f} s")
  assert len(splits["big"][1]) == 59_000
  assert set(os.listdir(tfds_dir)) == {"distill_fashion_mnist", "downloads", ".locks", ".manifests"}


def test_real_load_subsets_equal_the_picks_of_the_full_load(fashion, shared_data_dir):
  splits, tfds_dir = fashion
  out = load(
    "fashion_mnist",
    data_dir=shared_data_dir,
    tfds_dir=str(tfds_dir),
    splits=("small", "test"),
    max_sizes={"big": 5, "small": 1000, "test": 700},
  )
  assert set(out) == {"small", "test"}
  chosen = subset_positions(10_000, 700)
  assert out["test"][0].shape == (700, 28, 28, 1)
  np.testing.assert_array_equal(out["test"][0], splits["test"][0][chosen])
  np.testing.assert_array_equal(out["test"][1], splits["test"][1][chosen])
  assert not np.array_equal(out["test"][1], splits["test"][1][:700])  # seeded, not the first
  np.testing.assert_array_equal(out["small"][0], splits["small"][0])  # 1,000: all of it
  np.testing.assert_array_equal(out["small"][1], splits["small"][1])


def test_local_preparation_prints_no_download_line_and_no_progress_bars(tmp_path, capfd, caplog):
  """Preparing from local files: our two timed log lines, not tfds's "Downloading and
  preparing dataset Unknown size" nor its progress bars (which ran into the next log line)."""
  import logging

  root = tmp_path / "raw"
  make_tiny_dataset(root / "fashion_mnist", seed=4)
  caplog.set_level(logging.INFO, logger="absl")  # other tests may have set absl to WARNING
  tfds_dir = str(tmp_path / "tfds")
  load_splits("fashion_mnist", data_dir=str(root), tfds_dir=tfds_dir, splits=("test",))
  out, err = capfd.readouterr()
  assert "Downloading and preparing" not in out + err
  assert "examples/s" not in out + err and "\r" not in out + err  # no tqdm bars
  assert "tfds distill_fashion_mnist: preparing" in caplog.text
  assert "tfds distill_fashion_mnist: prepared in" in caplog.text


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "imagenette"])
def test_offline_without_data_dir_fails_in_seconds_naming_data_dir(name, tmp_path, monkeypatch):
  import socket

  def unreachable(address, timeout=None):
    raise OSError(101, "Network is unreachable")

  monkeypatch.setattr(socket, "create_connection", unreachable)
  started = time.perf_counter()
  with pytest.raises(
    DataError, match=r"cannot be reached to download it .*--data_dir=<folder> or \$DISTILL_DATA_DIR"
  ):
    loading.load(name, data_dir=None, tfds_dir=str(tmp_path))
  assert time.perf_counter() - started < 10


def test_raw_files_changed_after_preparing_are_noticed(tmp_path, caplog):
  """The prepared copy records the raw files it came from: other files under the same names
  (same sizes, another content) make it prepare again instead of reading the old copy."""
  root, tfds_dir = tmp_path / "raw", tmp_path / "tfds"
  make_tiny_dataset(root / "mnist", seed=1)
  first = load_splits("mnist", data_dir=str(root), tfds_dir=str(tfds_dir), splits=("test",))
  unchanged = load_splits("mnist", data_dir=str(root), tfds_dir=str(tfds_dir), splits=("test",))
  np.testing.assert_array_equal(unchanged["test"][0], first["test"][0])
  assert not any("out of date" in record.getMessage() for record in caplog.records)
  written = make_tiny_dataset(root / "mnist", seed=5)  # same files, other pixels and labels
  again = load_splits("mnist", data_dir=str(root), tfds_dir=str(tfds_dir), splits=("test",))
  np.testing.assert_array_equal(again["test"][1], written["test"][1])
  assert not np.array_equal(again["test"][0], first["test"][0])
  assert any("is out of date (the raw file" in record.getMessage() for record in caplog.records)
