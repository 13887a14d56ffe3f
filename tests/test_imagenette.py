"""Tests for distill_jax.data.imagenette (and ``data.load`` of it): a tiny fake imagenette tree,
a listing of the real one."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from distill_jax.data import DataError
from distill_jax.data import imagenette
from distill_jax.data import tfds_io
from distill_jax.data.imagenette import (
  WNIDS,
  DistillImagenette,
  list_imagenette_files,
  load_imagenette,
  load_jpeg,
  resize_and_crop,
  split_train_indices,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_IMAGENETTE = REPO_ROOT.parent / "shared" / "data" / "imagenette"
FIX_HINT = "DISTILL_DATA_DIR"  # every folder error says how to fix it
PER_CLASS = {"train": 3, "val": 2}
SIZE = 16


# ---------------------------------------------------------------- helpers


def write_tree(root: Path, *, per_class=PER_CLASS, seed: int = 0) -> Path:
  """Writes `root/imagenette/{train,val}/<wnid>/*.JPEG` with random sizes; returns `root`.

  File names are random so that the listing order (sorted names) differs from writing order.
  Class 0's first train image is grayscale and class 1's is CMYK (RGB conversion). Every class
  folder also holds a `notes.txt` that must be ignored.
  """
  rng = np.random.default_rng(seed)
  for split, count in per_class.items():
    for label, wnid in enumerate(WNIDS):
      folder = root / "imagenette" / split / wnid
      folder.mkdir(parents=True)
      for index in range(count):
        width, height = (int(v) for v in rng.integers(17, 41, size=2))
        pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        if split == "train" and index == 0 and label in (0, 1):
          image = image.convert("L" if label == 0 else "CMYK")
        name = f"{rng.integers(10**6):06d}_{wnid}.JPEG"
        image.save(folder / name, quality=95)
      (folder / "notes.txt").write_text("not an image: the listing skips it")
  return root


def reference_image(path, size: int) -> np.ndarray:
  """Independent preprocessing: PIL bicubic resize (shorter side = size), numpy centre slice."""
  image = Image.open(path).convert("RGB")
  width, height = image.size
  if width <= height:
    new_width, new_height = size, round(height * size / width)
  else:
    new_width, new_height = round(width * size / height), size
  pixels = np.asarray(image.resize((new_width, new_height), Image.Resampling.BICUBIC))
  top, left = (new_height - size) // 2, (new_width - size) // 2
  return pixels[top : top + size, left : left + size]


def expected_files(root: Path, split: str) -> list[tuple[str, int]]:
  """(path, label) in record order, from glob (independent of the module's listing)."""
  files = []
  for label, wnid in enumerate(WNIDS):
    paths = sorted((root / "imagenette" / split / wnid).glob("*.JPEG"), key=lambda p: p.name)
    files.extend((str(path), label) for path in paths)
  return files


def assert_folder_error(excinfo, path):
  message = str(excinfo.value)
  assert str(path) in message
  assert FIX_HINT in message


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
  return write_tree(tmp_path_factory.mktemp("imagenette_data"))


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory) -> str:
  return str(tmp_path_factory.mktemp("imagenette_tfds"))


@pytest.fixture(scope="module")
def loaded(fake_root, tfds_dir):
  """The fake tree prepared at SIZE px, small_size=5."""
  return load_imagenette(
    data_dir=str(fake_root), tfds_dir=tfds_dir, image_size=SIZE, small_size=5, split_seed=3
  )


# ---------------------------------------------------------------- listing and preprocessing


def test_listing_order_and_labels(fake_root):
  files = list_imagenette_files(fake_root / "imagenette")
  for split, count in PER_CLASS.items():
    assert files[split] == expected_files(fake_root, split)
    labels = [label for _, label in files[split]]
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), count))


def test_resize_and_crop_is_a_centre_crop_when_the_short_side_already_fits():
  # Shorter side == S: no resampling, so the result is exactly the centre slice.
  pixels = np.random.default_rng(0).integers(0, 256, size=(SIZE, 3 * SIZE + 1, 3), dtype=np.uint8)
  result = resize_and_crop(Image.fromarray(pixels), SIZE)
  np.testing.assert_array_equal(result, pixels[:, SIZE : 2 * SIZE])
  tall = resize_and_crop(Image.fromarray(pixels.transpose(1, 0, 2)), SIZE)
  np.testing.assert_array_equal(tall, pixels.transpose(1, 0, 2)[SIZE : 2 * SIZE])


