"""Effects: paired differences, t intervals and p-values against an independent computation."""

import numpy as np
import pytest
import scipy.stats

from distill_jax import effects


def _entry(finals, seeds, teachers=None):
  """A results.json arm entry whose runs end at ``finals`` (two epochs each)."""
  rows = [[0.0, float(v)] for v in finals]
  entry = {
    "seeds": list(seeds),
    "test_accuracy": rows,
    "test_cross_entropy": [[0.0, -float(v)] for v in finals],
  }
  if teachers is not None:
    entry["teachers"] = list(teachers)
  return entry


def _t_interval_by_hand(x, confidence=0.95):
  """mean ± t_{(1+c)/2, n−1} · sd / √n, and the one-sided p of H1: mean > 0."""
  x = np.asarray(x, np.float64)
  n, mean, sem = len(x), x.mean(), x.std(ddof=1) / np.sqrt(len(x))
  half = scipy.stats.t.ppf((1 + confidence) / 2, n - 1) * sem
  return mean - half, mean + half, scipy.stats.t.sf(mean / sem, n - 1)


def test_paired_differences_pair_by_seed_whatever_the_run_order():
  baseline = _entry([0.50, 0.60, 0.70], seeds=[0, 1, 2])
  # teacher 1's runs come first and seeds are shuffled: pairing must use the seed, not the row,
  # and the rows are the teachers in increasing order.
  arm = _entry(
    [0.71, 0.52, 0.63, 0.55, 0.74, 0.61], seeds=[2, 0, 1, 0, 2, 1], teachers=[1, 1, 1, 0, 0, 0]
  )
  d = effects.paired_differences(arm, baseline, "test_accuracy")
  np.testing.assert_allclose(d, [[0.05, 0.01, 0.04], [0.02, 0.03, 0.01]], atol=1e-12)
  with pytest.raises(ValueError, match="seed 7 has no no_teacher run"):
    effects.paired_differences(_entry([0.6], seeds=[7], teachers=[0]), baseline, "test_accuracy")
  uneven = _entry([0.6, 0.6, 0.6], seeds=[0, 1, 2], teachers=[0, 0, 1])
  with pytest.raises(ValueError, match="same number of student runs"):
    effects.paired_differences(uneven, baseline, "test_accuracy")


def test_paired_differences_with_each_teacher_its_own_seeds():
  """student_seeds = per_teacher: teacher k's runs pair with no_teacher's runs of its seeds."""
  baseline = _entry([0.50, 0.60, 0.70, 0.80], seeds=[3, 2, 1, 0])
  arm = _entry([0.81, 0.72, 0.63, 0.54], seeds=[0, 1, 2, 3], teachers=[0, 0, 1, 1])
  d = effects.paired_differences(arm, baseline, "test_accuracy")
  np.testing.assert_allclose(d, [[0.01, 0.02], [0.03, 0.04]], atol=1e-12)
  assert not effects.seeds_shared(arm)
  assert effects.arm_effect(arm, baseline)["test_accuracy"]["unit"] == "teacher"


def test_last_epochs_average_the_evaluated_epochs():
  entry = {"seeds": [0], "test_accuracy": [[0.1, 0.5, None, 0.7]]}
  assert effects.final_values(entry, "test_accuracy")[0] == pytest.approx(0.7)
  assert effects.final_values(entry, "test_accuracy", 3)[0] == pytest.approx(0.6)  # null skipped
  assert effects.final_values(entry, "test_accuracy", 10)[0] == pytest.approx(1.3 / 3)
  base = {"seeds": [0], "test_accuracy": [[0.0, 0.4, None, 0.4]], "test_cross_entropy": [[1.0]]}
  arm = {**entry, "teachers": [0], "test_cross_entropy": [[1.0]]}
  effect = effects.arm_effect(arm, base, last_epochs=3)["test_accuracy"]
  assert effect["mean"] == pytest.approx(0.2) and effect["last_epochs"] == 3
  # Runs shorter than the window: all their epochs, and the effect says how many.
  effect = effects.arm_effect(arm, base, last_epochs=10)
  assert effect["test_accuracy"]["last_epochs"] == 4
  assert effect["test_accuracy"]["mean"] == pytest.approx(1.3 / 3 - 0.8 / 3)
  assert effect["test_cross_entropy"]["last_epochs"] == 1


def test_interval_and_p_match_the_t_distribution():
  units = [0.012, -0.004, 0.009, 0.015, 0.003]
  low, high, p = _t_interval_by_hand(units)
  got = effects.interval(units, "greater")
  assert got["mean"] == pytest.approx(np.mean(units))
  assert got["low"] == pytest.approx(low) and got["high"] == pytest.approx(high)
  assert got["p"] == pytest.approx(p)
  less = effects.interval(units, "less")
  assert less["p"] == pytest.approx(1 - p)
  assert effects.interval([0.1], "greater")["low"] is None  # one unit: no interval


@pytest.mark.parametrize(
  "low,high,alternative,want",
  [
    (0.001, 0.01, "greater", "holds"),
    (-0.01, -0.001, "greater", "fails"),
    (-0.01, 0.01, "greater", "inconclusive"),
    (-0.05, -0.01, "less", "holds"),
    (0.01, 0.05, "less", "fails"),
    (None, None, "less", "inconclusive"),
  ],
)
def test_verdicts(low, high, alternative, want):
  assert effects.verdict({"low": low, "high": high}, alternative) == want


