"""Data layer: tfds builders and loaders for MNIST, Fashion-MNIST, GeneratedMNIST, Imagenette."""

from distill_jax.data.builders import (
  DistillFashionMnist,
  DistillMnist,
  IdxImageClassificationBuilder,
)
from distill_jax.data.errors import DataError
from distill_jax.data.generated import DistillGeneratedMnist, to_uint8
from distill_jax.data.imagenette import (
  WNIDS,
  DistillImagenette,
  list_imagenette_files,
  load_imagenette,
)
from distill_jax.data.idx import read_idx_images, read_idx_labels, read_idx_pair
from distill_jax.data.loading import (
  DATA_DIR_ENV,
  DATASETS,
  SPLITS,
  load_generated_mnist,
  load_splits,
  resolve_data_dir,
  subset_positions,
)

__all__ = [
  "DATASETS",
  "DATA_DIR_ENV",
  "SPLITS",
  "DataError",
  "DistillFashionMnist",
  "DistillGeneratedMnist",
  "DistillImagenette",
  "DistillMnist",
  "IdxImageClassificationBuilder",
  "WNIDS",
  "list_imagenette_files",
  "load_generated_mnist",
  "load_imagenette",
  "load_splits",
  "read_idx_images",
  "read_idx_labels",
  "read_idx_pair",
  "resolve_data_dir",
  "subset_positions",
  "to_uint8",
]
