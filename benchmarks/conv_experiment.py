"""The conv experiment's teacher and students run through the library, for the benchmarks."""

from __future__ import annotations

from distill_jax import maps
from distill_jax import students as students_lib
from distill_jax import teacher as teacher_lib

PHI = maps.get_map("conv")


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
