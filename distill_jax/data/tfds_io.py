"""tfds plumbing shared by our builders: preparing, the record features, reading records back.

Every dataset here stores one raw-bytes uint8 image and one class label per record. Preparing
and reading need no TensorFlow: images are ``Tensor`` features (not ``Image``, which would
PNG-encode through TensorFlow) and records are read as serialized bytes and decoded in bulk.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import time
import urllib.parse
from collections.abc import Callable, Iterable

import jax
import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from tensorflow_datasets.core import shuffle as tfds_shuffle
from tensorflow_datasets.core.utils import tqdm_utils
from tensorflow_datasets.proto import tf_example_pb2

from distill_jax import files
from distill_jax import integrity
from distill_jax.data.errors import DataError
from distill_jax import locks
from distill_jax import parallel


def image_features(
  image_shape: tuple[int, int, int], label: tfds.features.ClassLabel
) -> tfds.features.FeaturesDict:
  """The record features: a uint8 ``image`` of ``image_shape`` stored as raw bytes, ``label``.

  BYTES stores the pixels as one bytes field (the default would store one int64 per pixel),
  which ``decode_records`` reads back in bulk.
  """
  return tfds.features.FeaturesDict(
    {
      "image": tfds.features.Tensor(
        shape=image_shape, dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
      ),
      "label": label,
    }
  )


def manual_folder(dl_manager: tfds.download.DownloadManager) -> epath.Path | None:
  """The manual folder if it exists and is not empty, else None (then we download)."""
  try:
    return dl_manager.manual_dir
  except AssertionError:  # tfds: no manual folder, or it is missing / empty
    return None


def prepare(
  make_builder: Callable[[], tfds.core.DatasetBuilder],
  download_config: tfds.download.DownloadConfig | None = None,
) -> tfds.core.DatasetBuilder:
  """``make_builder()``'s dataset, prepared once (array_record) and ready to read.

  Two processes preparing one dataset at once would race on tfds's final rename, so the
  dataset's lock (``<tfds_dir>/.locks/<name>/[<config>/]<version>.lock``) is held while
  preparing: a second process waits, then builds its builder again to read what the first
  prepared. Downloads (when there is no manual folder) go to ``<tfds_dir>/downloads/<name>``.
  A prepared dataset gets a checksum manifest (``<tfds_dir>/.manifests/...``), checked on every
  later call: a damaged one is set aside (``integrity.set_aside``) and prepared again.

  tfds keeps a split's serialized examples in memory up to 1 GB and beyond that spills them to
  temporary bucket files through ``tf.io.gfile``, which imports TensorFlow. Without TensorFlow
  (this project does not need it) a split over 1 GB (Imagenette train at 224 px is 1.43 GB)
  would fail with ``No module named 'tensorflow'``, so the limit is lifted while preparing: the
  split is then held in host memory once, about its size on disk.
  """
  if jax.process_count() > 1:  # process 0 prepares; the others read what it wrote
    builder = _prepare_once(make_builder, download_config) if parallel.is_primary() else None
    parallel.barrier("tfds prepare")
    return builder or make_builder()
  return _prepare_once(make_builder, download_config)


def _prepare_once(
  make_builder: Callable[[], tfds.core.DatasetBuilder],
  download_config: tfds.download.DownloadConfig | None,
) -> tfds.core.DatasetBuilder:
  """``prepare`` in one process: under the dataset's lock, with its manifest."""
  builder = make_builder()
  seen_prepared = _is_prepared(builder)
  root = os.fspath(builder.data_dir_root)
  relative = os.path.relpath(os.fspath(builder.data_dir), root)
  manifest = os.path.join(root, ".manifests", relative + ".json")
  raw_record = os.path.join(root, ".manifests", relative + ".raw.json")  # what it came from
  lock_path = os.path.join(root, ".locks", relative + ".lock")
  with locks.hold(builder.data_dir, what=f"tfds {builder.name}", lock_path=lock_path):
    if not seen_prepared and _is_prepared(builder):  # another process prepared it meanwhile
      builder, seen_prepared = make_builder(), True
    if seen_prepared:
      if not os.path.exists(manifest):  # prepared before manifests existed: trust it once
        integrity.write_manifest(os.fspath(builder.data_dir), manifest)
        _record_raw_files(download_config, raw_record)
        return builder
      problem = integrity.problem(os.fspath(builder.data_dir), manifest)
      state = "is damaged"
      if problem is None:
        problem, state = _raw_files_changed(download_config, raw_record), "is out of date"
      if problem is None:
        if not os.path.exists(raw_record):  # prepared before raw records existed: trust it once
          _record_raw_files(download_config, raw_record)
        return builder
      moved = integrity.set_aside(os.fspath(builder.data_dir))
      logging.warning(
        "tfds %s: %s %s (%s); set aside as %s, preparing it again.",
        builder.name,
        builder.data_dir,
        state,
        problem,
        moved,
      )
      builder = make_builder()
    local = download_config is None or bool(getattr(download_config, "manual_dir", None))
    if not local:
      check_reachable(builder)
    source = "local files" if local else "the official URLs"
    logging.info("tfds %s: preparing %s from %s ...", builder.name, builder.data_dir, source)
    started = time.perf_counter()
    with _in_memory_shuffle_buffer(), _quiet_local_preparation(builder, local):
      builder.download_and_prepare(
        file_format="array_record",
        download_dir=os.path.join(root, "downloads", builder.name),
        download_config=download_config,
      )
    integrity.write_manifest(os.fspath(builder.data_dir), manifest)
    _record_raw_files(download_config, raw_record)
    logging.info("tfds %s: prepared in %.1f s", builder.name, time.perf_counter() - started)
  return builder


