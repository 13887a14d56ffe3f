"""tfds builders for MNIST and Fashion-MNIST that read the IDX files with `idx.py` (no TensorFlow).

They are named `distill_mnist` / `distill_fashion_mnist` because tfds already registers
`mnist` / `fashion_mnist`. Official download checksums live in `checksums.tsv` next to this
module, which tfds finds through `code_path`. `mnist_features` is the record layout of every
MNIST-family dataset (GeneratedMNIST's too), so that one loader reads them all.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds
from etils import epath

from distill_jax.data.idx import IMAGE_SIDE, NUM_CLASSES, read_idx_pair
from distill_jax.data.tfds_io import image_features, manual_folder

# Split name -> (images file, labels file), the official LeCun names.
IDX_FILES = {
  "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
  "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IDX_FILE_NAMES = tuple(name for pair in IDX_FILES.values() for name in pair)
IMAGE_SHAPE = (IMAGE_SIDE, IMAGE_SIDE, 1)  # as stored in the records: one channel


def mnist_features() -> tfds.features.FeaturesDict:
  """The records of every MNIST-family dataset: 28x28x1 uint8 image (raw bytes), label 0-9."""
  return image_features(IMAGE_SHAPE, tfds.features.ClassLabel(num_classes=NUM_CLASSES))


class IdxImageClassificationBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared builder: 28x28x1 uint8 images + labels 0-9 from four IDX .gz files, file order kept."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
    "Optional: put the four official IDX .gz files ("
    + ", ".join(IDX_FILE_NAMES)
    + ") in the manual folder; they are then read from there and nothing is downloaded."
  )
  BASE_URL: str = ""  # subclasses: folder URL that holds the four files
  DESCRIPTION: str = ""
  HOMEPAGE: str = ""

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      description=self.DESCRIPTION,
      features=mnist_features(),
      supervised_keys=("image", "label"),
      homepage=self.HOMEPAGE,
      disable_shuffling=True,  # keep the original file order
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    folder = manual_folder(dl_manager)
    if folder is not None:
      # Read the .gz files in place. Not `dl_manager.extract`: it extracts to
      # `extracted/GZIP.<file name>`, and MNIST and Fashion-MNIST share file names.
      paths = {name: folder / name for name in IDX_FILE_NAMES}
    else:
      paths = dl_manager.download({name: self.BASE_URL + name for name in IDX_FILE_NAMES})
    return {
      split: self._generate_examples(paths[images], paths[labels])
      for split, (images, labels) in IDX_FILES.items()
    }

  def _generate_examples(self, images_path: epath.Path, labels_path: epath.Path):
    images, labels = read_idx_pair(os.fspath(images_path), os.fspath(labels_path))
    for index, (image, label) in enumerate(zip(images, labels)):
      yield index, {"image": image[:, :, None], "label": int(label)}


class DistillMnist(IdxImageClassificationBuilder):
  """MNIST handwritten digits: 60,000 train + 10,000 test, original order."""

  BASE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
  HOMEPAGE = "http://yann.lecun.com/exdb/mnist/"
  DESCRIPTION = "MNIST digits (28x28 grayscale, 10 classes), read from the IDX files."


class DistillFashionMnist(IdxImageClassificationBuilder):
  """Fashion-MNIST (Zalando) clothing images: 60,000 train + 10,000 test, original order."""

  BASE_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
  HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
  DESCRIPTION = "Fashion-MNIST (28x28 grayscale, 10 classes), read from the IDX files."


BUILDERS = {"mnist": DistillMnist, "fashion_mnist": DistillFashionMnist}
