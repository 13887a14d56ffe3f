"""Results of an experiment: ``results.json``, ``results.md`` (a table) and the curves.

Per arm (and per λ, T when a grid is run) the JSON holds every seed's per-epoch
``test_accuracy`` and ``test_cross_entropy`` and the final-epoch mean and standard deviation over
seeds. Figures show the mean over seeds per epoch with a ±1 std band. Epochs that were not
evaluated (``eval_every`` > 1) are ``null`` in the JSON and skipped in the figures.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from distill_jax import figures
from distill_jax import files
from distill_jax import parallel
from distill_jax import summaries

CURVES = ("test_accuracy", "test_cross_entropy")


# A run whose final test cross-entropy exceeds this many times ln C (what predicting every
# class as equally likely scores) has diverged: flagged in the log, results.json and results.md.
DIVERGENCE_FACTOR = 10.0


def history_to_json(values: np.ndarray) -> list:
  """``[R, epochs]`` history as JSON lists; epochs not evaluated (NaN) become null (as would a
  non-finite value, which the NaN guard of ``train.fit`` stops before)."""
  return [[float(v) if np.isfinite(v) else None for v in row] for row in values]


def finite_for_json(tree: Any, path: str = "") -> tuple[Any, list[str]]:
  """``tree`` with every non-finite float replaced by None (strict JSON has no NaN or Infinity
  literals), and the paths replaced (e.g. ``arms/no_teacher/final/test_cross_entropy/std``)."""
  if isinstance(tree, dict):
    items = [
      finite_for_json(value, f"{path}/{key}" if path else str(key)) for key, value in tree.items()
    ]
    return dict(zip(tree, (value for value, _ in items))), [p for _, ps in items for p in ps]
  if isinstance(tree, (list, tuple)):
    items = [finite_for_json(value, f"{path}[{i}]") for i, value in enumerate(tree)]
    return [value for value, _ in items], [p for _, ps in items for p in ps]
  if isinstance(tree, (float, np.floating)) and not np.isfinite(tree):
    return None, [path]
  return tree, []


def diverged_runs(arms: dict, num_classes: int) -> list[dict]:
  """Per arm entry with diverged runs: its label, how many of its runs end with a test
  cross-entropy above ``DIVERGENCE_FACTOR`` × ln C, and the worst value."""
  limit = DIVERGENCE_FACTOR * math.log(num_classes)
  found = []
  for label, entry in arms.items():
    finals = [row[-1] for row in entry["test_cross_entropy"]]
    over = [v for v in finals if v is None or v > limit]
    if over:
      worst = max((v for v in over if v is not None), default=float("nan"))
      found.append(
        {"label": label, "runs": len(over), "of": len(finals), "worst": worst, "limit": limit}
      )
  return found


def diverged_text(item: dict) -> str:
  return (
    f"{item['label']}: {item['runs']} of {item['of']} runs end with a test cross-entropy above "
    f"{DIVERGENCE_FACTOR:g}·ln C = {item['limit']:.1f} (worst {item['worst']:.3g}): they "
    "diverged; lower the learning rate (or λ, T)"
  )


def group_runs(arm: str, grid: list, history: dict[str, np.ndarray], seconds: float) -> dict:
  """Splits one arm's runs (``students.Run``: λ, T, seed, teacher) into entries per (λ, T),
  keyed by a label; each entry keeps every run's seed and teacher (for the paired effects)."""
  settings = sorted({(run.lam, run.temperature) for run in grid})
  groups = {}
  for lam, temperature in settings:
    rows = [i for i, run in enumerate(grid) if (run.lam, run.temperature) == (lam, temperature)]
    label = summaries.run_label(arm, lam, temperature, grid=len(settings) > 1)
    entry = {
      "arm": arm,
      "lam": float(lam),
      "temperature": float(temperature),
      "seeds": [int(grid[i].seed) for i in rows],
      "teachers": [int(grid[i].teacher) for i in rows],
      "train_seconds": seconds,
      "final": {},
    }
    for metric in ("train_loss", *CURVES):
      values = np.asarray(history[metric])[rows]
      entry[metric] = history_to_json(values)
      final = values[:, -1].astype(np.float64)  # no float32 overflow in the std of huge losses
      entry["final"][metric] = {"mean": float(final.mean()), "std": float(final.std())}
    groups[label] = entry
  return groups


