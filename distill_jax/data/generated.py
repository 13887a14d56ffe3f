"""GeneratedMNIST: digits made from Fashion-MNIST by φ_vae, stored as a tfds dataset.

Two recipes fill it (``distill_jax/maps/vae.py`` runs them; this module stores and reads):

* **from Small** (the talk's experiment, ``--mapping=generated``): every image of
  FashionMNIST-Small is encoded, and ``samples_per_image`` independent draws
  z ~ q(z | x) are decoded by the MNIST decoder (``expand_small``): 1,000 × 70 = 70,000 digits,
  labelled with their garment's class, shuffled with a seed and split into train (Big 59,000 +
  Small 1,000) and test 10,000. The teacher learns from the 1,000 labelled garments only.
* **translate everything** (the ablation ``--mapping=generated_full``): φ_vae of all 70,000
  Fashion-MNIST images (train = Big + Small, and test), in Fashion's order and with its labels:
  the teacher learns from 59,000 labelled garments.

Each record holds the uint8 ``image`` (round(255 p) of the decoder's pixel probabilities, or
0 / 255 for Bernoulli pixels), the ``label``, and its provenance: ``source_index``, the garment it
was made from as an index into Fashion-MNIST's 70,000 images in file order (train 0-59,999, of
which Small is 59,000-59,999; test 60,000-69,999), and ``draw``, which of that garment's draws it
is. ``read_provenance`` reads the provenance back (what the tests check the recipe with).

The content depends on the trained VAE and the recipe, so each gets its own builder config
(``distill_generated_mnist/<name>``, ``name`` derived from the VAE's key and the recipe's
settings): the same settings read back the same dataset, and new ones never reuse a stale one.
The builder does not run φ itself: it is given ``generate``, a function returning the splits,
called only when the dataset is not prepared yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow_datasets as tfds

from distill_jax.data.builders import IMAGE_SHAPE, NUM_CLASSES
from distill_jax.data.errors import DataError
from distill_jax.data.tfds_io import decode_int_features, image_features

PIXELS = ("mean", "bernoulli")  # how a decoded digit becomes uint8 pixels
# The talk's GeneratedMNIST: Big 59,000 + Small 1,000 (= train 60,000) and test 10,000.
TALK_SPLIT = (59_000, 1_000, 10_000)


@dataclasses.dataclass(frozen=True)
class GeneratedSplit:
  """One split of GeneratedMNIST as stored: uint8 ``images`` (N, 28, 28, 1), ``labels`` (N,),
  ``source_index`` (N,): the garment each was made from (see the module docstring), ``draw``
  (N,): which of that garment's draws."""

  images: np.ndarray
  labels: np.ndarray
  source_index: np.ndarray
  draw: np.ndarray

  def __len__(self) -> int:
    return len(self.labels)


GeneratedSplits = dict[str, GeneratedSplit]  # "train" and "test"


def to_uint8(probabilities: np.ndarray) -> np.ndarray:
  """Pixel probabilities in [0, 1] → uint8 0..255 (round to nearest)."""
  probabilities = np.asarray(probabilities)
  if not np.all(np.isfinite(probabilities)):
    raise DataError("the translated images hold NaN or inf; the VAE checkpoint is broken.")
  return np.round(np.clip(probabilities, 0.0, 1.0) * 255.0).astype(np.uint8)


def expand_small(
  draw_digits: Callable[[int], np.ndarray],
  labels: np.ndarray,
  source_index: np.ndarray,
  *,
  samples_per_image: int,
  split: tuple[int, int, int],
  seed: int,
) -> GeneratedSplits:
  """The talk's GeneratedMNIST: ``samples_per_image`` digits per Small garment, split by a seed.

  Args:
    draw_digits: ``draw_digits(j)`` → uint8 digits (n, 28, 28, 1), draw j of every one of the
      n Small garments (independent across j and across garments: the caller folds j into its
      key).
    labels: (n,) the garments' classes; every digit made from garment i gets ``labels[i]``.
    source_index: (n,) the garments' indices in Fashion-MNIST (``GeneratedSplit.source_index``).
    samples_per_image: N, the draws per garment.
    split: (big, small, test) sizes; big + small + test must be n · N.
    seed: the shuffle before the split: ``np.random.default_rng(seed).permutation(n · N)``,
      whose first big + small positions are train (Big first, then Small) and the rest test.

  Returns:
    {"train": big + small digits, "test": test digits}, each in shuffled order.
  """
  labels, source_index = np.asarray(labels), np.asarray(source_index)
  count = len(labels)
  total = count * samples_per_image
  if sum(split) != total:
    raise DataError(
      f"GeneratedMNIST split {tuple(split)} holds {sum(split):,} images, but {count:,} Small "
      f"images × {samples_per_image} samples make {total:,}; the sizes must add up."
    )
  digits = np.empty((total, *IMAGE_SHAPE), np.uint8)
  for j in range(samples_per_image):  # draw-major: position j·n + i is draw j of garment i
    drawn = np.asarray(draw_digits(j))
    if drawn.shape != (count, *IMAGE_SHAPE) or drawn.dtype != np.uint8:
      raise DataError(
        f"draw_digits({j}) returned {drawn.dtype} {drawn.shape}; expected uint8 "
        f"{(count, *IMAGE_SHAPE)}."
      )
    digits[j * count : (j + 1) * count] = drawn
  order = np.random.default_rng(seed).permutation(total)
  num_train = split[0] + split[1]
  pick = {"train": order[:num_train], "test": order[num_train:]}
  return {
    name: GeneratedSplit(
      images=digits[positions],
      labels=labels[positions % count],
      source_index=source_index[positions % count],
      draw=positions // count,
    )
    for name, positions in pick.items()
  }