def test_load_jpeg_converts_grayscale_and_cmyk_to_rgb(fake_root):
  gray_path, _ = expected_files(fake_root, "train")[0]  # class 0, index 0 was saved grayscale
  assert Image.open(gray_path).mode == "L"
  gray = load_jpeg(gray_path, SIZE)
  assert gray.shape == (SIZE, SIZE, 3) and gray.dtype == np.uint8
  np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
  np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
  cmyk_paths = [
    path for path, _ in expected_files(fake_root, "train") if Image.open(path).mode == "CMYK"
  ]
  assert len(cmyk_paths) == 1
  cmyk = load_jpeg(cmyk_paths[0], SIZE)
  np.testing.assert_allclose(cmyk, reference_image(cmyk_paths[0], SIZE), atol=1)


# ---------------------------------------------------------------- load_imagenette


def test_split_sizes_shapes_and_range(loaded):
  sizes = {split: len(labels) for split, (_, labels) in loaded.items()}
  assert sizes == {"big": 25, "small": 5, "test": 20}
  for images, labels in loaded.values():
    assert images.shape == (len(labels), SIZE, SIZE, 3) and images.dtype == np.float32
    assert labels.dtype == np.int32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images.max() > 0.5  # really scaled to [0, 1], not [0, 1/255]


def test_values_and_labels_equal_independent_preprocessing(fake_root, loaded):
  train = expected_files(fake_root, "train")
  small_indices, big_indices = split_train_indices(len(train), 5, 3)
  reference = {
    "test": expected_files(fake_root, "val"),
    "small": [train[i] for i in small_indices],
    "big": [train[i] for i in big_indices],
  }
  for split, files in reference.items():
    images, labels = loaded[split]
    np.testing.assert_array_equal(labels, [label for _, label in files])
    expected = np.stack([reference_image(path, SIZE) for path, _ in files]) / 255.0
    np.testing.assert_allclose(images, expected, atol=1.01 / 255)


def test_big_small_partition_is_seeded_disjoint_and_covers_train():
  small, big = split_train_indices(30, 5, 3)
  again_small, again_big = split_train_indices(30, 5, 3)
  np.testing.assert_array_equal(small, again_small)
  np.testing.assert_array_equal(big, again_big)
  assert len(small) == 5 and len(big) == 25
  assert np.all(np.diff(small) > 0) and np.all(np.diff(big) > 0)  # sorted, no repeats
  np.testing.assert_array_equal(np.sort(np.concatenate([small, big])), np.arange(30))
  # The documented rule: first small_size entries of default_rng(seed)'s permutation.
  np.testing.assert_array_equal(small, np.sort(np.random.default_rng(3).permutation(30)[:5]))
  assert not np.array_equal(small, split_train_indices(30, 5, 4)[0])


