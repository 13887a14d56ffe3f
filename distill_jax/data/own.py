"""Ready-made ``Dataset``s for a user's own data: arrays, ``.npz`` / ``.npy`` files, an image
folder, any tfds dataset by name. Register one with ``register_dataset`` (``registry.py``):

  data.register_dataset("my_digits", data.from_npz("/data/my_digits.npz", small_size=500))

Each gives the splits big / small / test, from either three splits of its own or one ``train``
split and a ``test`` split; then Small is cut from train as Fashion-MNIST's is: the last
``small_size`` examples (``small_seed`` None), or a seeded random ``small_size`` of them
(``small_seed`` an int: for files sorted by class, where the last ones would be one class), and
Big is the rest, both in their original order. Nothing is loaded until the experiment needs it;
the result is checked by ``registry.check_loaded``.
"""

from __future__ import annotations

import concurrent.futures
import os
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from distill_jax.data.errors import DataError
from distill_jax.data.registry import DataContext, Dataset
from distill_jax.data.splits import SPLIT_NAMES

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
TFDS_SPLITS = {"train": "train", "test": "test"}


def cut_small(
  splits: Mapping[str, Any], small_size: int | None, small_seed: int | None = None
) -> dict[str, Any]:
  """{big, small, test} from splits that hold either those three or ``train`` and ``test``
  (Small = ``small_size`` of train, the module docstring says which; Big = the rest)."""
  names = set(splits)
  if names == set(SPLIT_NAMES):
    return dict(splits)
  if names != {"train", "test"}:
    raise DataError(
      f"got splits {sorted(names)}; give either big, small and test, or train and test "
      "(then small_size=N cuts Small from train)"
    )
  images, labels = (np.asarray(value) for value in splits["train"])
  if (
    isinstance(small_size, bool)
    or not isinstance(small_size, (int, np.integer))
    or not 0 < small_size < len(labels)
  ):
    raise DataError(
      f"small_size must be an int from 1 to {len(labels) - 1} (train has {len(labels):,} "
      f"examples; Big gets the rest), got {small_size!r}"
    )
  count = len(labels)
  if small_seed is None:
    small = np.arange(count - small_size, count)
  else:
    small = np.sort(np.random.default_rng(small_seed).permutation(count)[:small_size])
  big = np.setdiff1d(np.arange(count), small)
  return {
    "big": (images[big], labels[big]),
    "small": (images[small], labels[small]),
    "test": splits["test"],
  }


def from_arrays(
  splits: Mapping[str, Any] | Callable[[DataContext], Mapping[str, Any]],
  *,
  small_size: int | None = 1000,
  small_seed: int | None = None,
  num_classes: int | None = None,
  description: str = "arrays",
) -> Dataset:
  """A dataset from in-memory arrays: ``{split: (images, labels)}`` or a function
  ``(DataContext) -> that dict`` (called when the experiment loads its data, e.g. to derive a
  dataset from a built-in one with ``data.load``). Splits: big/small/test or train/test."""

  def load(context: DataContext):
    given = splits(context) if callable(splits) else splits
    return cut_small(given, small_size, small_seed)

  return Dataset(load=load, num_classes=num_classes, description=description)


def from_npz(
  path: str | os.PathLike,
  *,
  small_size: int | None = 1000,
  small_seed: int | None = None,
  num_classes: int | None = None,
  description: str | None = None,
) -> Dataset:
  """A dataset from one ``.npz`` file, or a folder of ``.npy`` files, holding
  ``<split>_images`` and ``<split>_labels`` for big/small/test or for train/test (e.g.
  ``np.savez(path, train_images=x, train_labels=y, test_images=xt, test_labels=yt)``).
  A relative ``path`` is relative to the current directory."""
  path = os.fspath(path)

  def load(context: DataContext):
    del context
    arrays = _read_npz(path)
    for names in (SPLIT_NAMES, ("train", "test")):
      keys = [f"{split}_{what}" for split in names for what in ("images", "labels")]
      if all(key in arrays for key in keys):
        given = {split: (arrays[f"{split}_images"], arrays[f"{split}_labels"]) for split in names}
        return cut_small(given, small_size, small_seed)
    raise DataError(
      f"{path} holds {sorted(arrays)}; it needs big_images, big_labels, small_images, "
      "small_labels, test_images, test_labels, or train_images, train_labels, test_images, "
      "test_labels"
    )

  return Dataset(load=load, num_classes=num_classes, description=description or path)


def _read_npz(path: str) -> dict[str, np.ndarray]:
  try:
    if os.path.isdir(path):
      names = sorted(name for name in os.listdir(path) if name.endswith(".npy"))
      return {
        name[: -len(".npy")]: np.load(os.path.join(path, name), allow_pickle=False)
        for name in names
      }
    with np.load(path, allow_pickle=False) as archive:
      return {key: archive[key] for key in archive.files}
  except FileNotFoundError:
    raise DataError(
      f"{path}: no such file or folder; check the path (relative paths start at "
      f"the current directory, {os.getcwd()})"
    ) from None
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:  # truncated, pickles
    raise DataError(
      f"{path}: cannot read it as .npz / .npy ({error}); rewrite it with "
      "np.savez and plain numeric arrays"
    ) from None