def features() -> tfds.features.FeaturesDict:
  """The records: a raw-bytes uint8 28×28×1 ``image``, ``label`` 0-9 and the provenance."""
  base = image_features(IMAGE_SHAPE, tfds.features.ClassLabel(num_classes=NUM_CLASSES))
  return tfds.features.FeaturesDict(
    {
      **base,
      "source_index": tfds.features.Scalar(dtype=np.int64),
      "draw": tfds.features.Scalar(dtype=np.int64),
    }
  )


class DistillGeneratedMnist(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Digits made from Fashion-MNIST by a trained φ_vae; one builder config per VAE and recipe."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {
    "1.0.0": "Initial release (all of Fashion-MNIST translated).",
    "2.0.0": "Records carry source_index and draw; the from-Small recipe of the talk.",
  }

  def __init__(
    self,
    *,
    config_name: str,
    generate: Callable[[], GeneratedSplits] | None = None,
    split_sizes: tuple[int, int, int] = TALK_SPLIT,
    description: str = "",
    **kwargs,
  ):
    """``config_name`` names the VAE and recipe; ``generate`` makes the splits (None: read a
    dataset prepared before, an error if there is none); ``split_sizes`` = (big, small, test)."""
    self._generate = generate
    self._split_sizes = tuple(int(size) for size in split_sizes)
    config = tfds.core.BuilderConfig(
      name=config_name, description=description or f"GeneratedMNIST {config_name}"
    )
    super().__init__(config=config, **kwargs)

  @property
  def tfds_splits(self) -> dict[str, str]:
    """Our split name → this dataset's tfds slice: Small is the last ``small`` of train."""
    big = self._split_sizes[0]
    return {"big": f"train[:{big}]", "small": f"train[{big}:]", "test": "test"}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      description=__doc__.split("\n\n")[0],
      features=features(),
      supervised_keys=("image", "label"),
      disable_shuffling=True,  # keep the generated order: big / small slices match
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    del dl_manager  # nothing to download: the data comes from `generate`
    if self._generate is None:
      raise DataError(
        f"GeneratedMNIST {self.builder_config.name!r} is not prepared in {self.data_dir}; "
        "run the generated experiment (python -m experiments.distill --mapping=generated), "
        "which trains the VAE and writes it."
      )
    splits = self._generate()
    big, small, test = self._split_sizes
    expected_sizes = {"train": big + small, "test": test}
    if set(splits) != set(expected_sizes):
      raise DataError(
        f"generate() returned splits {sorted(splits)}, expected {sorted(expected_sizes)}"
      )
    for split, generated in splits.items():
      expected = expected_sizes[split]
      images = generated.images
      if images.dtype != np.uint8 or images.shape != (expected, *IMAGE_SHAPE):
        raise DataError(
          f"GeneratedMNIST {split}: expected uint8 images of shape "
          f"{(expected, *IMAGE_SHAPE)}, got {images.dtype} {images.shape}."
        )
      for name in ("labels", "source_index", "draw"):
        if np.shape(getattr(generated, name)) != (expected,):
          raise DataError(
            f"GeneratedMNIST {split}: expected {expected} {name}, got "
            f"{np.shape(getattr(generated, name))}."
          )
    return {split: self._generate_examples(generated) for split, generated in splits.items()}

  def _generate_examples(self, generated: GeneratedSplit):
    for index in range(len(generated)):
      yield (
        index,
        {
          "image": generated.images[index],
          "label": int(generated.labels[index]),
          "source_index": int(generated.source_index[index]),
          "draw": int(generated.draw[index]),
        },
      )


def check_prepared_sizes(builder: DistillGeneratedMnist) -> None:
  """A dataset prepared before must have the split sizes asked for now."""
  big, small, test = builder._split_sizes
  found = {name: info.num_examples for name, info in builder.info.splits.items()}
  if found != {"train": big + small, "test": test}:
    raise DataError(
      f"GeneratedMNIST {builder.builder_config.name!r} in {builder.data_dir} has splits {found}, "
      f"but (big, small, test) = {(big, small, test)} was asked for; delete that folder to "
      "make it again."
    )


def read_provenance(builder: DistillGeneratedMnist, split: str) -> dict[str, np.ndarray]:
  """{"source_index", "draw", "label"}: int64 arrays of every record of our ``split``."""
  source = builder.as_data_source(
    split=builder.tfds_splits[split], deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES
  )
  records = source.__getitems__(range(len(source))) if len(source) else []
  return decode_int_features(records, ("source_index", "draw", "label"))
