"""The conv experiment's teacher and students run through the library, for the benchmarks."""

from __future__ import annotations

import os

import numpy as np

from distill_jax import maps
from distill_jax import students as students_lib
from distill_jax import teacher as teacher_lib
from distill_jax.data import read_idx_pair

PHI = maps.get_map("conv")


def load_fashion(data_dir):
  """Big / Small / Test as float32 NHWC in [0, 1], straight from the IDX files."""
  folder = os.path.join(data_dir, "fashion_mnist")
  train_x, train_y = read_idx_pair(
    os.path.join(folder, "train-images-idx3-ubyte.gz"),
    os.path.join(folder, "train-labels-idx1-ubyte.gz"),
  )
  test_x, test_y = read_idx_pair(
    os.path.join(folder, "t10k-images-idx3-ubyte.gz"),
    os.path.join(folder, "t10k-labels-idx1-ubyte.gz"),
  )
  as_float = lambda x: (x.astype(np.float32) / 255.0)[..., None]  # noqa: E731
  train_x, test_x = as_float(train_x), as_float(test_x)
  train_y, test_y = train_y.astype(np.int32), test_y.astype(np.int32)
  return {
    "big": (train_x[:59000], train_y[:59000]),
    "small": (train_x[59000:], train_y[59000:]),
    "test": (test_x, test_y),
  }


def fit_teacher(config, data, mesh, workdir, on_epoch=None) -> teacher_lib.TrainedTeacher:
  """The teacher on φ_conv(Big), scored on φ_conv(Test); checkpoints in ``workdir``."""
  return teacher_lib.fit_teacher(
    config,
    phi=PHI,
    phi_key=None,
    big=data["big"],
    test=data["test"],
    mesh=mesh,
    cache_dir=workdir,
    on_epoch=on_epoch,
  )


def fit_students(config, data, teacher, mesh, workdir, on_epoch=None, before_arm=None) -> dict:
  """``{arm: train.FitResult}`` for both arms (no_teacher, teacher_phi), all seeds of an arm in
  one vmapped program; ``before_arm(arm)`` is called before each arm starts."""
  results = {}
  for arm in students_lib.arms_for(PHI, data["small"][0].shape[1:]):
    if before_arm is not None:
      before_arm(arm)
    results[arm.name] = students_lib.fit_students(
      config,
      arm,
      phi=PHI,
      phi_key=None,
      teacher=teacher,
      small=data["small"],
      test=data["test"],
      mesh=mesh,
      workdir=workdir,
      on_epoch=on_epoch,
    ).result
  return results
