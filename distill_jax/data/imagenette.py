"""Imagenette (fast.ai's 10-class ImageNet subset) as a tfds dataset at any square resolution.

Source layout (``imagenette2``): ``{train,val}/<wnid>/*.JPEG``, 10 ImageNet classes, 9,469 train
and 3,925 val images. Offline the folder is ``<data_dir>/imagenette/`` (the same convention as
MNIST: ``<data_dir>/<name>/``) and is read in place; online the official archive
``imagenette2.tgz`` is downloaded and extracted by tfds.

Preprocessing to an S×S uint8 RGB image, S = ``image_size`` (one builder config ``"{S}px"`` per
size, made on demand, so every size is prepared once and cached separately):

  1. decode the JPEG and convert it to RGB (grayscale and CMYK files exist in ImageNet);
  2. resize with PIL's bicubic filter (antialiased when shrinking) so the shorter side is S:
     (w, h) → (max(S, round(w S / min(w, h))), max(S, round(h S / min(w, h))));
  3. crop the centre S×S: offsets ⌊(w' − S) / 2⌋, ⌊(h' − S) / 2⌋.

Records follow the file order (sorted wnid, then sorted file name); label = index of the wnid
in the sorted list ``WNIDS``.

``load_imagenette`` returns our three splits, as ``load_splits`` does for MNIST:

  - ``test``  = the official ``val`` split (3,925);
  - ``small`` / ``big`` = a fixed seeded partition of ``train``: π = a permutation of
    {0, …, N_train − 1} from ``np.random.default_rng(split_seed)``; ``small`` = sorted(π[:n]),
    ``big`` = sorted(π[n:]), n = ``small_size`` (default 1,000 → big 8,469). Both are kept in
    file order, so the classes are mixed as in the source and the split only depends on
    (N_train, small_size, split_seed).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from collections.abc import Mapping

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from PIL import Image

from distill_jax.data.errors import DataError
from distill_jax.data.splits import check_max_sizes, check_splits, subset_positions
from distill_jax.data.tfds_io import (
  image_features,
  manual_folder,
  prepare,
  read_split,
)

URL = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2.tgz"  # size, sha256: checksums.tsv
ARCHIVE_FOLDER = "imagenette2"  # what the archive extracts to
DATASET_FOLDER = "imagenette"  # what `load_imagenette` expects under `data_dir`
SOURCE_SPLITS = ("train", "val")
# The 10 ImageNet synsets of Imagenette, sorted: label r is WNIDS[r].
WNIDS = (
  "n01440764",
  "n02102040",
  "n02979186",
  "n03000684",
  "n03028079",
  "n03394916",
  "n03417042",
  "n03425413",
  "n03445777",
  "n03888257",
)
CLASS_NAMES = (
  "tench",
  "English springer",
  "cassette player",
  "chain saw",
  "church",
  "French horn",
  "garbage truck",
  "gas pump",
  "golf ball",
  "parachute",
)
JPEG_SUFFIXES = (".jpeg", ".jpg")
MIN_IMAGE_SIZE = 8
# Our split name -> tfds split of the prepared dataset (big / small: see split_train_indices).
IMAGENETTE_SPLITS = {"big": "train", "small": "train", "test": "val"}
# The official imagenette2 sizes (train / val), what config validation plans with.
IMAGENETTE_SIZES = {"train": 9_469, "val": 3_925}
FIX_HINT = (
  "point --data_dir / DISTILL_DATA_DIR at a folder holding imagenette/{train,val}/<wnid>/*.JPEG "
  f"(extract {URL} and rename imagenette2 to imagenette), or pass data_dir=None to download it"
)
# Images decoded per batch of worker tasks (bounds the memory held while writing).
_DECODE_CHUNK = 256

# split -> [(JPEG path, label)], in record order.
FileList = dict[str, list[tuple[str, int]]]


def list_imagenette_files(folder: str | os.PathLike) -> FileList:
  """Lists ``{train,val}/<wnid>/*.JPEG`` under ``folder`` in record order, checking the layout.

  Returns {"train": [(path, label), ...], "val": [...]}, sorted by wnid then file name, with
  label = index of the wnid in ``WNIDS``. Only lists directory entries (no image is opened).
  Raises DataError (naming the path) if ``folder``, ``train`` or ``val`` is missing, if a split
  does not hold exactly the 10 Imagenette class folders, or if a class folder has no JPEG.
  """
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise DataError(f"{folder}: Imagenette folder is missing; {FIX_HINT}")
  files: FileList = {}
  for split in SOURCE_SPLITS:
    split_folder = os.path.join(folder, split)
    if not os.path.isdir(split_folder):
      raise DataError(f"{split_folder}: the {split!r} folder is missing; {FIX_HINT}")
    with os.scandir(split_folder) as entries:
      class_folders = sorted(e.name for e in entries if e.is_dir() and not e.name.startswith("."))
    if len(class_folders) != len(WNIDS):
      raise DataError(
        f"{split_folder}: expected {len(WNIDS)} class folders (one per wnid), found "
        f"{len(class_folders)}; {FIX_HINT}"
      )
    unknown = sorted(set(class_folders) - set(WNIDS))
    if unknown:
      raise DataError(
        f"{split_folder}: class folders {unknown} are not Imagenette wnids (expected "
        f"{', '.join(WNIDS)}); {FIX_HINT}"
      )
    split_files = []
    for label, wnid in enumerate(WNIDS):
      class_folder = os.path.join(split_folder, wnid)
      with os.scandir(class_folder) as entries:
        names = sorted(
          e.name for e in entries if e.is_file() and e.name.lower().endswith(JPEG_SUFFIXES)
        )
      if not names:
        raise DataError(f"{class_folder}: class folder holds no .JPEG file; {FIX_HINT}")
      split_files.extend((os.path.join(class_folder, name), label) for name in names)
    files[split] = split_files
  return files


def resize_and_crop(image: Image.Image, image_size: int) -> np.ndarray:
  """RGB, shorter side → ``image_size`` (bicubic, antialiased), centre crop: uint8 (S, S, 3)."""
  image = image.convert("RGB")  # no-op copy for RGB; grayscale / CMYK / palette → RGB
  width, height = image.size
  scale = image_size / min(width, height)
  new_size = (max(image_size, round(width * scale)), max(image_size, round(height * scale)))
  if new_size != image.size:
    image = image.resize(new_size, resample=Image.Resampling.BICUBIC)
  left = (new_size[0] - image_size) // 2
  top = (new_size[1] - image_size) // 2
  image = image.crop((left, top, left + image_size, top + image_size))
  return np.asarray(image, dtype=np.uint8)


def load_jpeg(path: str, image_size: int) -> np.ndarray:
  """Decodes one JPEG and preprocesses it (``resize_and_crop``); DataError naming a bad file."""
  try:
    with Image.open(path) as image:
      image.load()
      return resize_and_crop(image, image_size)
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
    raise DataError(
      f"{path}: cannot decode this image ({error}); delete or re-download the file, or "
      f"re-extract {URL}"
    ) from error


def check_image_size(image_size) -> int:
  """``image_size`` as an int ≥ 8, or DataError."""
  if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)):
    raise DataError(
      f"image_size must be an int (pixels per side), got {image_size!r}; pass e.g. 64"
    )
  if image_size < MIN_IMAGE_SIZE:
    raise DataError(
      f"image_size={image_size} is too small; use an int >= {MIN_IMAGE_SIZE} (e.g. 32, 64, 224)"
    )
  return int(image_size)


@dataclasses.dataclass(eq=False)
class ImagenetteConfig(tfds.core.BuilderConfig):
  """Builder config for one resolution: images are ``image_size`` × ``image_size`` × 3."""

  image_size: int = 0


class DistillImagenette(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Imagenette at S×S px: ``train`` 9,469 and ``val`` 3,925 uint8 RGB images, file order."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BASE_URL = URL  # where it downloads from (``tfds_io.check_reachable``)
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    f"Optional: extract {URL} and put its train/ and val/ folders (or the imagenette2/ folder) "
    "in the manual folder; they are then read in place and nothing is downloaded."
  )

  def __init__(self, *, image_size: int = 224, **kwargs):
    """``image_size`` S selects (or makes) the builder config ``"{S}px"``."""
    image_size = check_image_size(image_size)
    config = ImagenetteConfig(
      name=f"{image_size}px",
      image_size=image_size,
      description=f"Shorter side resized to {image_size} (bicubic), centre crop.",
    )
    super().__init__(config=config, **kwargs)

  @property
  def image_size(self) -> int:
    return self.builder_config.image_size

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.image_size
    return self.dataset_info_from_configs(
      description=__doc__.split("\n\n")[0],
      features=image_features((size, size, 3), tfds.features.ClassLabel(names=list(WNIDS))),
      supervised_keys=("image", "label"),
      homepage="https://github.com/fastai/imagenette",
      disable_shuffling=True,  # keep the file order: big / small indices refer to it
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    folder = manual_folder(dl_manager)
    if folder is None:
      folder = dl_manager.download_and_extract(URL) / ARCHIVE_FOLDER
    elif not (folder / "train").is_dir() and (folder / ARCHIVE_FOLDER).is_dir():
      folder = folder / ARCHIVE_FOLDER
    files = list_imagenette_files(folder)
    return {split: self._generate_examples(split, files[split]) for split in SOURCE_SPLITS}

  def _generate_examples(self, split: str, files: list[tuple[str, int]]):
    size = self.image_size
    logging.info("Imagenette %dpx: preparing %d %s images.", size, len(files), split)
    workers = min(8, os.cpu_count() or 1)  # PIL releases the GIL while decoding and resizing
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
      for start in range(0, len(files), _DECODE_CHUNK):
        chunk = files[start : start + _DECODE_CHUNK]
        images = pool.map(load_jpeg, [path for path, _ in chunk], [size] * len(chunk))
        for offset, (image, (_, label)) in enumerate(zip(images, chunk)):
          yield start + offset, {"image": image, "label": label}
    logging.info("Imagenette %dpx: %d %s images done.", size, len(files), split)


def load_imagenette(
  *,
  data_dir: str | None,
  tfds_dir: str,
  image_size: int,
  splits=("big", "small", "test"),
  small_size: int = 1000,
  split_seed: int = 0,
  max_sizes: Mapping[str, int | None] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Returns {split: (images float32 (N, S, S, 3) in [0, 1], labels int32 (N,))}, S = image_size.

  ``data_dir`` is a root holding ``imagenette/{train,val}/<wnid>/*.JPEG``; its layout is checked
  before tfds is touched and the JPEGs are read in place (no network). With ``data_dir=None``
  tfds downloads the official archive. The prepared dataset (one per ``image_size``) is written
  once under ``tfds_dir`` and reused by later calls.

  Splits: ``test`` = official val; ``small`` = sorted first ``small_size`` entries of a
  permutation of the train indices drawn by ``np.random.default_rng(split_seed)``, ``big`` =
  the sorted rest (see the module docstring).

  ``max_sizes`` ({split: N or None}) keeps only a seeded N of a split's images
  (``subset_positions(len(split), N)``, in order), and only those are decoded: at 224 px
  that saves gigabytes of float32 for quick looks.
  """
  image_size = check_image_size(image_size)
  splits = check_splits(splits)
  if isinstance(small_size, bool) or not isinstance(small_size, (int, np.integer)):
    raise DataError(f"small_size must be an int, got {small_size!r}; pass e.g. 1000")
  if small_size < 1:
    raise DataError(f"small_size={small_size} must be >= 1; pass e.g. 1000")
  limits = check_max_sizes(max_sizes, splits)

  manual_dir = None
  if data_dir is not None:
    manual_dir = os.path.join(data_dir, DATASET_FOLDER)
    list_imagenette_files(manual_dir)  # fail fast: tfds would otherwise try the network
  builder = prepare(  # read back when already prepared
    lambda: DistillImagenette(image_size=image_size, data_dir=tfds_dir),
    tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False),
  )
  indices = _record_indices(builder, splits, small_size, split_seed, limits)
  shape = (image_size, image_size, 3)
  return {
    split: read_split(builder, IMAGENETTE_SPLITS[split], shape, indices[split]) for split in splits
  }


def _record_indices(
  builder: DistillImagenette,
  splits: tuple[str, ...],
  small_size: int,
  split_seed: int,
  limits: Mapping[str, int | None],
) -> dict[str, np.ndarray | None]:
  """{split: the records of its tfds split to read (None: all of them)}, ``max_sizes`` applied."""
  indices = {"test": None}
  if {"big", "small"} & set(splits):
    num_train = builder.info.splits["train"].num_examples
    if small_size >= num_train:
      raise DataError(
        f"small_size={small_size} leaves no Big images out of {num_train} train images; "
        f"pass a smaller small_size"
      )
    indices["small"], indices["big"] = split_train_indices(num_train, small_size, split_seed)
  for split in splits:
    if limits[split] is None:
      continue
    count = builder.info.splits[IMAGENETTE_SPLITS[split]].num_examples
    all_indices = np.arange(count) if indices[split] is None else indices[split]
    chosen = subset_positions(len(all_indices), limits[split])
    if chosen is not None:
      indices[split] = all_indices[chosen]
  return indices


def split_train_indices(
  num_train: int, small_size: int, split_seed: int
) -> tuple[np.ndarray, np.ndarray]:
  """(small, big) train indices: a seeded permutation's first ``small_size`` / the rest, sorted."""
  permutation = np.random.default_rng(split_seed).permutation(num_train)
  return np.sort(permutation[:small_size]), np.sort(permutation[small_size:])
