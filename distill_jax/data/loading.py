"""Public entry points: a dataset's splits by name as float32 numpy arrays, prepared once with tfds.

``load`` reads any dataset of ``dataset_names()``: MNIST and Fashion-MNIST through
``load_splits``, Imagenette through ``imagenette.load_imagenette``, a user's registered dataset
through ``registry``. GeneratedMNIST is made by a trained VAE, so it has its own loader,
``load_generated_mnist``, keyed by the VAE's name. ``image_shape`` gives the (H, W, C) of the
built-in ones, ``num_classes`` the class count of any.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import tensorflow_datasets as tfds

from distill_jax.data import imagenette
from distill_jax.data import registry
from distill_jax.data.builders import BUILDERS, IDX_FILE_NAMES, IMAGE_SHAPE
from distill_jax.data.errors import FIX_HINT, DataError
from distill_jax.data.generated import (
  TALK_SPLIT,
  DistillGeneratedMnist,
  GeneratedSplits,
  check_prepared_sizes,
  read_provenance,
)
from distill_jax.data.splits import (
  SPLIT_NAMES,
  Split,
  check_max_sizes,
  check_splits,
  subset,
  subset_positions,
)
from distill_jax.data.tfds_io import prepare, read_split

DATA_DIR_ENV = "DISTILL_DATA_DIR"
IDX_DATASETS = ("mnist", "fashion_mnist")  # read from the four official IDX files
IMAGENETTE = "imagenette"
GENERATED_MNIST = "generated_mnist"  # made by a VAE: load_generated_mnist, not load
DATASET_NAMES = tuple(sorted((*IDX_DATASETS, IMAGENETTE)))  # the built-in ones `load` reads
BUILT_IN_CLASSES = 10  # every built-in dataset (GeneratedMNIST too) has ten classes
# Our split name -> tfds split slice of MNIST and Fashion-MNIST (60,000 train + 10,000 test):
# "small" is the last 1,000 training images. GeneratedMNIST's slices: its builder's tfds_splits.
IDX_SPLITS = {"big": "train[:59000]", "small": "train[59000:]", "test": "test"}
IDX_SPLIT_SIZES = {"big": 59_000, "small": 1_000, "test": 10_000}
IDX_TRAIN_SIZE = 60_000  # MNIST and Fashion-MNIST train: Big + the Small pool


def idx_splits(small_pool: int = IDX_SPLIT_SIZES["small"]) -> dict[str, str]:
  """``IDX_SPLITS`` with Small drawn from the last ``small_pool`` training images and Big the
  first ``60,000 − small_pool`` (the two never overlap): the talk's split for the default 1,000,
  a larger pool for target sets of more than 1,000 images (``data.max_small`` then takes a
  seeded subset of the pool)."""
  check_small_pool(small_pool)
  if small_pool == IDX_SPLIT_SIZES["small"]:
    return dict(IDX_SPLITS)
  return {"big": f"train[:-{small_pool}]", "small": f"train[-{small_pool}:]", "test": "test"}


def idx_split_sizes(small_pool: int = IDX_SPLIT_SIZES["small"]) -> dict[str, int]:
  """The sizes of ``idx_splits(small_pool)``."""
  check_small_pool(small_pool)
  return {"big": IDX_TRAIN_SIZE - small_pool, "small": small_pool, "test": IDX_SPLIT_SIZES["test"]}


def check_small_pool(small_pool) -> int:
  """``small_pool`` if it is an int in [1, 59,999], else DataError naming the fix."""
  if (
    isinstance(small_pool, bool)
    or not isinstance(small_pool, (int, np.integer))
    or not 1 <= small_pool < IDX_TRAIN_SIZE
  ):
    raise DataError(
      f"small_pool = {small_pool!r}: give the number of MNIST / Fashion-MNIST training images "
      f"Small is drawn from, an int from 1 to {IDX_TRAIN_SIZE - 1:,} (Big is the other "
      f"{IDX_TRAIN_SIZE:,} − small_pool; the talk's split is 1,000)."
    )
  return int(small_pool)


Splits = dict[str, tuple[np.ndarray, np.ndarray]]  # split name -> (images, labels)


def resolve_data_dir(flag_value: str | None) -> str | None:
  """The raw-data root: the flag if set, else $DISTILL_DATA_DIR, else None (download online)."""
  return flag_value or os.environ.get(DATA_DIR_ENV) or None


def dataset_names() -> tuple[str, ...]:
  """Every name ``load`` reads: the built-in ``DATASET_NAMES`` and the registered ones."""
  return tuple(sorted((*DATASET_NAMES, *registry.registered_names())))


def register_dataset(name: str, dataset: registry.Dataset) -> None:
  """Makes ``name`` a valid ``config.source_dataset`` / ``target_dataset`` (``registry``); the
  built-in names are refused."""
  registry.register_dataset(name, dataset, reserved=(*DATASET_NAMES, GENERATED_MNIST))


def num_classes(name: str, load_splits_of: Callable[[], Splits]) -> int:
  """The class count of dataset ``name``: 10 for a built-in one; for a registered one its
  declared ``num_classes``, else the largest label + 1 of ``load_splits_of()`` (its whole
  splits)."""
  dataset = registry.get(name)
  if dataset is None:
    return BUILT_IN_CLASSES
  if dataset.num_classes is not None:
    return int(dataset.num_classes)
  return 1 + max(int(split[1].max()) for split in load_splits_of().values())


def load(
  name: str,
  *,
  data_dir: str | None,
  tfds_dir: str,
  splits: str | Iterable[str] = SPLIT_NAMES,
  image_size: int = 32,
  imagenette_small: int = 1000,
  small_pool: int = IDX_SPLIT_SIZES["small"],
  max_sizes: Mapping[str, int | None] | None = None,
) -> Splits:
  """Returns {split: (images float32 (N, H, W, C) in [0, 1], labels int32 (N,))} of ``name``.

  ``name`` is one of ``dataset_names()``; ``data_dir`` / ``tfds_dir`` are as for ``load_splits``
  (a registered dataset gets them in its ``DataContext``, with ``image_size``).
  For Imagenette, ``image_size`` is the side S of its images and ``imagenette_small`` the size
  of its ``small`` split (``load_imagenette``'s ``small_size``); the MNIST family ignores both.
  For MNIST and Fashion-MNIST, ``small_pool`` is the number of training images Small is drawn
  from (``idx_splits``); the others ignore it.

  ``max_sizes`` ({split: N or None}) keeps a seeded N of a split, ``subset_positions(len, N)``
  in the original order; a split of at most N (or N None) comes back as loaded. Imagenette
  decodes only the kept records.
  """
  if registry.get(name) is not None:
    splits = check_splits(splits)
    limits = check_max_sizes(max_sizes, splits)
    context = registry.DataContext(data_dir=data_dir, tfds_dir=tfds_dir, image_size=image_size)
    data, _ = registry.load_registered(name, context)
    return {split: subset(data[split], limits[split]) for split in splits}
  if name not in DATASET_NAMES:
    raise DataError(f"unknown dataset {name!r}; valid: {', '.join(dataset_names())}")
  if name == IMAGENETTE:
    loaded = imagenette.load_imagenette(
      data_dir=data_dir,
      tfds_dir=tfds_dir,
      image_size=image_size,
      splits=splits,
      small_size=imagenette_small,
      max_sizes=max_sizes,
    )
    return {split: Split(*arrays) for split, arrays in loaded.items()}
  splits = check_splits(splits)
  limits = check_max_sizes(max_sizes, splits)
  return load_splits(
    name,
    data_dir=data_dir,
    tfds_dir=tfds_dir,
    splits=splits,
    max_sizes=limits,
    small_pool=small_pool,
  )


def image_shape(name: str, image_size: int = 32) -> tuple[int, int, int] | None:
  """(H, W, C) of the images of dataset ``name``: (28, 28, 1) for the MNIST family
  (``IDX_DATASETS`` and ``GENERATED_MNIST``), (S, S, 3) for Imagenette, S = ``image_size``;
  None for a registered dataset (known once it is loaded)."""
  if registry.get(name) is not None:
    return None
  if name == IMAGENETTE:
    size = imagenette.check_image_size(image_size)
    return (size, size, 3)
  if name in (*IDX_DATASETS, GENERATED_MNIST):
    return IMAGE_SHAPE
  valid = sorted((*dataset_names(), GENERATED_MNIST))
  raise DataError(f"unknown dataset {name!r}; valid: {', '.join(valid)}")


def load_splits(
  name: str,
  *,
  data_dir: str | None,
  tfds_dir: str,
  splits: str | Iterable[str] = SPLIT_NAMES,
  max_sizes: Mapping[str, int | None] | None = None,
  small_pool: int = IDX_SPLIT_SIZES["small"],
) -> Splits:
  """Returns {split: (images float32 (N,28,28,1) in [0,1], labels int32 (N,))}.

  `name` is one of ``IDX_DATASETS``. `data_dir` is a root holding `<name>/` with the four IDX
  .gz files; it is read directly and the network is never used. With `data_dir=None` tfds
  downloads the official files. The prepared dataset is written once under `tfds_dir` and
  reused by later calls. ``max_sizes`` as for ``load``: only the kept records are read and
  decoded (the same arrays as ``subset`` of the whole split). ``small_pool``: Small is drawn
  from the last ``small_pool`` training images, Big is the rest (``idx_splits``).
  """
  if name not in IDX_DATASETS:
    raise DataError(f"unknown dataset {name!r}; valid: {', '.join(IDX_DATASETS)}")
  splits = check_splits(splits)
  limits = check_max_sizes(max_sizes, splits)
  manual_dir = None if data_dir is None else _check_idx_folder(os.path.join(data_dir, name))
  builder = prepare(  # read back when already prepared
    lambda: BUILDERS[name](data_dir=tfds_dir),
    tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False),
  )
  tfds_splits = idx_splits(small_pool)
  return {split: _read_kept(builder, tfds_splits[split], limits[split]) for split in splits}


def _read_kept(builder, tfds_split: str, size: int | None) -> Split:
  """The ``subset_positions`` pick of a prepared split, reading only the records it keeps."""
  count = builder.info.splits[tfds_split].num_examples
  return Split(*read_split(builder, tfds_split, IMAGE_SHAPE, subset_positions(count, size)))


def generated_mnist_builder(
  config_name: str,
  *,
  generate: Callable[[], GeneratedSplits] | None,
  tfds_dir: str,
  split_sizes: tuple[int, int, int] = TALK_SPLIT,
) -> DistillGeneratedMnist:
  """The GeneratedMNIST named ``config_name``, prepared under ``tfds_dir`` (``generate()`` gives
  its ``train`` and ``test`` splits; it is not called when the dataset exists)."""
  builder = prepare(
    lambda: DistillGeneratedMnist(
      config_name=config_name, generate=generate, split_sizes=split_sizes, data_dir=tfds_dir
    )
  )
  check_prepared_sizes(builder)
  return builder


def load_generated_mnist(
  config_name: str,
  *,
  generate: Callable[[], GeneratedSplits] | None,
  tfds_dir: str,
  split_sizes: tuple[int, int, int] = TALK_SPLIT,
  splits: str | Iterable[str] = SPLIT_NAMES,
) -> Splits:
  """GeneratedMNIST named ``config_name``, as ``load_splits`` returns splits: prepared once by
  ``generated_mnist_builder`` and read back; ``split_sizes`` = (big, small, test), Small being
  the last ``small`` images of its train split."""
  splits = check_splits(splits)
  builder = generated_mnist_builder(
    config_name, generate=generate, tfds_dir=tfds_dir, split_sizes=split_sizes
  )
  return {split: read_split(builder, builder.tfds_splits[split], IMAGE_SHAPE) for split in splits}


def generated_mnist_provenance(
  config_name: str, *, tfds_dir: str, split: str, split_sizes: tuple[int, int, int] = TALK_SPLIT
) -> dict[str, np.ndarray]:
  """{"source_index", "draw", "label"} of every image of a prepared GeneratedMNIST's ``split``:
  which Fashion-MNIST image (index into its 70,000 in file order) and which draw each came from."""
  (split,) = check_splits(split)
  builder = generated_mnist_builder(
    config_name, generate=None, tfds_dir=tfds_dir, split_sizes=split_sizes
  )
  return read_provenance(builder, split)


def _check_idx_folder(folder: str) -> str:
  """Fails fast (before tfds, which would otherwise try the network) if a file is missing."""
  if not os.path.isdir(folder):
    raise DataError(f"{folder}: dataset folder is missing; {FIX_HINT}")
  for file_name in IDX_FILE_NAMES:
    path = os.path.join(folder, file_name)
    if not os.path.isfile(path):
      raise DataError(f"{path}: file is missing; {FIX_HINT}")
  return folder