def _dataset_lines(datasets: dict) -> list[str]:
  """One line naming a user's registered source / target set (nothing for built-in ones)."""
  named = [
    f"{role} {facts['name']} ({facts['description']}; {facts['num_classes']} classes, images "
    f"{'×'.join(map(str, facts['image_shape']))})"
    for role, facts in datasets.items()
    if facts.get("registered")
  ]
  return [f"Registered datasets: {'; '.join(named)}.", ""] if named else []


def _teacher_lines(teacher: dict, phi: dict) -> list[str]:
  """The teachers' scores (mean ± std over the K teachers), and the VAE's −ELBO if any."""
  count = len(teacher.get("seeds", [0]))
  lines = [
    f"Teachers: {count} × {teacher['model']} trained on {teacher['trained_on']}; on "
    f"{teacher['evaluated_on']} ({teacher['num_test']} images): accuracy "
    f"{teacher['test_accuracy_mean']:.4f} ± {teacher['test_accuracy_std']:.4f}, cross-entropy "
    f"{teacher['test_cross_entropy_mean']:.4f} ± {teacher['test_cross_entropy_std']:.4f}.",
    "",
  ]
  same_scores = phi.get("phi_target_test_size") == teacher.get("num_test") and np.allclose(
    phi.get("teacher_on_phi_target_test_accuracy", np.nan), teacher.get("test_accuracy", np.nan)
  )
  if same_scores:  # source and target test are one set (identity, noise's draw aside, conv)
    lines += [
      "φ keeps the class: the teachers score the same on φ(target test), with the target "
      "labels, as on the source test above.",
      "",
    ]
  elif "teacher_on_phi_target_test_accuracy_mean" in phi:
    lines += [
      f"φ keeps the class: the teachers on φ(target test) ({phi['phi_target_test_size']} "
      "images), scored with the target labels: accuracy "
      f"{phi['teacher_on_phi_target_test_accuracy_mean']:.4f} ± "
      f"{phi['teacher_on_phi_target_test_accuracy_std']:.4f}, cross-entropy "
      f"{phi['teacher_on_phi_target_test_cross_entropy_mean']:.4f} ± "
      f"{phi['teacher_on_phi_target_test_cross_entropy_std']:.4f}.",
      "",
    ]
  if "test_neg_elbo" in phi:
    lines += [
      f"VAE (latent {phi.get('latent_dim', '?')}"
      + (f", trained on {phi['train_on']}" if "train_on" in phi else "")
      + f"): test −ELBO {phi['test_neg_elbo']:.2f} (KL {phi['test_kl']:.2f}).",
      "",
    ]
  return lines


def interval_text(effect: dict) -> str:
  """``+0.0053 [+0.0014, +0.0093]``: an effect and its interval (``[n/a]`` without one)."""
  if effect["low"] is None:
    return f"{effect['mean']:+.4f} [n/a]"
  return f"{effect['mean']:+.4f} [{effect['low']:+.4f}, {effect['high']:+.4f}]"


def _effect_rows(first_column: str, effects: dict) -> list[str]:
  """``<first_column> | Δ acc [95% CI] | Δ CE [95% CI] | p | verdict``: a header and a row per
  labelled effect."""
  lines = [
    f"| {first_column} | Δ accuracy [95% CI] | Δ cross-entropy [95% CI] | p (acc / CE) | "
    "verdict (acc / CE) |",
    "|---|---|---|---|---|",
  ]
  for label, effect in effects.items():
    acc, ce = effect["test_accuracy"], effect["test_cross_entropy"]
    p = " / ".join("n/a" if e["p"] is None else f"{e['p']:.2g}" for e in (acc, ce))
    lines.append(
      f"| {label} | {interval_text(acc)} | {interval_text(ce)} | {p} | "
      f"{acc['verdict']} / {ce['verdict']} |"
    )
  return lines


