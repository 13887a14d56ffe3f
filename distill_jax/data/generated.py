"""GeneratedMNIST: Fashion-MNIST translated into digits by φ_vae, stored as a tfds dataset.

70,000 images in Fashion-MNIST's order and labels (garment class r → digit r): ``train``
60,000 (``big`` = the first 59,000, ``small`` = the last 1,000, as for the real datasets) and
``test`` 10,000. Pixels are φ_vae's Bernoulli means quantized to uint8 (round(255 p)), so the
records match the real datasets' and ``load_splits``'s decoding applies unchanged.

The content depends on the trained VAE, so each VAE checkpoint gets its own builder config
(``distill_generated_mnist/<name>``, ``name`` derived from the checkpoint's key and φ's mode):
the same checkpoint always reads back the same dataset, and a new VAE never reuses a stale one.
The builder does not run φ itself: it is given ``translate``, a function returning the
translated splits, called only when the dataset is not prepared yet.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow_datasets as tfds

from distill_jax.data.builders import mnist_features
from distill_jax.data.errors import DataError
from distill_jax.data.idx import IMAGE_SIDE

# split -> (uint8 images (N, 28, 28, 1), int labels (N,))
TranslatedSplits = dict[str, tuple[np.ndarray, np.ndarray]]
SPLIT_SIZES = {"train": 60_000, "test": 10_000}


def to_uint8(probabilities: np.ndarray) -> np.ndarray:
  """Pixel probabilities in [0, 1] → uint8 0..255 (round to nearest)."""
  probabilities = np.asarray(probabilities)
  if not np.all(np.isfinite(probabilities)):
    raise DataError("the translated images hold NaN or inf; the VAE checkpoint is broken.")
  return np.round(np.clip(probabilities, 0.0, 1.0) * 255.0).astype(np.uint8)


class DistillGeneratedMnist(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Digits made from Fashion-MNIST by a trained φ_vae; one builder config per VAE."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def __init__(
    self,
    *,
    config_name: str,
    translate: Callable[[], TranslatedSplits] | None = None,
    **kwargs,
  ):
    """``config_name`` names the VAE (e.g. its checkpoint key); ``translate`` makes the splits.

    ``translate`` may be None to read a dataset prepared before (an error if there is none).
    """
    self._translate = translate
    config = tfds.core.BuilderConfig(
      name=config_name, description="Fashion-MNIST translated by the VAE named " + config_name
    )
    super().__init__(config=config, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      description=__doc__.split("\n\n")[0],
      features=mnist_features(),
      supervised_keys=("image", "label"),
      disable_shuffling=True,  # keep Fashion-MNIST's order: big / small slices match
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # nothing to download: the data comes from `translate`
    if self._translate is None:
      raise DataError(
        f"GeneratedMNIST {self.builder_config.name!r} is not prepared in {self.data_dir}; "
        "run the generated experiment (python -m experiments.distill --mapping=generated), "
        "which trains the VAE and writes it."
      )
    splits = self._translate()
    if set(splits) != set(SPLIT_SIZES):
      raise DataError(
        f"translate() returned splits {sorted(splits)}, expected {sorted(SPLIT_SIZES)}"
      )
    for split, (images, labels) in splits.items():
      expected = SPLIT_SIZES[split]
      if images.dtype != np.uint8 or images.shape != (expected, IMAGE_SIDE, IMAGE_SIDE, 1):
        raise DataError(
          f"GeneratedMNIST {split}: expected uint8 images of shape "
          f"({expected}, {IMAGE_SIDE}, {IMAGE_SIDE}, 1), got {images.dtype} {images.shape}."
        )
      if labels.shape != (expected,):
        raise DataError(f"GeneratedMNIST {split}: expected {expected} labels, got {labels.shape}.")
    return {split: self._generate_examples(*arrays) for split, arrays in splits.items()}

  def _generate_examples(self, images: np.ndarray, labels: np.ndarray):
    for index, (image, label) in enumerate(zip(images, labels)):
      yield index, {"image": image, "label": int(label)}
