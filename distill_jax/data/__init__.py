"""Data layer: tfds builders and loaders for MNIST, Fashion-MNIST, GeneratedMNIST, Imagenette,
and a registry for a user's own datasets.

``load(name, ...)`` returns any dataset of ``dataset_names()`` as our splits (``SPLIT_NAMES``:
big / small / test) of float32 images in [0, 1] and int32 labels; ``image_shape(name)`` gives
a built-in one's (H, W, C). ``register_dataset(name, from_npz(...))`` (or ``from_arrays``,
``from_image_folder``, ``from_tfds``) adds one. Modules: ``loading`` (the entry points),
``registry`` (registered datasets and their checks), ``own`` (the ready-made ones),
``builders`` (MNIST, Fashion-MNIST), ``generated`` (GeneratedMNIST), ``imagenette``, ``idx``
(IDX files), ``splits`` (split names and seeded subsets), ``tfds_io`` (preparing and reading
tfds records), ``errors``.
"""

from distill_jax.data.builders import (
  DistillFashionMnist,
  DistillMnist,
  IdxImageClassificationBuilder,
)
from distill_jax.data.errors import DataError
from distill_jax.data.generated import (
  PIXELS,
  TALK_SPLIT,
  DistillGeneratedMnist,
  GeneratedSplit,
  expand_small,
  to_uint8,
)
from distill_jax.data.imagenette import (
  IMAGENETTE_SIZES,
  IMAGENETTE_SPLITS,
  WNIDS,
  DistillImagenette,
  list_imagenette_files,
  load_imagenette,
)
from distill_jax.data.own import from_arrays, from_image_folder, from_npz, from_tfds
from distill_jax.data.registry import DataContext, Dataset, check_loaded
from distill_jax.data.idx import read_idx_images, read_idx_labels, read_idx_pair
from distill_jax.data.loading import (
  DATA_DIR_ENV,
  DATASET_NAMES,
  GENERATED_MNIST,
  IDX_DATASETS,
  IDX_SPLIT_SIZES,
  IDX_SPLITS,
  IDX_TRAIN_SIZE,
  IMAGENETTE,
  check_small_pool,
  dataset_names,
  idx_split_sizes,
  idx_splits,
  image_shape,
  load,
  num_classes,
  register_dataset,
  generated_mnist_builder,
  generated_mnist_provenance,
  load_generated_mnist,
  load_splits,
  resolve_data_dir,
)
from distill_jax.data.splits import SPLIT_NAMES, Split, subset, subset_positions

__all__ = [
  "DATASET_NAMES",
  "DATA_DIR_ENV",
  "GENERATED_MNIST",
  "IDX_DATASETS",
  "IDX_SPLITS",
  "IDX_SPLIT_SIZES",
  "IDX_TRAIN_SIZE",
  "IMAGENETTE",
  "IMAGENETTE_SIZES",
  "IMAGENETTE_SPLITS",
  "PIXELS",
  "SPLIT_NAMES",
  "TALK_SPLIT",
  "Split",
  "DataContext",
  "DataError",
  "Dataset",
  "DistillFashionMnist",
  "DistillGeneratedMnist",
  "DistillImagenette",
  "DistillMnist",
  "GeneratedSplit",
  "IdxImageClassificationBuilder",
  "WNIDS",
  "check_loaded",
  "check_small_pool",
  "dataset_names",
  "expand_small",
  "from_arrays",
  "from_image_folder",
  "from_npz",
  "from_tfds",
  "generated_mnist_builder",
  "generated_mnist_provenance",
  "idx_split_sizes",
  "idx_splits",
  "image_shape",
  "list_imagenette_files",
  "load",
  "load_generated_mnist",
  "load_imagenette",
  "load_splits",
  "num_classes",
  "read_idx_images",
  "read_idx_labels",
  "read_idx_pair",
  "register_dataset",
  "resolve_data_dir",
  "subset",
  "subset_positions",
  "to_uint8",
]
