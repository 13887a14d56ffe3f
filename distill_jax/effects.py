"""What teaching does: each arm against ``no_teacher``, paired by student seed, with intervals in
which the teacher is the unit of replication.

For an arm with K teachers and S student seeds, the final test metric of run (k, s) is paired
with ``no_teacher``'s run of the same seed s (same initialization, same batches):

    d_ks = m(arm, k, s) − m(no_teacher, s),      d_k = (1/S) Σ_s d_ks      (teacher k's gain)

The effect is the mean of the K teacher gains d_k with a 95% Student-t interval over the K
teachers (``scipy.stats.ttest_1samp(d_k, 0).confidence_interval``) and a one-sided p-value in
the direction the method claims (accuracy up: H1 mean > 0; cross-entropy down: H1 mean < 0).
Treating teachers, not runs, as the units keeps the teacher draw's variance in the interval
(student seeds only sharpen each d_k). With one teacher the units are the S paired seed
differences d_s, and the interval says nothing about other teacher draws: ``unit`` says so.

Verdict per metric: ``holds`` when the interval excludes 0 on the claimed side, ``fails`` when
it excludes 0 on the other side, ``inconclusive`` otherwise (or with fewer than two units).
"""

from __future__ import annotations

import numpy as np
import scipy.stats

# The direction the method claims for each final test metric (scipy's ``alternative``).
CLAIMED = {"test_accuracy": "greater", "test_cross_entropy": "less"}
CONFIDENCE = 0.95


def final_values(entry: dict, metric: str) -> np.ndarray:
  """The last epoch's ``metric`` of every run of a ``results.json`` arm entry."""
  return np.asarray([row[-1] for row in entry[metric]], np.float64)


def paired_differences(entry: dict, baseline: dict, metric: str) -> np.ndarray:
  """``d[k, s]``: run (teacher k, seed s) minus ``no_teacher``'s run of seed s; ``[K, S]``.

  Teachers in the order of their first run, seeds in ``baseline``'s order; every (k, s) must be
  present exactly once.
  """
  base = dict(zip(baseline["seeds"], final_values(baseline, metric)))
  values = final_values(entry, metric)
  teachers = list(dict.fromkeys(entry.get("teachers", [0] * len(values))))
  seeds = list(base)
  d = np.full((len(teachers), len(seeds)), np.nan)
  for value, teacher, seed in zip(values, entry.get("teachers", [0] * len(values)), entry["seeds"]):
    d[teachers.index(teacher), seeds.index(seed)] = value - base[seed]
  if np.isnan(d).any():
    raise ValueError("paired_differences: every teacher needs a run of every no_teacher seed.")
  return d


def interval(units: np.ndarray, alternative: str, confidence: float = CONFIDENCE) -> dict:
  """Mean of ``units`` with a two-sided t interval and a one-sided p-value (H1: ``alternative``
  of 0), from ``scipy.stats.ttest_1samp``; None for both with fewer than two units or no
  spread."""
  units = np.asarray(units, np.float64)
  out = {"mean": float(units.mean()), "n": int(units.size), "low": None, "high": None, "p": None}
  # Units that agree to float32 rounding carry no spread to estimate an interval from.
  if units.size >= 2 and np.ptp(units) > 1e-6:
    two_sided = scipy.stats.ttest_1samp(units, 0.0)
    low, high = two_sided.confidence_interval(confidence)
    one_sided = scipy.stats.ttest_1samp(units, 0.0, alternative=alternative)
    out.update(low=float(low), high=float(high), p=float(one_sided.pvalue))
  return out


def verdict(effect: dict, alternative: str) -> str:
  """``holds`` / ``fails`` / ``inconclusive`` for an ``interval`` and the claimed direction."""
  low, high = effect["low"], effect["high"]
  if low is None:
    return "inconclusive"
  claimed_side = low > 0 if alternative == "greater" else high < 0
  other_side = high < 0 if alternative == "greater" else low > 0
  return "holds" if claimed_side else "fails" if other_side else "inconclusive"


def arm_effect(entry: dict, baseline: dict) -> dict:
  """Per metric of ``CLAIMED``: the effect, its interval, p, verdict and per-teacher gains."""
  effect = {}
  for metric, alternative in CLAIMED.items():
    d = paired_differences(entry, baseline, metric)
    by_teacher = d.shape[0] >= 2
    units = d.mean(axis=1) if by_teacher else d[0]
    result = interval(units, alternative)
    result.update(
      unit="teacher" if by_teacher else "student seed (one teacher: other draws not covered)",
      claimed=alternative,
      verdict=verdict(result, alternative),
      per_teacher=[float(v) for v in d.mean(axis=1)],
      teachers=d.shape[0],
      seeds=d.shape[1],
    )
    effect[metric] = result
  return effect


def effects(arms: dict) -> dict:
  """``results.json``'s ``effects``: every arm entry but ``no_teacher`` against it."""
  baseline = arms.get("no_teacher")
  if baseline is None:
    return {}
  return {
    label: arm_effect(entry, baseline) for label, entry in arms.items() if label != "no_teacher"
  }