def _raw_listing(folder: str) -> dict[str, dict]:
  """{path relative to ``folder``: {size, mtime_ns}} of every file under it."""
  listing = {}
  for parent, _, names in os.walk(folder):
    for name in names:
      path = os.path.join(parent, name)
      stat = os.stat(path)
      listing[os.path.relpath(path, folder)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
  return listing


def _manual_dir(download_config) -> str | None:
  folder = getattr(download_config, "manual_dir", None)
  return os.fspath(folder) if folder else None


def _record_raw_files(download_config, record: str) -> None:
  """Records the raw (manual folder) files a dataset is prepared from: size, mtime, sha256."""
  folder = _manual_dir(download_config)
  if folder is None:  # downloaded: tfds checks the downloads against its own checksums
    with contextlib.suppress(FileNotFoundError):
      os.remove(record)
    return
  listing = _raw_listing(folder)
  for relative, entry in listing.items():
    entry["sha256"] = integrity.sha256(os.path.join(folder, relative))
  files.write_json(record, {"folder": folder, "files": listing}, indent=1)


def _raw_files_changed(download_config, record: str) -> str | None:
  """What changed in the raw files since the dataset was prepared from them, or None.

  Files whose size and mtime match the record are taken as unchanged (no reading); the others
  are hashed. A dataset prepared by download, or read with no manual folder now, is not
  compared."""
  folder = _manual_dir(download_config)
  if folder is None or not os.path.exists(record):
    return None
  try:
    with open(record) as file:
      recorded = json.load(file)["files"]
  except (OSError, ValueError, KeyError):
    return f"its record of the raw files, {record}, is unreadable"
  listing = _raw_listing(folder)
  for relative in sorted(set(recorded) ^ set(listing)):
    state = "is new" if relative in listing else "is missing"
    return f"the raw file {os.path.join(folder, relative)} {state} since it was prepared"
  for relative, entry in sorted(listing.items()):
    old = recorded[relative]
    if (entry["size"], entry["mtime_ns"]) == (old["size"], old["mtime_ns"]):
      continue
    if integrity.sha256(os.path.join(folder, relative)) != old["sha256"]:
      return f"the raw file {os.path.join(folder, relative)} changed since it was prepared"
  return None


def check_reachable(builder: tfds.core.DatasetBuilder, timeout: float = 5.0) -> None:
  """A DataError within seconds, naming ``data_dir``, when the host the builder downloads from
  (its ``BASE_URL``) cannot be reached (offline), instead of tfds's minutes of retries ending
  in a raw network error."""
  url = urllib.parse.urlsplit(getattr(builder, "BASE_URL", "") or "")
  if not url.hostname:
    return
  port = url.port or (443 if url.scheme == "https" else 80)
  try:
    socket.create_connection((url.hostname, port), timeout=timeout).close()
  except OSError as error:
    raise DataError(
      f"{builder.name}: no local copy was given and {url.hostname} cannot be reached to "
      f"download it ({error}). Offline? Pass the folder holding mnist/, fashion_mnist/ and "
      "imagenette/ (the official files) as data_dir: --data_dir=<folder> or "
      "$DISTILL_DATA_DIR (e.g. ../shared/data)."
    ) from None


@contextlib.contextmanager
def _quiet_local_preparation(builder: tfds.core.DatasetBuilder, local: bool):
  """For a dataset made from local files: no "Downloading and preparing dataset Unknown size"
  line (nothing is downloaded) and no tfds progress bars (they end without a newline and run
  into the next log line); our own two log lines say what happens and how long it took. A real
  download keeps tfds's output (its size line and bars are what a user needs to wait or
  cancel)."""
  if not local:
    yield
    return
  for name in ("_log_download_bytes", "_log_download_done"):  # this builder only
    if hasattr(builder, name):
      setattr(builder, name, lambda: None)
  was_active = getattr(tqdm_utils, "_active", True)
  tqdm_utils.display_progress_bar(False)
  try:
    yield
  finally:
    tqdm_utils.display_progress_bar(was_active)


def _is_prepared(builder: tfds.core.DatasetBuilder) -> bool:
  return os.path.isfile(os.path.join(os.fspath(builder.data_dir), "dataset_info.json"))


@contextlib.contextmanager
def _in_memory_shuffle_buffer():
  """Lifts tfds's in-memory limit (see ``prepare``) when TensorFlow is missing."""
  limit = getattr(tfds_shuffle, "MAX_MEM_BUFFER_SIZE", None)
  if limit is None or importlib.util.find_spec("tensorflow") is not None:
    yield
    return
  tfds_shuffle.MAX_MEM_BUFFER_SIZE = 1 << 62
  try:
    yield
  finally:
    tfds_shuffle.MAX_MEM_BUFFER_SIZE = limit


def read_split(
  builder: tfds.core.DatasetBuilder,
  tfds_split: str,
  image_shape: tuple[int, int, int],
  indices: Iterable[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Records ``indices`` (all if None) of a prepared split: (float32 images in [0, 1], int32).

  The records are fetched in one batched call as raw bytes and decoded by ``decode_records``:
  about 4x faster than tfds's per-record decoding.
  """
  source = builder.as_data_source(
    split=tfds_split, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES
  )
  indices = range(len(source)) if indices is None else [int(i) for i in indices]
  records = source.__getitems__(indices) if len(indices) else []
  images, labels = decode_records(records, image_shape)
  images = images.astype(np.float32)
  images /= 255.0
  return images, labels


def decode_records(
  records: Iterable[bytes], image_shape: tuple[int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
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


def decode_int_features(records: Iterable[bytes], names: Iterable[str]) -> dict[str, np.ndarray]:
  """Serialized tf.train.Example records → {name: int64 (N,)} of the scalar int features
  ``names`` (e.g. a label, GeneratedMNIST's provenance)."""
  parse = tf_example_pb2.Example.FromString
  names = tuple(names)
  values = {name: [] for name in names}
  for record in records:
    feature = parse(record).features.feature
    for name in names:
      values[name].append(feature[name].int64_list.value[0])
  return {name: np.asarray(column, dtype=np.int64) for name, column in values.items()}
