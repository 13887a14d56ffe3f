"""Datasets by name: a user's own datasets, registered from a config file, beside the built-in ones.

``config.source_dataset`` / ``config.target_dataset`` name a dataset. The built-in ones (MNIST,
Fashion-MNIST, Imagenette; GeneratedMNIST, made by φ_vae) are read by ``loading``; any other name
is looked up here. A user registers one with ``register_dataset(name, dataset)``, typically in
the ``--config`` file that also sets the experiment up, so the library is never edited:

  data.register_dataset("inverted_mnist", data.from_arrays(make_splits))

A ``Dataset`` is a ``load(context) -> {split: (images, labels)}`` function (``own.py`` has the
ready-made ones: arrays or a function returning them, ``.npz`` / ``.npy`` files, an image folder,
any tfds dataset by name) and optionally its class count and a one-line description for the
reports. What ``load`` returns is checked before any training (``check_loaded``), with one-line
errors naming the dataset, the split and the fix:

- the three splits ``big`` / ``small`` / ``test`` (``splits.SPLIT_NAMES``), each an (images,
  labels) pair with as many labels as images and at least one example;
- images ``[N, H, W]`` or ``[N, H, W, C]``, the same ``(H, W, C)`` in every split, either uint8
  (0-255, divided by 255) or floats in [0, 1] with no NaN; they come back float32 NHWC;
- integer labels in ``[0, num_classes)``; ``num_classes`` is the declared one, else the largest
  label + 1 over the splits. Labels come back int32.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from distill_jax.data.errors import DataError
from distill_jax.data.splits import SPLIT_NAMES, Split

Splits = dict[str, Split]


@dataclasses.dataclass(frozen=True)
class DataContext:
  """What a dataset's ``load`` may use.

  Attributes:
    data_dir: the raw-data root (``--data_dir`` / ``$DISTILL_DATA_DIR``), None when online.
    tfds_dir: where tfds datasets are prepared (and other caches of prepared data may go).
    image_size: ``config.data.image_size``, for datasets whose image side is a choice.
  """

  data_dir: str | None
  tfds_dir: str
  image_size: int = 32


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A registered dataset.

  Attributes:
    load: ``(DataContext) -> {split: (images, labels)}`` for the splits big, small and test
      (checked as the module docstring says; more keys are an error).
    num_classes: the class count; None: the largest label + 1 over the splits.
    description: one line for the logs and ``results.json`` (e.g. where the files are).
  """

  load: Callable[[DataContext], Mapping[str, Any]]
  num_classes: int | None = None
  description: str = ""


_DATASETS: dict[str, Dataset] = {}


def register_dataset(name: str, dataset: Dataset, *, reserved: tuple[str, ...] = ()) -> None:
  """Makes ``name`` a valid ``config.source_dataset`` / ``target_dataset``.

  A built-in name (``reserved``) is an error; registering a user's name again replaces the
  earlier dataset (a config file or notebook cell run twice). Caches stay right either way:
  they are keyed by the arrays' content, not by the name."""
  if not isinstance(name, str) or not name.isidentifier():
    raise ValueError(f"a dataset name must be an identifier such as 'my_digits', got {name!r}.")
  if not isinstance(dataset, Dataset):
    raise TypeError(
      f"register_dataset({name!r}, ...) takes a data.Dataset (e.g. data.from_arrays(...)), "
      f"got {type(dataset).__name__}."
    )
  if name in reserved:
    raise ValueError(f"dataset name {name!r} is built in; register yours under another name.")
  _DATASETS[name] = dataset


def registered_names() -> tuple[str, ...]:
  """The names registered with ``register_dataset``, sorted."""
  return tuple(sorted(_DATASETS))


def get(name: str) -> Dataset | None:
  """The registered dataset ``name``, or None."""
  return _DATASETS.get(name)


def load_registered(name: str, context: DataContext) -> tuple[Splits, int]:
  """The checked splits of the registered dataset ``name`` and its class count."""
  dataset = _DATASETS[name]
  try:
    loaded = dataset.load(context)
  except DataError as error:
    raise DataError(f"dataset {name!r}: {error}") from None
  return check_loaded(name, loaded, dataset.num_classes)


