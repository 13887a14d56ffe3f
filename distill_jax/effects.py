"""What teaching does: each arm against ``no_teacher``, paired by student seed, with intervals in
which the teacher is the unit of replication.

For an arm with K teachers and S student seeds per teacher, the test metric of run (k, s) —
the mean over its last n evaluated epochs, ``n = config.effect_epochs`` (1: the final epoch)
— is paired with ``no_teacher``'s run of the same seed (same initialization, same batches):

    d_ks = m(arm, k, s) − m(no_teacher, s),      d_k = (1/S) Σ_s d_ks      (teacher k's gain)

The effect is the mean of the K teacher gains d_k with a 95% Student-t interval over the K
teachers (``scipy.stats.ttest_1samp(d_k, 0).confidence_interval``) and a one-sided p-value in
the direction the method claims (accuracy up: H1 mean > 0; cross-entropy down: H1 mean < 0).
Teachers are the units, so the teacher draw's variance is in the interval. With each teacher's
own student seeds (``student_seeds = "per_teacher"``, the default) the d_k are independent and
each carries its seeds' noise, so the interval covers teachers and student seeds; with seeds
shared by all teachers, the seeds' noise is common to every d_k and the interval misses it
(``unit`` says so). With one teacher the units are the S paired seed differences d_s, and the
interval says nothing about other teacher draws: ``unit`` says so too.

Why the last n epochs: a linear student's test accuracy moves ±0.002-0.003 from one epoch to
the next late in training, as large as the effect; averaging 10 epochs removes that noise
(measured: docs/parity.md; CHANGELOG.md, 2026-11-29).

Two teaching arms against each other (``contrast``; the talk's VAE slide compares the student
taught through φ with the one taught without it, ``teacher_phi`` against ``teacher``): both arms
train the same (teacher k, seed s) runs, each paired with the same ``no_teacher`` run, so the
difference of their teacher gains is their own paired difference,

    c_k = d_k(a) − d_k(b) = (1/S) Σ_s [m(a, k, s) − m(b, k, s)],

and the contrast is the mean of the K values c_k with the same t interval over teachers (over
the S seed differences with one teacher), computed from the effects' ``units``.

Verdict per metric: ``holds`` when the interval excludes 0 on the claimed side, ``fails`` when
it excludes 0 on the other side, ``inconclusive`` otherwise (or with fewer than two units).
"""

from __future__ import annotations

import numpy as np
import scipy.stats

# The direction the method claims for each final test metric (scipy's ``alternative``).
CLAIMED = {"test_accuracy": "greater", "test_cross_entropy": "less"}
CONFIDENCE = 0.95


def final_values(entry: dict, metric: str, last_epochs: int = 1) -> np.ndarray:
  """Per run of a ``results.json`` arm entry: the mean of ``metric`` over its last
  ``last_epochs`` epochs, skipping epochs that were not evaluated (null)."""
  out = []
  for row in entry[metric]:
    window = np.asarray([np.nan if v is None else v for v in row[-last_epochs:]], np.float64)
    out.append(np.nanmean(window) if np.isfinite(window).any() else np.nan)
  return np.asarray(out, np.float64)


def paired_differences(entry: dict, baseline: dict, metric: str, last_epochs: int = 1):
  """``d[k, j]``: teacher k's j-th run (its seeds in increasing order) minus ``no_teacher``'s
  run of the same seed; ``[K, S]``. Teachers in increasing order (so two arms of one
  experiment line up, whatever the order of their runs); every teacher needs the same number
  of runs, each seed a ``no_teacher`` run."""
  base = dict(zip(baseline["seeds"], final_values(baseline, metric, last_epochs)))
  values = final_values(entry, metric, last_epochs)
  teacher_of = entry.get("teachers", [0] * len(values))
  by_teacher: dict[int, list] = {}
  for value, teacher, seed in zip(values, teacher_of, entry["seeds"]):
    if seed not in base:
      raise ValueError(
        f"paired_differences: seed {seed} has no no_teacher run; every student seed needs one."
      )
    by_teacher.setdefault(teacher, []).append((seed, value - base[seed]))
  counts = {len(runs) for runs in by_teacher.values()}
  if len(counts) != 1:
    raise ValueError("paired_differences: every teacher needs the same number of student runs.")
  return np.asarray([[d for _, d in sorted(by_teacher[k])] for k in sorted(by_teacher)])


def seeds_shared(entry: dict) -> bool:
  """Whether all teachers of an arm entry taught the same student seeds (two or more)."""
  by_teacher: dict[int, set] = {}
  for teacher, seed in zip(entry.get("teachers", []), entry["seeds"]):
    by_teacher.setdefault(teacher, set()).add(seed)
  sets = list(by_teacher.values())
  return len(sets) >= 2 and all(s == sets[0] for s in sets)


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


