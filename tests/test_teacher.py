"""Teacher ensembles: K teachers in one vmapped program, reused, resumed; students paired."""

import os

import numpy as np
import pytest

from distill_jax import maps
from distill_jax import parallel
from distill_jax import students
from distill_jax import teacher as teacher_lib
from experiments.configs import default


def _config(count, seed=0, epochs=2):
  config = default.get_config()
  config.mapping = "noise"  # stochastic: every teacher draws its own noise
  config.teacher.count, config.teacher.seed, config.teacher.epochs = count, seed, epochs
  config.teacher.hidden, config.teacher.batch_size = (16,), 32
  config.student.epochs, config.student.batch_size = 2, 32
  config.seeds, config.eval_batch_size, config.checkpoint_every = 2, 64, 1
  return config


def _data(n, seed):
  rng = np.random.default_rng(seed)
  return rng.random((n, 28, 28, 1), np.float32), rng.integers(0, 10, n).astype(np.int32)


BIG, TEST, SMALL = _data(256, 0), _data(128, 1), _data(64, 2)
PHI = maps.get_map("noise", variance=0.1)


def _fit(config, cache_dir, **kwargs):
  return teacher_lib.fit_teacher(
    config,
    phi=PHI,
    phi_key=None,
    big=BIG,
    test=TEST,
    mesh=parallel.make_mesh(),
    cache_dir=str(cache_dir),
    **kwargs,
  )


def test_k_vmapped_teachers_equal_k_teachers_trained_one_by_one(tmp_path):
  ensemble = _fit(_config(count=2), tmp_path / "ensemble")
  assert ensemble.count == 2 and ensemble.info["seeds"] == [0, 1]
  for k in range(2):
    alone = _fit(_config(count=1, seed=k), tmp_path / f"alone{k}")
    assert alone.info["seeds"] == [k]
    for got, want in zip(*(jax_leaves(t) for t in (ensemble.member(k), alone.member(0)))):
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # The noisy test set is drawn once from teacher.seed, so teacher 0 alone scores the same.
  alone = _fit(_config(count=1, seed=0), tmp_path / "alone0")
  np.testing.assert_allclose(
    ensemble.info["test_cross_entropy"][0], alone.info["test_cross_entropy"][0], rtol=1e-5
  )
  # Different seeds and noise draws: the two teachers differ.
  assert ensemble.info["test_cross_entropy"][0] != ensemble.info["test_cross_entropy"][1]
  logits = ensemble.logits(TEST[0], parallel.make_mesh())
  assert logits.shape == (128, 2, 10)


def jax_leaves(tree):
  import jax

  return [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]


def test_ensemble_is_reused_and_resumes_mid_way(tmp_path):
  reference = _fit(_config(count=2, epochs=3), tmp_path / "reference")

  class Interrupted(Exception):
    pass

  def crash_in_epoch_2(epoch, metrics):
    if epoch == 2:
      raise Interrupted

  with pytest.raises(Interrupted):
    _fit(_config(count=2, epochs=3), tmp_path / "run", on_epoch=crash_in_epoch_2)
  epochs_seen = []
  resumed = _fit(
    _config(count=2, epochs=3), tmp_path / "run", on_epoch=lambda e, m: epochs_seen.append(e)
  )
  assert epochs_seen == [2, 3]  # epoch 1 came from its checkpoint (epoch 2 crashed before its save)
  np.testing.assert_allclose(
    resumed.info["test_cross_entropy"], reference.info["test_cross_entropy"], rtol=1e-5
  )
  again = _fit(_config(count=2, epochs=3), tmp_path / "run")
  assert again.info["reused_checkpoint"] and again.key == resumed.key
  entries = [name for name in os.listdir(tmp_path / "run" / "teachers") if name != ".locks"]
  assert len(entries) == 1  # one unit for the ensemble


def test_students_pair_by_seed_across_arms_and_teachers(tmp_path):
  config = _config(count=2)
  config.lams = (0.0,)  # λ = 0: a taught run must then equal no_teacher's run of its seed
  trained = _fit(config, tmp_path)
  runs = {}
  for arm in students.arms_for(PHI, SMALL[0].shape[1:]):
    runs[arm.name] = students.fit_students(
      config,
      arm,
      phi=PHI,
      phi_key=None,
      teacher=trained,
      small=SMALL,
      test=TEST,
      mesh=parallel.make_mesh(),
      workdir=str(tmp_path),
    )
  base = runs["no_teacher"]
  base_seeds = [run.seed for run in base.grid]
  assert base_seeds == [0, 1, 2, 3]  # per_teacher seeds: teacher k teaches seeds 2k, 2k + 1
  for name in ("teacher", "teacher_phi"):
    taught = runs[name]
    assert [(run.teacher, run.seed) for run in taught.grid] == [(0, 0), (0, 1), (1, 2), (1, 3)]
    for row, run in enumerate(taught.grid):
      np.testing.assert_allclose(
        taught.result.history["test_cross_entropy"][row],
        base.result.history["test_cross_entropy"][base_seeds.index(run.seed)],
        rtol=1e-6,
      )


@pytest.mark.parametrize(
  "design,teacher_seeds,no_teacher_seeds",
  [
    ("per_teacher", [[5, 6], [7, 8], [9, 10]], [5, 6, 7, 8, 9, 10]),
    ("shared", [[5, 6]] * 3, [5, 6]),
  ],
)
def test_student_seed_designs(design, teacher_seeds, no_teacher_seeds):
  config = _config(count=3)
  config.seed_offset, config.student_seeds, config.lams = 5, design, (0.5, 1.0)
  taught_arm, alone_arm = students.Arm("teacher_phi", True, True), students.Arm("x", False, False)
  grid = students.run_grid(config, taught_arm, num_teachers=3)
  for k in range(3):
    for lam in (0.5, 1.0):
      assert [r.seed for r in grid if r.teacher == k and r.lam == lam] == teacher_seeds[k]
  assert [r.seed for r in students.run_grid(config, alone_arm, 3)] == no_teacher_seeds


def test_teacher_count_is_validated():
  from distill_jax import validation

  config = _config(count=0)
  with pytest.raises(ValueError, match="teacher.count must be an int >= 1"):
    validation.validate_config(config)