def check_loaded(
  name: str, loaded: Mapping[str, Any], num_classes: int | None = None
) -> tuple[Splits, int]:
  """``loaded`` ({split: (images, labels)}) checked and converted (module docstring): returns
  ({split: Split(float32 NHWC in [0, 1], int32 labels)}, class count), or DataError."""
  if not isinstance(loaded, Mapping):
    raise DataError(
      f"dataset {name!r}: load returned {type(loaded).__name__}; it must return a dict "
      f"{{split: (images, labels)}} with the splits {', '.join(SPLIT_NAMES)}."
    )
  missing = [split for split in SPLIT_NAMES if split not in loaded]
  extra = sorted(set(loaded) - set(SPLIT_NAMES))
  if missing or extra:
    raise DataError(
      f"dataset {name!r} has splits {sorted(loaded)}; it needs exactly "
      f"{', '.join(SPLIT_NAMES)} (big: the source domain's training set, small: the target "
      "domain's few labelled examples, test); from_arrays(..., small_size=N) cuts big and "
      "small from one train split."
    )
  splits = {split: _check_split(name, split, loaded[split]) for split in SPLIT_NAMES}
  shapes = {split: arrays.images.shape[1:] for split, arrays in splits.items()}
  if len(set(shapes.values())) > 1:
    listed = ", ".join(f"{split} {shape}" for split, shape in shapes.items())
    raise DataError(
      f"dataset {name!r}: every split needs the same image shape (H, W, C), got {listed}; "
      "resize them alike (from_image_folder(..., image_size=S) does)."
    )
  top = max(int(arrays.labels.max()) for arrays in splits.values())
  if num_classes is None:
    num_classes = top + 1
  elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
    raise DataError(f"dataset {name!r}: num_classes must be an int, got {num_classes!r}.")
  elif top >= num_classes:
    raise DataError(
      f"dataset {name!r} declares num_classes={num_classes} but has label {top}; labels must "
      f"be 0 ... num_classes - 1."
    )
  if num_classes < 2:
    raise DataError(f"dataset {name!r} has {num_classes} class(es); classification needs >= 2.")
  return splits, int(num_classes)


def _check_split(name: str, split: str, pair: Any) -> Split:
  where = f"dataset {name!r}, split {split!r}"
  if not isinstance(pair, (tuple, list)) or len(pair) != 2:
    raise DataError(f"{where}: expected an (images, labels) pair, got {type(pair).__name__}.")
  images, labels = (np.asarray(value) for value in pair)
  if images.ndim == 3:
    images = images[..., None]  # [N, H, W]: one channel
  if images.ndim != 4 or 0 in images.shape[1:]:
    raise DataError(f"{where}: images must be [N, H, W] or [N, H, W, C], got shape {images.shape}.")
  if labels.ndim != 1 or len(labels) != len(images):
    raise DataError(
      f"{where}: labels must be one per image, shape ({len(images)},), got {labels.shape}."
    )
  if len(labels) == 0:
    raise DataError(f"{where} is empty; every split needs at least one example.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise DataError(
      f"{where}: labels must be integers 0 ... num_classes - 1, got dtype {labels.dtype}; "
      "map class names to indices first."
    )
  if labels.min() < 0:
    raise DataError(f"{where}: label {int(labels.min())} is negative; labels start at 0.")
  if images.dtype == np.uint8:
    images = images.astype(np.float32) / 255.0
  elif np.issubdtype(images.dtype, np.floating):
    images = images.astype(np.float32)
    if not np.isfinite(images).all():
      raise DataError(f"{where}: images hold NaN or infinite values.")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0:
      raise DataError(
        f"{where}: float images must lie in [0, 1], got [{low:.4g}, {high:.4g}]; scale them "
        "(e.g. images / 255) or pass uint8."
      )
  else:
    raise DataError(
      f"{where}: images must be uint8 (0-255) or float in [0, 1], got dtype {images.dtype}."
    )
  return Split(images, labels.astype(np.int32))
