"""Public entry point: MNIST / Fashion-MNIST splits as float32 numpy arrays, prepared once with tfds."""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable

import numpy as np
import tensorflow_datasets as tfds
from tensorflow_datasets.core import shuffle as tfds_shuffle
from tensorflow_datasets.proto import tf_example_pb2

from distill_jax.data.builders import BUILDERS, IDX_FILE_NAMES
from distill_jax.data.errors import FIX_HINT, DataError
from distill_jax.data.generated import DistillGeneratedMnist, TranslatedSplits

# Our split name -> tfds split slice. "small" is the last 1,000 training images.
SPLITS = {"big": "train[:59000]", "small": "train[59000:]", "test": "test"}
DATASETS = ("mnist", "fashion_mnist")
DATA_DIR_ENV = "DISTILL_DATA_DIR"


def resolve_data_dir(flag_value: str | None) -> str | None:
  """The raw-data root: the flag if set, else $DISTILL_DATA_DIR, else None (download online)."""
  return flag_value or os.environ.get(DATA_DIR_ENV) or None


def load_splits(
  name: str,
  *,
  data_dir: str | None,
  tfds_dir: str,
  splits=("big", "small", "test"),
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Returns {split: (images float32 (N,28,28,1) in [0,1], labels int32 (N,))}.

  `data_dir` is a root holding `<name>/` with the four IDX .gz files; it is read directly and the
  network is never used. With `data_dir=None` tfds downloads the official files. The prepared
  dataset is written once under `tfds_dir` and reused by later calls.
  """
  if name not in DATASETS:
    raise DataError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
  if isinstance(splits, str):
    splits = (splits,)
  for split in splits:
    if split not in SPLITS:
      raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")

  manual_dir = None if data_dir is None else _check_idx_folder(os.path.join(data_dir, name))
  builder = BUILDERS[name](data_dir=tfds_dir)
  download_and_prepare(  # no-op when already prepared
    builder,
    download_dir=os.path.join(tfds_dir, "downloads", builder.name),
    download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False),
  )
  return {split: _read_split(builder, SPLITS[split]) for split in splits}


def load_generated_mnist(
  config_name: str,
  *,
  translate: Callable[[], TranslatedSplits] | None,
  tfds_dir: str,
  splits=("big", "small", "test"),
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """GeneratedMNIST made by the VAE named ``config_name``, as ``load_splits`` returns splits.

  Prepared once under ``tfds_dir`` (``translate()`` gives the uint8 images and labels of
  ``train`` and ``test``; it is not called when the dataset exists) and read back from there.
  """
  if isinstance(splits, str):
    splits = (splits,)
  for split in splits:
    if split not in SPLITS:
      raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
  builder = DistillGeneratedMnist(config_name=config_name, translate=translate, data_dir=tfds_dir)
  download_and_prepare(builder, download_dir=os.path.join(tfds_dir, "downloads", builder.name))
  return {split: _read_split(builder, SPLITS[split]) for split in splits}


def subset_positions(count: int, size: int | None, seed: int = 0) -> np.ndarray | None:
  """Positions of a seeded ``size``-subset of ``count`` examples, sorted (original order), or
  None for all of them (``size`` None or not smaller than ``count``)."""
  if size is None or size >= count:
    return None
  return np.sort(np.random.default_rng(seed).permutation(count)[:size])


def download_and_prepare(builder: tfds.core.DatasetBuilder, **kwargs) -> None:
  """``builder.download_and_prepare(file_format="array_record", **kwargs)``, TensorFlow optional.

  tfds keeps a split's serialized examples in memory up to 1 GB and beyond that spills them to
  temporary bucket files through ``tf.io.gfile``, which imports TensorFlow. Without TensorFlow
  (this project does not need it) a split over 1 GB (Imagenette train at 224 px is 1.43 GB)
  would fail with ``No module named 'tensorflow'``, so the limit is lifted while preparing: the
  split is then held in host memory once, about its size on disk.
  """
  with _in_memory_shuffle_buffer():
    builder.download_and_prepare(file_format="array_record", **kwargs)


@contextlib.contextmanager
def _in_memory_shuffle_buffer():
  """Lifts tfds's in-memory limit (see ``download_and_prepare``) when TensorFlow is missing."""
  limit = getattr(tfds_shuffle, "MAX_MEM_BUFFER_SIZE", None)
  if limit is None or importlib.util.find_spec("tensorflow") is not None:
    yield
    return
  tfds_shuffle.MAX_MEM_BUFFER_SIZE = 1 << 62
  try:
    yield
  finally:
    tfds_shuffle.MAX_MEM_BUFFER_SIZE = limit


def _check_idx_folder(folder: str) -> str:
  """Fails fast (before tfds, which would otherwise try the network) if a file is missing."""
  if not os.path.isdir(folder):
    raise DataError(f"{folder}: dataset folder is missing; {FIX_HINT}")
  for file_name in IDX_FILE_NAMES:
    path = os.path.join(folder, file_name)
    if not os.path.isfile(path):
      raise DataError(f"{path}: file is missing; {FIX_HINT}")
  return folder


def _read_split(builder, tfds_split: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads one split through `as_data_source` in a single batched call.

  Records are fetched as raw bytes and decoded here in bulk (the image is one bytes field):
  about 4x faster than tfds's per-record decoding.
  """
  source = builder.as_data_source(
    split=tfds_split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES
  )
  records = source.__getitems__(range(len(source))) if len(source) else []
  images, labels = decode_records(records)
  images = images.astype(np.float32)
  images /= 255.0
  return images, labels


def decode_records(records, image_shape=(28, 28, 1)) -> tuple[np.ndarray, np.ndarray]:
  """Serialized tf.train.Example records (raw-bytes image + label) → (uint8 (N, *image_shape),
  int32 (N,))."""
  parse = tf_example_pb2.Example.FromString
  pixels, labels = [], []
  for record in records:
    feature = parse(record).features.feature
    pixels.append(feature["image"].bytes_list.value[0])
    labels.append(feature["label"].int64_list.value[0])
  images = np.frombuffer(b"".join(pixels), dtype=np.uint8).reshape(-1, *image_shape)
  return images, np.asarray(labels, dtype=np.int32)