def test_arm_effect_uses_teachers_as_units():
  rng = np.random.default_rng(0)
  base = rng.normal(0.8, 0.01, size=4)
  gains = np.array([0.010, 0.002, 0.007])  # per teacher
  finals = [base[s] + gains[k] + rng.normal(0, 0.001) for k in range(3) for s in range(4)]
  arm = _entry(finals, seeds=[0, 1, 2, 3] * 3, teachers=[0] * 4 + [1] * 4 + [2] * 4)
  effect = effects.arm_effect(arm, _entry(base, seeds=[0, 1, 2, 3]))["test_accuracy"]
  d = np.asarray(finals).reshape(3, 4) - base
  low, high, p = _t_interval_by_hand(d.mean(axis=1))
  # The same 4 seeds under every teacher: the unit says their noise is not covered.
  assert effect["unit"].startswith("teacher (student seeds shared")
  assert effect["teachers"] == 3 and effect["seeds"] == 4
  assert (
    effect["n"] == 3 and effect["low"] == pytest.approx(low) and effect["p"] == pytest.approx(p)
  )
  np.testing.assert_allclose(effect["per_teacher"], d.mean(axis=1))


def test_one_teacher_falls_back_to_seeds_and_says_so():
  base = [0.80, 0.81, 0.79]
  arm = _entry([0.82, 0.82, 0.80], seeds=[0, 1, 2], teachers=[0, 0, 0])
  effect = effects.arm_effect(arm, _entry(base, seeds=[0, 1, 2]))
  assert effect["test_accuracy"]["unit"].startswith("student seed (one teacher")
  assert effect["test_accuracy"]["n"] == 3
  low, high, _ = _t_interval_by_hand([0.02, 0.01, 0.01])
  assert effect["test_accuracy"]["low"] == pytest.approx(low)
  assert effect["test_cross_entropy"]["claimed"] == "less"
  assert effects.effects({"teacher_phi": arm}) == {}  # no baseline: nothing to compare


def _two_arms(num_teachers, seeds_per_teacher, rng):
  """``no_teacher`` and two teaching arms on the same (teacher, seed) runs, each teacher its own
  seeds (per_teacher), the runs in a shuffled order in each arm."""
  seeds = np.arange(num_teachers * seeds_per_teacher)
  teacher_of = np.repeat(np.arange(num_teachers), seeds_per_teacher)
  base = rng.normal(0.8, 0.01, size=len(seeds))
  with_phi = base + rng.normal(0.01, 0.004, size=len(seeds))
  without = base + rng.normal(-0.05, 0.02, size=len(seeds))
  arms = {"no_teacher": _entry(base, seeds)}
  for label, values in (("teacher_phi", with_phi), ("teacher", without)):
    order = rng.permutation(len(seeds))
    arms[label] = _entry(values[order], seeds[order], teacher_of[order])
  return arms, with_phi - without, teacher_of


@pytest.mark.parametrize("num_teachers", [3, 1])
def test_contrast_is_the_paired_difference_of_the_two_arms(num_teachers):
  """teacher_phi against teacher: per teacher the mean over its seeds of the two arms' own
  differences (or, with one teacher, the seed differences), the t interval over those."""
  arms, run_differences, teacher_of = _two_arms(num_teachers, 4, np.random.default_rng(1))
  arm_effects = effects.effects(arms)
  (label,) = effects.contrasts(arm_effects)
  assert label == "teacher_phi vs teacher"
  got = effects.contrasts(arm_effects)[label]["test_accuracy"]
  units = (
    [run_differences[teacher_of == k].mean() for k in range(num_teachers)]
    if num_teachers > 1
    else run_differences
  )
  low, high, p = _t_interval_by_hand(units)
  assert got["mean"] == pytest.approx(np.mean(units))
  assert (got["low"], got["high"], got["p"]) == pytest.approx((low, high, p))
  assert got["verdict"] == "holds" and got["n"] == len(units)
  ce = effects.contrasts(arm_effects)[label]["test_cross_entropy"]  # _entry: CE = −accuracy
  assert ce["mean"] == pytest.approx(-np.mean(units)) and ce["verdict"] == "holds"


def test_contrast_refuses_arms_of_other_runs_and_unrecorded_one_teacher_effects():
  rng = np.random.default_rng(2)
  three = effects.effects(_two_arms(3, 2, rng)[0])
  two = effects.effects(_two_arms(2, 2, rng)[0])
  with pytest.raises(ValueError, match="not trained on the same runs"):
    effects.contrast(three["teacher_phi"], two["teacher"])
  one = effects.effects(_two_arms(1, 3, rng)[0])
  old = {
    label: {m: {k: v for k, v in e.items() if k != "units"} for m, e in effect.items()}
    for label, effect in one.items()
  }  # written before the units were recorded
  with pytest.raises(ValueError, match="rerun the experiment"):
    effects.contrasts(old)
  assert effects.contrasts(old, skip_unrecorded=True) == {}
  # with two teachers or more the per-teacher gains are the units: old results still work
  old_three = {
    label: {m: {k: v for k, v in e.items() if k != "units"} for m, e in effect.items()}
    for label, effect in three.items()
  }
  assert effects.contrasts(old_three) == effects.contrasts(three)


def test_contrasts_pair_grid_arms_by_their_settings():
  arms, _, _ = _two_arms(2, 2, np.random.default_rng(3))
  grid = {"no_teacher": arms["no_teacher"]}
  for setting in ("[lam=0.5,T=1]", "[lam=1,T=1]"):
    grid["teacher" + setting] = arms["teacher"]
    grid["teacher_phi" + setting] = arms["teacher_phi"]
  assert list(effects.contrasts(effects.effects(grid))) == [
    "teacher_phi[lam=0.5,T=1] vs teacher[lam=0.5,T=1]",
    "teacher_phi[lam=1,T=1] vs teacher[lam=1,T=1]",
  ]
  assert (
    effects.contrasts(effects.effects({k: arms[k] for k in ("no_teacher", "teacher_phi")})) == {}
  )