def test_second_load_reuses_prepared_dataset(fake_root, tfds_dir, loaded, monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError("the dataset was prepared a second time")

  monkeypatch.setattr(DistillImagenette, "_generate_examples", fail)
  again = load_imagenette(
    data_dir=str(fake_root),
    tfds_dir=tfds_dir,
    image_size=SIZE,
    splits=("small", "test"),
    small_size=5,
    split_seed=3,
  )
  assert set(again) == {"small", "test"}
  for split in again:
    np.testing.assert_array_equal(again[split][0], loaded[split][0])
    np.testing.assert_array_equal(again[split][1], loaded[split][1])
  # Another seed re-splits the same prepared records.
  other = load_imagenette(
    data_dir=str(fake_root), tfds_dir=tfds_dir, image_size=SIZE, splits="small", small_size=5
  )
  assert not np.array_equal(split_train_indices(30, 5, 0)[0], split_train_indices(30, 5, 3)[0])
  assert not np.array_equal(other["small"][0], loaded["small"][0])


def test_each_size_is_its_own_config_and_logs_progress(fake_root, tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  data = load_imagenette(
    data_dir=str(fake_root), tfds_dir=str(tmp_path), image_size=8, splits="test"
  )  # the default small_size=1000 > 30 train images only matters for big / small
  assert data["test"][0].shape == (20, 8, 8, 3)
  assert (tmp_path / "distill_imagenette" / "8px").is_dir()
  assert "preparing 30 train images" in caplog.text
  assert "preparing 20 val images" in caplog.text
  info = DistillImagenette(image_size=8, data_dir=str(tmp_path)).info
  assert info.features["label"].names == list(WNIDS)


def test_splits_over_the_tfds_memory_limit_prepare_without_tensorflow(
  fake_root, tmp_path, loaded, monkeypatch
):
  """tfds spills a split over MAX_MEM_BUFFER_SIZE (1 GB; 224 px train is 1.43 GB) to files
  through tf.io.gfile; without TensorFlow that must not be reached. Here the limit is 1 byte."""
  from tensorflow_datasets.core import shuffle as tfds_shuffle

  monkeypatch.setattr(tfds_shuffle, "MAX_MEM_BUFFER_SIZE", 1)
  data = load_imagenette(
    data_dir=str(fake_root), tfds_dir=str(tmp_path), image_size=SIZE, small_size=5, split_seed=3
  )
  assert tfds_shuffle.MAX_MEM_BUFFER_SIZE == 1  # restored after preparing
  for split in ("big", "small", "test"):  # same records as a prepare under the default limit
    np.testing.assert_array_equal(data[split][0], loaded[split][0])
    np.testing.assert_array_equal(data[split][1], loaded[split][1])


# ---------------------------------------------------------------- errors


def forbid_tfds(monkeypatch):
  """Errors about the folder must come before the builder is made (tfds would try the network)."""

  def fail(*args, **kwargs):
    raise AssertionError("tfds was touched before the folder was checked")

  monkeypatch.setattr(imagenette, "DistillImagenette", fail)


def test_missing_folders_fail_fast(tmp_path, monkeypatch):
  forbid_tfds(monkeypatch)
  tfds_dir = str(tmp_path / "tfds")
  with pytest.raises(DataError) as excinfo:
    load_imagenette(data_dir=str(tmp_path), tfds_dir=tfds_dir, image_size=SIZE)
  assert_folder_error(excinfo, tmp_path / "imagenette")
  write_tree(tmp_path, per_class={"train": 1})  # no val/
  with pytest.raises(DataError) as excinfo:
    load_imagenette(data_dir=str(tmp_path), tfds_dir=tfds_dir, image_size=SIZE)
  assert_folder_error(excinfo, tmp_path / "imagenette" / "val")
  assert not os.path.exists(tfds_dir)


def test_wrong_class_folders_fail_fast(tmp_path, monkeypatch):
  forbid_tfds(monkeypatch)
  write_tree(tmp_path, per_class={"train": 1, "val": 1})
  val = tmp_path / "imagenette" / "val"
  shutil.rmtree(val / WNIDS[4])
  with pytest.raises(DataError, match="expected 10 class folders .* found 9") as excinfo:
    load_imagenette(data_dir=str(tmp_path), tfds_dir=str(tmp_path / "tfds"), image_size=SIZE)
  assert_folder_error(excinfo, val)
  (val / "n99999999").mkdir()  # 10 folders, but one is not an Imagenette class
  with pytest.raises(DataError, match="n99999999") as excinfo:
    load_imagenette(data_dir=str(tmp_path), tfds_dir=str(tmp_path / "tfds"), image_size=SIZE)
  shutil.rmtree(val / "n99999999")
  (val / WNIDS[4]).mkdir()  # right names, but empty
  with pytest.raises(DataError, match="no .JPEG") as excinfo:
    load_imagenette(data_dir=str(tmp_path), tfds_dir=str(tmp_path / "tfds"), image_size=SIZE)
  assert_folder_error(excinfo, val / WNIDS[4])


def test_corrupt_jpeg_names_the_file_and_prepares_nothing(tmp_path):
  root = write_tree(tmp_path / "data", per_class={"train": 1, "val": 1})
  bad_path, _ = expected_files(root, "val")[7]
  content = Path(bad_path).read_bytes()
  Path(bad_path).write_bytes(content[: len(content) // 2])  # truncated JPEG
  tfds_dir = str(tmp_path / "tfds")
  with pytest.raises(DataError, match="cannot decode") as excinfo:
    load_imagenette(data_dir=str(root), tfds_dir=tfds_dir, image_size=SIZE, small_size=5)
  assert bad_path in str(excinfo.value)
  Path(bad_path).write_bytes(content)  # repaired: the next load prepares from scratch
  data = load_imagenette(data_dir=str(root), tfds_dir=tfds_dir, image_size=SIZE, small_size=5)
  np.testing.assert_allclose(
    data["test"][0][7], reference_image(bad_path, SIZE) / 255.0, atol=1.01 / 255
  )


@pytest.mark.parametrize("image_size", [4, 7, 16.0, "64", True, None])
def test_bad_image_size(image_size, tmp_path, monkeypatch):
  forbid_tfds(monkeypatch)
  with pytest.raises(DataError, match="image_size"):
    load_imagenette(data_dir=str(tmp_path), tfds_dir=str(tmp_path), image_size=image_size)


def test_bad_split_and_small_size(fake_root, tfds_dir, loaded, monkeypatch):
  with pytest.raises(DataError, match="unknown split 'val'"):
    load_imagenette(data_dir=str(fake_root), tfds_dir=tfds_dir, image_size=SIZE, splits="val")
  with pytest.raises(DataError, match="small_size"):
    load_imagenette(data_dir=str(fake_root), tfds_dir=tfds_dir, image_size=SIZE, small_size=0)
  with pytest.raises(DataError, match="small_size=30 leaves no Big"):
    load_imagenette(data_dir=str(fake_root), tfds_dir=tfds_dir, image_size=SIZE, small_size=30)


# ---------------------------------------------------------------- real data (listing only)


@pytest.mark.skipif(not REAL_IMAGENETTE.is_dir(), reason=f"no offline data at {REAL_IMAGENETTE}")
def test_real_imagenette_listing():
  files = list_imagenette_files(REAL_IMAGENETTE)
  assert len(files["train"]) == 9469
  assert len(files["val"]) == 3925
  for split in ("train", "val"):
    labels = np.array([label for _, label in files[split]])
    assert np.all(np.diff(labels) >= 0)  # grouped by class, in wnid order
    assert set(labels.tolist()) == set(range(10))
  # At the stored 224 px the preprocessing is the identity on the decoded pixels.
  path = files["val"][0][0]
  np.testing.assert_array_equal(load_jpeg(path, 224), np.asarray(Image.open(path).convert("RGB")))


def test_official_archive_checksum_registered():
  """tfds verifies the downloaded archive against checksums.tsv next to imagenette.py (size and
  sha256 as registered by tensorflow-datasets' own imagenette builder)."""
  info = DistillImagenette.url_infos[imagenette.URL]
  assert info.filename == "imagenette2.tgz"
  assert info.size == 1557161267 and len(info.checksum) == 64


def test_without_data_dir_downloads_the_official_archive(fake_root, tmp_path, monkeypatch):
  # Stand-in for the network: "extracting" the archive gives a folder holding imagenette2/.
  extracted = tmp_path / "extracted"
  extracted.mkdir()
  (extracted / "imagenette2").symlink_to(fake_root / "imagenette")
  requested = []

  def fake_download_and_extract(self, url):
    requested.append(url)
    return epath.Path(extracted)

  monkeypatch.setattr(
    tfds.download.DownloadManager, "download_and_extract", fake_download_and_extract
  )
  monkeypatch.setattr(tfds_io, "check_reachable", lambda builder: None)  # the network is faked
  data = load_imagenette(
    data_dir=None, tfds_dir=str(tmp_path / "tfds"), image_size=8, splits="test"
  )
  assert requested == [imagenette.URL]
  np.testing.assert_array_equal(data["test"][1], np.repeat(np.arange(10), PER_CLASS["val"]))


def test_max_sizes_decode_the_same_seeded_subsets_as_taking_them_afterwards(
  fake_root, tfds_dir, loaded
):
  from distill_jax.data import subset_positions

  limited = load_imagenette(
    data_dir=str(fake_root),
    tfds_dir=tfds_dir,
    image_size=SIZE,
    small_size=5,
    split_seed=3,
    max_sizes={"big": 7, "small": None, "test": 4},
  )
  for split, size in (("big", 7), ("small", None), ("test", 4)):
    chosen = subset_positions(len(loaded[split][1]), size)
    want = loaded[split] if chosen is None else (loaded[split][0][chosen], loaded[split][1][chosen])
    np.testing.assert_array_equal(limited[split][0], want[0])
    np.testing.assert_array_equal(limited[split][1], want[1])
  assert len(set(limited["test"][1].tolist())) > 1  # a seeded subset, not the first (one) class
  with pytest.raises(DataError, match=r"max_sizes\['test'\] must be an int >= 1"):
    load_imagenette(
      data_dir=str(fake_root),
      tfds_dir=tfds_dir,
      image_size=SIZE,
      small_size=5,
      max_sizes={"test": 0},
    )


def test_load_dispatches_imagenette_with_its_options(fake_root, tfds_dir, loaded):
  from distill_jax.data import load, subset_positions

  full = load_imagenette(  # the default split_seed, as load uses
    data_dir=str(fake_root), tfds_dir=tfds_dir, image_size=SIZE, small_size=5
  )
  out = load(
    "imagenette",
    data_dir=str(fake_root),
    tfds_dir=tfds_dir,
    image_size=SIZE,
    imagenette_small=5,
    max_sizes={"big": 6, "small": 5, "test": None},
  )
  assert {split: len(labels) for split, (_, labels) in out.items()} == {
    "big": 6,
    "small": 5,
    "test": 20,
  }
  chosen = subset_positions(25, 6)
  np.testing.assert_array_equal(out["big"][0], full["big"][0][chosen])
  np.testing.assert_array_equal(out["big"][1], full["big"][1][chosen])
  for split in ("small", "test"):
    np.testing.assert_array_equal(out[split][0], full[split][0])
    np.testing.assert_array_equal(out[split][1], full[split][1])
  assert out["test"][0].shape == (20, SIZE, SIZE, 3) and out["test"][0].dtype == np.float32
  np.testing.assert_array_equal(out["test"][0], loaded["test"][0])