def effects_table(effects: dict) -> list[str]:
  """``arm | Δ acc [95% CI] | Δ CE [95% CI] | p | verdict`` rows, and what the unit is."""
  if not effects:
    return []
  first = next(iter(effects.values()))["test_accuracy"]
  return [
    *_effect_rows("arm", effects),
    "",
    f"Δ = arm − no_teacher, paired by student seed; {first['teachers']} teacher(s) × "
    f"{first['seeds']} seed(s); each run's metric {_window_text(first)}; intervals: 95% "
    f"Student t over the unit = {first['unit']}; p one-sided in the claimed direction (accuracy "
    "up, cross-entropy down).",
    "",
  ]


def contrasts_table(contrasts: dict) -> list[str]:
  """The same rows for the arms taught through φ against the arms taught without it
  (``effects.contrasts``)."""
  if not contrasts:
    return []
  return [
    *_effect_rows("with φ vs without φ", contrasts),
    "",
    "Δ = the arm taught through φ − the arm taught without φ (the teacher applied to x), paired "
    "by teacher and student seed, as above.",
    "",
  ]


def _window_text(effect: dict) -> str:
  n = effect.get("last_epochs", 1)
  return "at the final epoch" if n == 1 else f"averaged over its last {n} epochs"


def markdown_table(results: dict) -> str:
  arms = results["arms"]
  first = next(iter(arms.values()))
  config = results.get("config", {})
  lines = [
    f"# {results['experiment']}",
    "",
    *_dataset_lines(results.get("datasets", {})),
    *_teacher_lines(results["teacher"], results.get("phi", {})),
    *effects_table(results.get("effects", {})),
    *contrasts_table(results.get("contrasts", {})),
    f"Students: {config.get('seeds', len(set(first['seeds'])))} seeds per teacher "
    f"({config.get('student_seeds', 'shared')}), {len(first['test_accuracy'][0])} epochs; "
    "final test metrics (mean ± std over all runs of an arm).",
    "",
    "| arm | λ | T | runs | test accuracy | test cross-entropy |",
    "|---|---|---|---|---|---|",
  ]
  for label, entry in arms.items():
    acc, ce = entry["final"]["test_accuracy"], entry["final"]["test_cross_entropy"]
    lines.append(
      f"| {label} | {entry['lam']:g} | {entry['temperature']:g} | {len(entry['seeds'])} | "
      f"{acc['mean']:.4f} ± {acc['std']:.4f} | {ce['mean']:.4f} ± {ce['std']:.4f} |"
    )
  if results.get("diverged"):
    lines += ["", "**Diverged**: " + "; ".join(map(diverged_text, results["diverged"])) + "."]
  lines += [
    "",
    f"Wall time: {results['seconds']['total']:.1f} s on "
    f"{len(results['devices'])} device(s) ({results['devices'][0]}).",
    "",
  ]
  return "\n".join(lines)


def write(results: dict, workdir: str, other_figures: tuple[str, ...] = ()) -> None:
  """Writes results.json, results.md, test_accuracy.png, test_cross_entropy.png, (with
  effects) teacher_gains.png, and the TensorBoard runs (``summaries``) with those figures and
  ``other_figures`` (e.g. the map's) as images."""
  if parallel.is_primary():  # with several processes, process 0 writes
    as_json, non_finite = finite_for_json(results)
    if non_finite:  # null in the JSON, and said so
      as_json["non_finite"] = non_finite
    files.write_json(os.path.join(workdir, "results.json"), as_json, indent=1, allow_nan=False)
    files.write_text(os.path.join(workdir, "results.md"), markdown_table(results))
  paths = [os.path.join(workdir, f"{metric}.png") for metric in CURVES]
  for metric, path in zip(CURVES, paths):
    figures.curves(results, metric, path)
  if results.get("effects"):
    paths.append(figures.teacher_gains(results, os.path.join(workdir, "teacher_gains.png")))
  if parallel.is_primary():
    summaries.write(results, workdir, [*paths, *other_figures])
