"""Data layer: IDX reading, tfds builders for MNIST / Fashion-MNIST, and `load_splits`."""

from distill_jax.data.builders import (
  DistillFashionMnist,
  DistillMnist,
  IdxImageClassificationBuilder,
)
from distill_jax.data.errors import DataError
from distill_jax.data.idx import read_idx_images, read_idx_labels, read_idx_pair
from distill_jax.data.loading import (
  DATA_DIR_ENV,
  DATASETS,
  SPLITS,
  load_splits,
  resolve_data_dir,
)

__all__ = [
  "DATASETS",
  "DATA_DIR_ENV",
  "SPLITS",
  "DataError",
  "DistillFashionMnist",
  "DistillMnist",
  "IdxImageClassificationBuilder",
  "load_splits",
  "read_idx_images",
  "read_idx_labels",
  "read_idx_pair",
  "resolve_data_dir",
]
