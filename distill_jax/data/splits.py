"""Our split names (``big`` / ``small`` / ``test``), their checks, and seeded subsets of a split.

Every dataset is read as three splits: ``big`` (the source domain's training set), ``small``
(the target domain's few labelled examples) and ``test``. Each loader maps them to the tfds
splits of its dataset (``loading.IDX_SPLITS``, ``imagenette.IMAGENETTE_SPLITS``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

import numpy as np

from distill_jax.data.errors import DataError

SPLIT_NAMES = ("big", "small", "test")


class Split(NamedTuple):
  """One split of a dataset: float32 ``images`` [N, H, W, C] in [0, 1], int32 ``labels`` [N]."""

  images: np.ndarray
  labels: np.ndarray


def check_splits(splits: str | Iterable[str]) -> tuple[str, ...]:
  """``splits`` (one name or several) as a tuple of names from ``SPLIT_NAMES``, or DataError."""
  splits = (splits,) if isinstance(splits, str) else tuple(splits)
  for split in splits:
    if split not in SPLIT_NAMES:
      raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLIT_NAMES)}")
  return splits


def check_max_sizes(
  max_sizes: Mapping[str, int | None] | None, splits: Iterable[str]
) -> dict[str, int | None]:
  """{split: N or None} for each of ``splits`` (None: the whole split), each N an int >= 1."""
  max_sizes = dict(max_sizes or {})
  limits = {}
  for split in splits:
    limit = max_sizes.get(split)
    if limit is not None and (
      isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1
    ):
      raise DataError(f"max_sizes[{split!r}] must be an int >= 1 or None, got {limit!r}")
    limits[split] = None if limit is None else int(limit)
  return limits


def subset_positions(count: int, size: int | None, seed: int = 0) -> np.ndarray | None:
  """Positions of a seeded ``size``-subset of ``count`` examples, sorted (original order), or
  None for all of them (``size`` None or not smaller than ``count``)."""
  if size is None or size >= count:
    return None
  return np.sort(np.random.default_rng(seed).permutation(count)[:size])


def subset(split: tuple[np.ndarray, np.ndarray], size: int | None, seed: int = 0) -> Split:
  """The ``subset_positions`` pick of (images, labels); the very same arrays when it is all."""
  images, labels = split
  chosen = subset_positions(len(labels), size, seed)
  return Split(images, labels) if chosen is None else Split(images[chosen], labels[chosen])
