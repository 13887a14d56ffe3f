"""Every figure the experiments write (all matplotlib lives here, drawn off-screen).

* ``curves``: an experiment's per-epoch test metric per arm, mean ± std over all its runs
  (teachers × seeds);
* ``vae_latent_grids`` / ``vae_translations``: what the two-decoder VAE behind φ_vae learned;
* ``style_examples``: the style image(s), then originals above their φ_style versions;
* ``teacher_gains``: each teacher's paired gain per arm, with the effect's interval;
* ``study_effects`` / ``study_grid``: a study's effects against its swept value, and over the
  grid of two swept fields.
"""

from __future__ import annotations

import os

import numpy as np

from distill_jax import files
from distill_jax import parallel


def _pyplot():
  """``matplotlib.pyplot`` with the off-screen Agg backend (no display on servers and CI)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _save(fig, path: str, **options) -> str:
  """Writes the figure atomically (a crash or a full disk keeps the previous file) and closes
  it; with several processes only process 0 writes."""
  if parallel.is_primary():
    with files.atomic_write(path, "wb") as file:
      fig.savefig(file, format=os.path.splitext(path)[1][1:] or "png", **options)
  _pyplot().close(fig)
  return path


def curves(results: dict, metric: str, path: str) -> str:
  """Mean ± std over all runs of an arm (teachers × seeds) per epoch: all epochs (left) and
  the second half zoomed (right).

  The zoomed panel's y-range fits ``no_teacher`` and the ``teacher_phi`` arms (the comparison
  the experiment is about); other arms far from them run off its edge but stay in the left
  panel. Epochs that were not evaluated (null) are skipped.
  """
  plt = _pyplot()
  from matplotlib.ticker import MaxNLocator

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
      ax.plot(epochs[start:], mean[start:], label=f"{label} ({len(values)} runs)", **style)
      ax.fill_between(
        epochs[start:], (mean - std)[start:], (mean + std)[start:], color=style["color"], alpha=0.2
      )
  if zoom_range:
    low, high = min(zoom_range), max(zoom_range)
    pad = 0.1 * (high - low) or 1e-3
    zoom.set_ylim(low - pad, high + pad)
  for ax, title in ((full, "all epochs"), (zoom, "second half, zoomed")):
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole: no 1.5, 3.25
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
  fig.suptitle(f"{results['experiment']}: mean ± std over runs (teachers × seeds)", fontsize=10)
  zoom.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
  fig.tight_layout()
  return _save(fig, path, dpi=120, bbox_inches="tight")


def _mosaic(images: np.ndarray, rows: int) -> np.ndarray:
  """``[rows*cols, H, W, 1]`` → one ``[rows*H, cols*W]`` image."""
  n, h, w = images.shape[:3]
  cols = n // rows
  return images[..., 0].reshape(rows, cols, h, w).transpose(0, 2, 1, 3).reshape(rows * h, cols * w)


def vae_latent_grids(model, params, path: str, steps: int = 15) -> str:
  """Both decoders on the same 2-D latent grid, side by side (needs ``latent_dim == 2``)."""
  from distill_jax import vae as vae_lib

  decoded = vae_lib.decode_latent_grid(model, params, steps)
  plt = _pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
  for ax, (title, images) in zip(axes, decoded.items()):
    ax.imshow(_mosaic(images, steps), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
  fig.suptitle("Decoded latent grid z = Φ⁻¹(u), u ∈ [0.05, 0.95]²: same z, both domains")
  fig.tight_layout()
  return _save(fig, path, dpi=110)


def vae_translations(model, params, fashion_images: np.ndarray, path: str) -> str:
  """Rows: Fashion inputs, their φ_vae digits, and their Fashion reconstructions."""
  from distill_jax import vae as vae_lib

  rows = {"input x": np.asarray(fashion_images), **vae_lib.translate(model, params, fashion_images)}
  plt = _pyplot()
  fig, axes = plt.subplots(len(rows), 1, figsize=(1.0 * len(fashion_images), 3.6))
  for ax, (title, images) in zip(axes, rows.items()):
    ax.imshow(_mosaic(images, 1), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9, loc="left")
    ax.axis("off")
  fig.tight_layout()
  return _save(fig, path, dpi=110)


def style_examples(images, labels, stylized, style_images, style_of, path: str) -> str:
  """The style image(s) ``[K, H, W, 3]`` side by side, then the first image of each class above
  its φ_style version (titled with the style ``style_of[i]`` it got when K > 1)."""
  from distill_jax.data import imagenette

  labels = np.asarray(labels)
  classes = [int(c) for c in np.unique(labels)]
  first_of_class = [int(np.flatnonzero(labels == c)[0]) for c in classes]
  count = len(first_of_class) + 1
  plt = _pyplot()
  fig, axes = plt.subplots(2, count, figsize=(1.3 * count, 3.1), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  style_images = np.asarray(style_images)
  num_styles = len(style_images)
  axes[0, 0].imshow(np.clip(np.concatenate(list(style_images), axis=1), 0, 1))
  axes[0, 0].set_title(
    "style image" if num_styles == 1 else f"styles 0…{num_styles - 1}", fontsize=8
  )
  for column, (label, index) in enumerate(zip(classes, first_of_class), start=1):
    name = imagenette.CLASS_NAMES[label] if label < len(imagenette.CLASS_NAMES) else str(label)
    axes[0, column].imshow(np.clip(images[index], 0, 1))
    axes[0, column].set_title(f"x: {name}", fontsize=8)
    axes[1, column].imshow(np.clip(stylized[index], 0, 1))
    suffix = "" if num_styles == 1 else f", style {style_of[index]}"
    axes[1, column].set_title(f"φ_style(x){suffix}", fontsize=8)
  fig.tight_layout()
  return _save(fig, path, dpi=110)


def teacher_gains(results: dict, path: str) -> str:
  """Per arm, each teacher's mean paired gain over ``no_teacher`` (dots) and the effect with
  its 95% interval (bar), for Δ test accuracy and Δ test cross-entropy: the spread the
  intervals come from. One row of panels per arm, each with its own scale (the ``teacher``
  arm of φ_vae loses 0.3 accuracy, ``teacher_phi`` gains 0.006: one axis would hide the
  second's interval); the dashed line is no gain."""
  effects = results["effects"]
  plt = _pyplot()
  labels = list(effects)
  fig, axes = plt.subplots(len(labels), 2, figsize=(11, 0.6 + 1.0 * len(labels)), squeeze=False)
  last = effects[labels[0]]["test_accuracy"].get("last_epochs", 1)
  score = "final" if last == 1 else f"last-{last}-epoch"
  for row, label in enumerate(labels):
    for ax, metric in zip(axes[row], ("test_accuracy", "test_cross_entropy")):
      effect = effects[label][metric]
      gains = np.asarray(effect["per_teacher"])
      ax.scatter(gains, np.zeros(len(gains)), s=18, alpha=0.6, color="tab:blue")
      if effect["low"] is not None:
        ax.plot([effect["low"], effect["high"]], [0.25] * 2, color="black", lw=2)
      ax.plot([effect["mean"]], [0.25], marker="D", color="black", ms=5)
      ax.axvline(0.0, color="gray", lw=1, ls="--")
      ax.set_yticks([0.1], [label], fontsize=8)
      ax.set_ylim(-0.5, 0.7)
      ax.grid(alpha=0.3, axis="x")
      if row == len(labels) - 1:
        ax.set_xlabel(f"Δ {score} {metric.replace('_', ' ')} vs no_teacher")
  first = effects[labels[0]]["test_accuracy"]
  fig.suptitle(
    f"{results['experiment']}: dots = each of {first['teachers']} teacher(s), mean over "
    f"{first['seeds']} paired seeds; bar = 95% CI over {first['unit'].split(' (')[0]}s",
    fontsize=9,
  )
  fig.tight_layout()
  return _save(fig, path, dpi=120, bbox_inches="tight")


def study_effects(study: dict, path: str) -> str:
  """A study's effects against its first swept field: per arm (and per value of the other
  swept fields) the effect on Δ test accuracy (left) and Δ test cross-entropy (right) against
  ``no_teacher``, a band for its 95% interval over teachers; a log x axis when the values are
  positive and span 10× or more (``study.log_axis``), categories when they are not numbers."""
  from distill_jax import study as study_lib

  plt = _pyplot()
  first, others = study["vary"][0], study["vary"][1:]
  xs = [point["values"][first] for point in study["points"]]
  numeric = study_lib.is_numeric(xs)
  positions = {x: i for i, x in enumerate(dict.fromkeys(map(str, xs)))}
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  colors = plt.get_cmap("tab10").colors
  lines = {}  # (arm, other values) -> [(x, effect per metric)]
  for point in study["points"]:
    rest = tuple(point["values"][f] for f in others)
    for arm, effect in point["effects"].items():
      lines.setdefault((arm, rest), []).append((point["values"][first], effect))
  for index, ((arm, rest), series) in enumerate(lines.items()):
    series.sort(key=lambda item: item[0] if numeric else positions[str(item[0])])
    x = [item[0] if numeric else positions[str(item[0])] for item in series]
    label = arm + "".join(f", {f}={v}" for f, v in zip(others, rest))
    for ax, metric in zip(axes, ("test_accuracy", "test_cross_entropy")):
      effects_ = [item[1][metric] for item in series]
      mean = [e["mean"] for e in effects_]
      color = colors[index % len(colors)]
      ax.plot(x, mean, marker="o", color=color, label=label)
      with_interval = [(xi, e) for xi, e in zip(x, effects_) if e["low"] is not None]
      if with_interval:
        ax.fill_between(
          [xi for xi, _ in with_interval],
          [e["low"] for _, e in with_interval],
          [e["high"] for _, e in with_interval],
          color=color,
          alpha=0.2,
        )
  for ax, metric in zip(axes, ("test_accuracy", "test_cross_entropy")):
    ax.axhline(0.0, color="gray", lw=1, ls="--")
    if numeric and study_lib.log_axis(xs):
      ax.set_xscale("log")
    if not numeric:
      ax.set_xticks(list(positions.values()), list(positions))
    ax.set_xlabel(first)
    ax.set_ylabel(f"Δ {metric.replace('_', ' ')} vs no_teacher")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.suptitle(f"study of {study['mapping']}: effect and 95% CI over teachers", fontsize=9)
  fig.tight_layout()
  return _save(fig, path, dpi=120, bbox_inches="tight")


_VERDICT_MARKS = {"holds": "✓", "fails": "✗", "inconclusive": "?"}


def study_grid(study: dict, path: str) -> str:
  """A two-field study as heatmaps: per arm (rows of panels), Δ test accuracy and Δ test
  cross-entropy against ``no_teacher`` (mean over teachers) over the grid of the two swept
  fields, the first across and the second down; each cell shows the mean and its verdict
  (✓ holds, ✗ fails, ? inconclusive). Blue is the claimed direction in both panels."""
  plt = _pyplot()
  across, down = study["vary"]
  columns = list(dict.fromkeys(point["values"][across] for point in study["points"]))
  rows = list(dict.fromkeys(point["values"][down] for point in study["points"]))
  arms = list(dict.fromkeys(arm for point in study["points"] for arm in point["effects"]))
  fig, axes = plt.subplots(
    len(arms),
    2,
    figsize=(4.2 + 0.9 * len(columns), 0.6 + 2.6 * len(arms) * len(rows) / 4),
    squeeze=False,
  )
  for row_axes, arm in zip(axes, arms):
    for ax, metric, sign in zip(row_axes, ("test_accuracy", "test_cross_entropy"), (1, -1)):
      means = np.full((len(rows), len(columns)), np.nan)
      marks = {}
      for point in study["points"]:
        effect = point["effects"].get(arm, {}).get(metric)
        if effect is None:
          continue
        i, j = rows.index(point["values"][down]), columns.index(point["values"][across])
        means[i, j] = effect["mean"]
        marks[i, j] = _VERDICT_MARKS.get(effect["verdict"], "")
      limit = float(np.nanmax(np.abs(means))) if np.isfinite(means).any() else 1.0
      # RdBu: blue for positive; cross-entropy is claimed to fall, so its sign is flipped.
      ax.imshow(sign * means, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
      for (i, j), mark in marks.items():
        dark = abs(means[i, j]) > 0.6 * limit  # white text on the deepest colours
        ax.text(
          j,
          i,
          f"{means[i, j]:+.4f}\n{mark}",
          ha="center",
          va="center",
          fontsize=7,
          color="white" if dark else "black",
        )
      ax.set_xticks(range(len(columns)), [str(c) for c in columns])
      ax.set_yticks(range(len(rows)), [str(r) for r in rows])
      ax.set_xlabel(across)
      ax.set_ylabel(down)
      ax.set_title(f"{arm}: Δ {metric.replace('_', ' ')}", fontsize=9)
  fig.suptitle(
    f"study of {study['mapping']}: mean effect vs no_teacher over teachers "
    "(✓ holds, ✗ fails, ? inconclusive; blue = the claimed direction)",
    fontsize=8,
  )
  fig.tight_layout()
  return _save(fig, path, dpi=120, bbox_inches="tight")