def from_image_folder(
  root: str | os.PathLike,
  *,
  splits: Mapping[str, str] | None = None,
  image_size: int | None = None,
  channels: int = 3,
  small_size: int | None = 1000,
  small_seed: int | None = 0,
  description: str | None = None,
) -> Dataset:
  """A dataset from ``<root>/<split folder>/<class>/*.png|jpg|...`` (the Imagenette layout):
  classes are the class folders' names in sorted order, the same in every split.

  ``splits`` maps our split names to folder names, default ``{"train": "train", "test":
  "val"}`` (Small cut from train, seeded by default: files are listed class by class), or
  whatever of big/small/test/train/test folders exist when those names are folders. Images are
  converted to ``channels`` (1: grayscale, 3: RGB); ``image_size`` S resizes the shorter side
  to S (bicubic) and crops the centre S×S, None keeps them as they are (then they must all
  have one size)."""
  root = os.fspath(root)
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}.")

  def load(context: DataContext):
    del context
    folders = dict(splits) if splits is not None else _default_split_folders(root)
    listed = {
      split: _list_class_folders(os.path.join(root, folder)) for split, folder in folders.items()
    }
    classes = sorted(next(iter(listed.values())))
    for split, found in listed.items():
      if sorted(found) != classes:
        raise DataError(
          f"{os.path.join(root, folders[split])}: class folders {sorted(found)} differ from "
          f"{classes} of the other splits; every split needs the same classes"
        )
    given = {
      split: _read_images(found, classes, image_size, channels) for split, found in listed.items()
    }
    return cut_small(given, small_size, small_seed)

  return Dataset(load=load, num_classes=None, description=description or root)


def _default_split_folders(root: str) -> dict[str, str]:
  if not os.path.isdir(root):
    raise DataError(f"{root}: image folder is missing; it needs <split>/<class>/<image> folders")
  present = set(os.listdir(root))
  if set(SPLIT_NAMES) <= present:
    return {split: split for split in SPLIT_NAMES}
  for test in ("val", "test"):
    if {"train", test} <= present:
      return {"train": "train", "test": test}
  raise DataError(
    f"{root} holds {sorted(present)}; it needs train/ and val/ (or test/) folders, or "
    "big/, small/ and test/, each with one folder per class; or pass splits={...}"
  )


def _list_class_folders(folder: str) -> dict[str, list[str]]:
  if not os.path.isdir(folder):
    raise DataError(f"{folder}: split folder is missing")
  found = {}
  for name in sorted(os.listdir(folder)):
    class_folder = os.path.join(folder, name)
    if os.path.isdir(class_folder):
      files = sorted(
        os.path.join(class_folder, file)
        for file in os.listdir(class_folder)
        if file.lower().endswith(IMAGE_EXTENSIONS)
      )
      if files:
        found[name] = files
  if not found:
    raise DataError(f"{folder}: no class folder with images ({', '.join(IMAGE_EXTENSIONS)}) in it")
  return found


def _read_images(found, classes, image_size, channels):
  from PIL import Image  # noqa: PLC0415 (only image folders need it)

  from distill_jax.data.imagenette import resize_and_crop

  paths = [path for name in classes for path in found[name]]
  labels = np.asarray([index for index, name in enumerate(classes) for _ in found[name]], np.int32)

  def read(path):
    try:
      with Image.open(path) as image:
        image = image.convert("L" if channels == 1 else "RGB")
        array = resize_and_crop(image, image_size) if image_size else np.asarray(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
      raise DataError(f"{path}: cannot decode the image ({error}); replace or remove it") from None
    return array.reshape(*array.shape[:2], channels)

  with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
    images = list(pool.map(read, paths))
  shapes = {image.shape for image in images}
  if len(shapes) > 1:
    raise DataError(
      f"images of {len(shapes)} sizes ({', '.join(map(str, sorted(shapes)[:3]))}, ...) under "
      f"{os.path.dirname(os.path.dirname(paths[0]))}; pass image_size=S to resize them"
    )
  return np.stack(images), labels


def from_tfds(
  name: str,
  *,
  splits: Mapping[str, str] | None = None,
  image_key: str = "image",
  label_key: str = "label",
  small_size: int | None = 1000,
  small_seed: int | None = None,
  download: bool = True,
  description: str | None = None,
) -> Dataset:
  """Any tfds image-classification dataset by name (``"kmnist"``, ``"cifar10"``, ...), prepared
  under ``--tfds_dir`` in array_record form and read without TensorFlow (``tfds.data_source``).

  ``splits`` maps our split names to tfds split strings: default train/test (Small cut from
  train); or e.g. ``{"big": "train[:50000]", "small": "train[50000:51000]", "test": "test"}``.
  ``image_key`` / ``label_key`` name the features. Preparing a dataset whose builder yields
  arrays (most do) needs TensorFlow installed once; reading a prepared one needs none. Offline,
  prepare it beforehand or pass ``download=False`` to fail at once if it is not."""
  wanted = dict(splits or TFDS_SPLITS)

  def load(context: DataContext):
    import tensorflow_datasets as tfds  # noqa: PLC0415

    try:
      sources = tfds.data_source(
        name,
        split=list(wanted.values()),
        data_dir=context.tfds_dir,
        download=download,
        builder_kwargs={"file_format": "array_record"},
      )
    except Exception as error:  # tfds raises many types: unknown name, not prepared, network
      raise DataError(
        f"tfds dataset {name!r} under {context.tfds_dir}: {type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else ''}; check the name "
        "(tfds.list_builders()), prepare it once online, or point --tfds_dir at a prepared copy"
      ) from None
    given = {}
    for split, source in zip(wanted, sources):
      records = [source[index] for index in range(len(source))]
      if not records:
        raise DataError(f"tfds dataset {name!r}: split {wanted[split]!r} is empty")
      for key in (image_key, label_key):
        if records and key not in records[0]:
          raise DataError(
            f"tfds dataset {name!r} has features {sorted(records[0])}, no {key!r}; pass "
            "image_key= / label_key="
          )
      given[split] = (
        np.stack([record[image_key] for record in records]),
        np.asarray([record[label_key] for record in records]),
      )
    return cut_small(given, small_size, small_seed)

  return Dataset(load=load, description=description or f"tfds:{name}")