def arm_effect(entry: dict, baseline: dict, last_epochs: int = 1) -> dict:
  """Per metric of ``CLAIMED``: the effect, its interval, p, verdict and per-teacher gains,
  each run's metric averaged over its last ``last_epochs`` epochs (all of them for shorter
  runs: the results then say how many)."""
  effect = {}
  if entry.get("teachers") and len(set(entry["teachers"])) >= 2:
    unit = "teacher"
    if seeds_shared(entry):
      unit += " (student seeds shared by all teachers: their noise is not covered)"
  else:
    unit = "student seed (one teacher: other draws not covered)"
  for metric, alternative in CLAIMED.items():
    window = min(last_epochs, len(entry[metric][0]))
    d = paired_differences(entry, baseline, metric, window)
    units = d.mean(axis=1) if d.shape[0] >= 2 else d[0]
    result = interval(units, alternative)
    result.update(
      unit=unit,
      units=[float(v) for v in units],
      last_epochs=window,
      claimed=alternative,
      verdict=verdict(result, alternative),
      per_teacher=[float(v) for v in d.mean(axis=1)],
      teachers=d.shape[0],
      seeds=d.shape[1],
    )
    effect[metric] = result
  return effect


def arm_scores(arms: dict, last_epochs: int = 1) -> dict:
  """Each arm's own test scores, averaged over its runs: ``{arm: {metric: {"last_epochs": the
  mean of each run's last ``last_epochs`` epochs, "final": the mean of the final epochs}}}``.
  With every run paired, an arm's ``last_epochs`` score minus ``no_teacher``'s is its effect."""
  return {
    label: {
      metric: {
        "last_epochs": float(np.mean([np.mean(run[-last_epochs:]) for run in entry[metric]])),
        "final": float(np.mean([run[-1] for run in entry[metric]])),
      }
      for metric in CLAIMED
    }
    for label, entry in arms.items()
  }


def effects(arms: dict, last_epochs: int = 1) -> dict:
  """``results.json``'s ``effects``: every arm entry but ``no_teacher`` against it, each run's
  metric averaged over its last ``last_epochs`` epochs."""
  baseline = arms.get("no_teacher")
  if baseline is None:
    return {}
  return {
    label: arm_effect(entry, baseline, last_epochs)
    for label, entry in arms.items()
    if label != "no_teacher"
  }


def _units(effect: dict) -> list:
  """The values an effect's interval is over (``units``; results written before it existed
  have ``per_teacher``, the same values when there are two teachers or more)."""
  if "units" in effect:
    return effect["units"]
  if effect["teachers"] >= 2:
    return effect["per_teacher"]
  raise ValueError(
    "contrast: this one-teacher effect has no 'units' (results written before they were "
    "recorded); rerun the experiment to compare its arms."
  )


def contrast(effect: dict, other: dict) -> dict:
  """Per metric of ``CLAIMED``: arm ``effect`` against arm ``other`` (both ``arm_effect``
  results of one experiment, against the same ``no_teacher``), as the module docstring
  describes; the same fields as ``arm_effect``."""
  out = {}
  for metric, alternative in CLAIMED.items():
    a, b = effect[metric], other[metric]
    if (a["teachers"], a["seeds"], a["unit"]) != (b["teachers"], b["seeds"], b["unit"]):
      raise ValueError(
        f"contrast: the arms were not trained on the same runs ({a['teachers']} × "
        f"{a['seeds']} against {b['teachers']} × {b['seeds']}); compare arms of one experiment."
      )
    units = np.asarray(_units(a), np.float64) - np.asarray(_units(b), np.float64)
    result = interval(units, alternative)
    result.update(
      unit=a["unit"],
      units=[float(v) for v in units],
      last_epochs=a["last_epochs"],
      claimed=alternative,
      verdict=verdict(result, alternative),
      per_teacher=[float(x - y) for x, y in zip(a["per_teacher"], b["per_teacher"])],
      teachers=a["teachers"],
      seeds=a["seeds"],
    )
    out[metric] = result
  return out


def without_phi(label: str) -> str | None:
  """The label of the arm taught without φ that matches ``label`` (``teacher_phi[lam=1,T=1]`` →
  ``teacher[lam=1,T=1]``), or None for an arm that is not taught through φ."""
  return "teacher" + label[len("teacher_phi") :] if label.startswith("teacher_phi") else None


def recorded(effect: dict) -> bool:
  """Whether ``contrast`` can use this effect: its units are recorded (results written before
  ``units`` existed have them only for two teachers or more)."""
  return all("units" in effect[m] or effect[m]["teachers"] >= 2 for m in CLAIMED)


def contrasts(arm_effects: dict, *, skip_unrecorded: bool = False) -> dict:
  """``results.json``'s ``contrasts``: each arm taught through φ against the arm with the same
  λ and T taught without φ, where the experiment has it (``"<a> vs <b>"``: ``contrast``).
  ``skip_unrecorded``: leave out pairs whose units older results did not record."""
  out = {}
  for label, effect in arm_effects.items():
    other = without_phi(label)
    if other in arm_effects:
      if skip_unrecorded and not (recorded(effect) and recorded(arm_effects[other])):
        continue
      out[f"{label} vs {other}"] = contrast(effect, arm_effects[other])
  return out
