"""Results of an experiment: ``results.json``, a Markdown table and accuracy / cross-entropy plots.

Per arm (and per λ, T when a grid is run) the JSON holds every seed's per-epoch
``test_accuracy`` and ``test_cross_entropy`` and the final-epoch mean and standard deviation over
seeds. Figures show the mean over seeds per epoch with a ±1 std band. Epochs that were not
evaluated (``eval_every`` > 1) are ``null`` in the JSON and skipped in the figures.
"""

from __future__ import annotations

import json
import os

import numpy as np

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


def plot_curves(results: dict, metric: str, path: str) -> None:
  """Mean ± std over seeds per epoch: all epochs (left) and the second half zoomed (right).

  The zoomed panel's y-range fits ``no_teacher`` and the ``teacher_phi`` arms (the comparison
  the experiment is about); other arms far from them run off its edge but stay in the left panel.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  arms = results["arms"]
  colors = plt.get_cmap("tab10" if len(arms) <= 10 else "tab20").colors
  fig, (full, zoom) = plt.subplots(1, 2, figsize=(11, 4.2))
  zoom_range = []  # second-half mean ± std of the arms the zoom fits
  for index, (label, entry) in enumerate(arms.items()):
    values = np.asarray(entry[metric], np.float64)  # null (not evaluated) -> NaN
    evaluated = np.all(np.isfinite(values), axis=0)
    epochs = np.arange(1, values.shape[1] + 1)[evaluated]
    values = values[:, evaluated]
    mean, std = values.mean(0), values.std(0)
    half = len(epochs) // 2
    if label == "no_teacher" or label.startswith("teacher_phi"):
      zoom_range += [(mean - std)[half:].min(), (mean + std)[half:].max()]
    style = {"color": colors[index % len(colors)], "linestyle": "-" if index < 10 else "--"}
    for ax, start in ((full, 0), (zoom, half)):
      ax.plot(epochs[start:], mean[start:], label=f"{label} ({len(values)} seeds)", **style)
      ax.fill_between(
        epochs[start:], (mean - std)[start:], (mean + std)[start:], color=style["color"], alpha=0.2
      )
  if zoom_range:
    low, high = min(zoom_range), max(zoom_range)
    pad = 0.1 * (high - low) or 1e-3
    zoom.set_ylim(low - pad, high + pad)
  for ax, title in ((full, "all epochs"), (zoom, "second half, zoomed")):
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
  fig.suptitle(f"{results['experiment']}: mean ± std over seeds", fontsize=10)
  zoom.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
  fig.tight_layout()
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def write(results: dict, workdir: str) -> None:
  """Writes results.json, results.md, test_accuracy.png and test_cross_entropy.png."""
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  with open(os.path.join(workdir, "results.md"), "w") as f:
    f.write(markdown_table(results))
  for metric in CURVES:
    plot_curves(results, metric, os.path.join(workdir, f"{metric}.png"))
