"""Results of an experiment: ``results.json``, ``results.md`` (a table) and the curves.

Per arm (and per λ, T when a grid is run) the JSON holds every seed's per-epoch
``test_accuracy`` and ``test_cross_entropy`` and the final-epoch mean and standard deviation over
seeds. Figures show the mean over seeds per epoch with a ±1 std band. Epochs that were not
evaluated (``eval_every`` > 1) are ``null`` in the JSON and skipped in the figures.
"""

from __future__ import annotations

import json
import os

import numpy as np

from distill_jax import figures

CURVES = ("test_accuracy", "test_cross_entropy")


def history_to_json(values: np.ndarray) -> list:
  """``[R, epochs]`` history as JSON lists; epochs not evaluated (NaN) become null."""
  return [[None if np.isnan(v) else float(v) for v in row] for row in values]


def group_runs(
  arm: str, grid: list[tuple[float, float, int]], history: dict[str, np.ndarray], seconds: float
) -> dict[str, dict]:
  """Splits one arm's runs ``(λ, T, seed)`` into entries per (λ, T), keyed by a label."""
  settings = sorted({(lam, temperature) for lam, temperature, _ in grid})
  groups = {}
  for lam, temperature in settings:
    rows = [i for i, run in enumerate(grid) if run[:2] == (lam, temperature)]
    label = arm if len(settings) == 1 else f"{arm}[lam={lam:g},T={temperature:g}]"
    entry = {
      "arm": arm,
      "lam": float(lam),
      "temperature": float(temperature),
      "seeds": [int(grid[i][2]) for i in rows],
      "train_seconds": seconds,
      "final": {},
    }
    for metric in ("train_loss", *CURVES):
      values = np.asarray(history[metric])[rows]
      entry[metric] = history_to_json(values)
      entry["final"][metric] = {
        "mean": float(values[:, -1].mean()),
        "std": float(values[:, -1].std()),
      }
    groups[label] = entry
  return groups


def _phi_lines(phi: dict) -> list[str]:
  """How well φ keeps the class (and, for a learned φ, its VAE's test −ELBO), if measured."""
  lines = []
  if "teacher_accuracy_on_phi_target_test" in phi:
    size = phi.get("phi_target_test_size")
    lines.append(
      "φ keeps the class: the teacher on φ(target test)"
      + (f" ({size} test images)" if size else "")
      + ", scored with the target labels: "
      f"accuracy {phi['teacher_accuracy_on_phi_target_test']:.4f}, cross-entropy "
      f"{phi.get('teacher_cross_entropy_on_phi_target_test', float('nan')):.4f}."
    )
  if "test_neg_elbo" in phi:
    lines.append(
      f"VAE (latent {phi.get('latent_dim', '?')}): test −ELBO {phi['test_neg_elbo']:.2f} "
      f"(KL {phi['test_kl']:.2f})."
    )
  return [*lines, ""] if lines else []


def markdown_table(results: dict) -> str:
  arms = results["arms"]
  baseline = arms.get("no_teacher")
  lines = [
    f"# {results['experiment']}",
    "",
    f"Teacher ({results['teacher']['model']}, trained on "
    f"{results['teacher']['trained_on']}): test accuracy on {results['teacher']['evaluated_on']} "
    + (f"({results['teacher']['num_test']} images) " if "num_test" in results["teacher"] else "")
    + f"{results['teacher']['test_accuracy']:.4f}.",
    "",
    *_phi_lines(results.get("phi", {})),
    f"Students: {len(next(iter(arms.values()))['seeds'])} seeds, "
    f"{len(next(iter(arms.values()))['test_accuracy'][0])} epochs; final test metrics "
    "(mean ± std over seeds).",
    "",
    "| arm | λ | T | test accuracy | test cross-entropy | Δ accuracy vs no_teacher |",
    "|---|---|---|---|---|---|",
  ]
  for label, entry in arms.items():
    acc, ce = entry["final"]["test_accuracy"], entry["final"]["test_cross_entropy"]
    delta = (
      f"{acc['mean'] - baseline['final']['test_accuracy']['mean']:+.4f}"
      if baseline is not None and label != "no_teacher"
      else ""
    )
    lines.append(
      f"| {label} | {entry['lam']:g} | {entry['temperature']:g} | "
      f"{acc['mean']:.4f} ± {acc['std']:.4f} | {ce['mean']:.4f} ± {ce['std']:.4f} | "
      f"{delta} |"
    )
  lines += [
    "",
    f"Wall time: {results['seconds']['total']:.1f} s on "
    f"{len(results['devices'])} device(s) ({results['devices'][0]}).",
    "",
  ]
  return "\n".join(lines)


def write(results: dict, workdir: str) -> None:
  """Writes results.json, results.md, test_accuracy.png and test_cross_entropy.png."""
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(markdown_table(results))
  for metric in CURVES:
    figures.curves(results, metric, os.path.join(workdir, f"{metric}.png"))
