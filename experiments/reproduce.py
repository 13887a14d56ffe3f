"""Every claim of the talk, reproduced by one command, with intervals and verdicts.

  python -m experiments.reproduce --data_dir=../shared/data --workdir=runs/reproduce

runs the talk's six experiments in order — identity, noise, conv, vae, generated and style (its
CPU config) — plus the ablation generated_full (GeneratedMNIST translated from all of
Fashion-MNIST, not from FashionMNIST-Small as the talk has it), each from its config file (as ``python -m experiments.distill --mapping=<name>``),
into ``<workdir>/<name>``, sharing ``<workdir>/cache`` (teachers, VAEs, stylized sets) so a
rerun reuses finished work. It then writes ``<workdir>/REPORT.md`` and ``report.json``: the
claims table (each experiment's claim, Δ accuracy and Δ cross-entropy of ``teacher_phi``
against the arm the talk compares it with, with 95% intervals over teachers, and the verdict:
``no_teacher``, and for vae ``teacher``, the same teacher without φ, with ``no_teacher`` in a
column beside it; ``BASELINES``), the teachers' scores on φ(test), wall times, figures and the
exact configurations. ``--rejudge=<report.json>`` judges a written report's claims again from
its recorded effects, with no training, and rewrites it and its REPORT.md. ``--quick`` shrinks everything
(subsets, one or two epochs, two teachers × two seeds) to check the pipeline in about a minute;
its numbers mean nothing. ``--only=conv,style`` runs a subset.
"""

# ruff: noqa: E402 — launch.start_early runs before the imports that load JAX

from __future__ import annotations

import json
import os
import sys
import time

from experiments import launch  # no JAX: with --num_processes, start the others first

launch.start_early(sys.argv, "experiments.reproduce")

import jax  # the other processes import while this one does
from absl import app
from absl import flags
from absl import logging

from distill_jax import data as data_lib
from distill_jax import effects as effects_lib
from distill_jax import experiment
from distill_jax import files
from distill_jax import parallel
from distill_jax import provenance
from distill_jax import report
from distill_jax import validation
from experiments import cli_setup
from experiments import configs

# The talk's experiments, in its order, each with its claim in one sentence.
CLAIMS = {
  "identity": "A teacher trained on Fashion-MNIST-Big improves a student trained on "
  "Fashion-MNIST-Small (φ = identity).",
  "noise": "A teacher trained on noisy images x + N(0, 0.1) improves the student through φ_noise.",
  "conv": "A teacher trained on images seen through a fixed dilated convolution improves the "
  "student through φ_conv.",
  "vae": "A teacher trained on MNIST teaches a Fashion-MNIST student better through the VAE map "
  "φ_vae (clothes → digits) than without it.",
  "generated": "A teacher trained on GeneratedMNIST (70 VAE digits drawn from each "
  "FashionMNIST-Small image) improves the Fashion-MNIST student through φ_vae.",
  "generated_full": "Ablation, not the talk's: a teacher trained on φ_vae of all 70,000 "
  "Fashion-MNIST images (59,000 labelled garments) improves the student through φ_vae.",
  "style": "A teacher trained on style-transferred Imagenette improves an Imagenette student "
  "through φ_style.",
}
TALK = (
  'The talk: «Задача многодоменной дистилляции» ("The multi-domain distillation problem", in '
  "Russian). It claims that a teacher trained on a large source domain, read through a known "
  "map φ from the target domain to the source, improves a student trained on a small target "
  "set: for φ = identity, additive noise and a fixed dilated convolution on Fashion-MNIST, for "
  "a VAE that turns clothes into digits (an MNIST teacher, and one trained on GeneratedMNIST), "
  "and for VGG-19 style transfer on Imagenette."
)
CLAIMED_ARM = "teacher_phi"  # the arm each claim is about: the student taught by f(φ(x))
# What each claim compares it with, as the talk does: the student trained alone, except on the
# VAE slide, which compares it with the student taught without φ ("without the map φ the model
# becomes noisier"). The other comparison, where there is one, stays beside it in the report.
BASELINES = {"vae": "teacher"}  # the others: no_teacher


def baseline_of(name: str) -> str:
  """The arm experiment ``name``'s claim compares ``teacher_phi`` with."""
  return BASELINES.get(name, "no_teacher")


def comparisons(name: str, arm_effects: dict, contrasts: dict) -> tuple[dict, dict | None]:
  """``(the claim's comparison, the other one or None)``, each ``{"comparison": "teacher_phi vs
  <arm>", "effect": ...}``: against ``no_teacher`` from the experiment's ``effects``, against
  ``teacher`` from its ``contrasts`` (``effects.contrasts``: paired by teacher and seed)."""
  versus_alone = {"comparison": f"{CLAIMED_ARM} vs no_teacher", "effect": arm_effects[CLAIMED_ARM]}
  baseline = baseline_of(name)
  if baseline == "no_teacher":
    return versus_alone, None
  comparison = f"{CLAIMED_ARM} vs {baseline}"
  return {"comparison": comparison, "effect": contrasts[comparison]}, versus_alone


flags.adopt_module_key_flags(launch)  # --num_processes, --distributed in --help
_WORKDIR = flags.DEFINE_string("workdir", "runs/reproduce", "Output folder.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "As for experiments.distill (offline data).")
_TFDS_DIR = flags.DEFINE_string(
  "tfds_dir", None, "Prepared datasets (default ~/tensorflow_datasets)."
)
_QUICK = flags.DEFINE_bool("quick", False, "Tiny sizes: checks the pipeline, numbers mean nothing.")
_REJUDGE = flags.DEFINE_string(
  "rejudge",
  None,
  "A report.json: judge its claims again from its recorded effects (no training) and rewrite "
  "it and the REPORT.md beside it.",
)
_PUBLISH = flags.DEFINE_string(
  "publish",
  None,
  "A report.json: copy it, its REPORT.md and its figures into --publish_dir (its figures under "
  "figures/reproduce/, the links rewritten so they resolve there); no training.",
)
_PUBLISH_DIR = flags.DEFINE_string(
  "publish_dir", "docs", "Where --publish writes REPORT.md, report.json and the figures."
)
_ONLY = flags.DEFINE_list("only", list(CLAIMS), "Experiments to run (default: all, in order).")


def experiment_config(name: str):
  """The config ``python -m experiments.distill --mapping=<name>`` runs."""
  return configs.for_mapping(name)


def shrink(config) -> None:
  """``--quick``: subsets, one teacher epoch, two student epochs, two teachers × two seeds."""
  config.seeds, config.teacher.count = 2, 2
  config.teacher.epochs, config.student.epochs = 1, 2
  config.teacher.batch_size, config.student.batch_size = 16, 10
  config.teacher.hidden, config.teacher.features, config.teacher.dense = (32,), (4, 8), 16
  config.student.features, config.student.dense = (4,), 16
  config.data.max_big, config.data.max_small, config.data.max_test = 400, 100, 200
  config.data.image_size, config.data.imagenette_small = 16, 20
  if config.target_dataset == "imagenette":  # its Small is the 20 images drawn above
    config.data.max_small = None
  config.teacher.eval_size = None
  config.eval_batch_size, config.checkpoint_every = 100, 1
  if "vae" in config:
    config.vae.epochs, config.vae.figure_epochs = 1, 1
    config.vae.encoder_hidden, config.vae.decoder_hidden = (32,), (32,)
  if "style" in config:
    config.style.steps, config.style.batch_size = 1, 64
  if "generated" in config:  # 100 Small images × 10 draws
    config.generated.samples_per_image, config.generated.split = 10, (700, 100, 200)


def run_all(names, *, workdir: str, data_dir, tfds_dir: str, quick: bool = False) -> dict:
  """Runs the experiments ``names`` (validated first, all of them, before any work) and writes
  REPORT.md / report.json; returns the report."""
  configs = {}
  for name in names:
    if name not in CLAIMS:
      raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(CLAIMS)}.")
    configs[name] = experiment_config(name)
    if quick:
      shrink(configs[name])
    validation.validate_config(configs[name])
  entries = {}
  for index, (name, config) in enumerate(configs.items(), start=1):
    logging.info("reproduce [%d/%d]: %s — %s", index, len(configs), name, CLAIMS[name])
    started = time.perf_counter()
    results = experiment.run_experiment(
      config,
      os.path.join(workdir, name),
      data_dir=data_dir,
      tfds_dir=tfds_dir,
      cache_dir=os.path.join(workdir, "cache"),
    )
    seconds = time.perf_counter() - started
    entries[name] = _entry(name, results, seconds, os.path.join(workdir, name))
    effect = entries[name]["effect"]
    if effect:
      logging.info(
        "reproduce [%d/%d]: %s done in %.0f s: Δ accuracy %+.4f (%s), Δ cross-entropy %+.4f (%s)",
        index,
        len(configs),
        name,
        entries[name]["wall_seconds"],
        effect["test_accuracy"]["mean"],
        effect["test_accuracy"]["verdict"],
        effect["test_cross_entropy"]["mean"],
        effect["test_cross_entropy"]["verdict"],
      )
  reproduction = {
    "command": "python -m experiments.reproduce" + (" --quick" if quick else ""),
    "quick": quick,
    "jax": jax.__version__,
    "devices": [str(d) for d in jax.devices()],
    "commit": provenance.code_commit(),
    "machine": provenance.machine(),
    "experiments": entries,
    "wall_seconds": _total_seconds(entries),
  }
  if parallel.is_primary():  # several processes: one writes, the others wait
    files.write_json(os.path.join(workdir, "report.json"), reproduction, indent=1)
    files.write_text(os.path.join(workdir, "REPORT.md"), markdown(reproduction))
  parallel.barrier("reproduce report written")
  return reproduction


def _total_seconds(entries: dict) -> float:
  """The experiments' wall times added up: the reproduction's own, run one after another."""
  return sum(entry["wall_seconds"] for entry in entries.values())


def rejudge(reproduction: dict, command: str | None) -> dict:
  """A ``report.json`` whose claims are judged again, with no training: each experiment's claim
  text and comparisons (``comparisons``, ``effects.contrasts``) recomputed from its recorded
  effects, e.g. after ``BASELINES`` changed. ``command`` is recorded as ``rejudged_by`` (None:
  the report keeps what it has, for a report that is only checked or copied)."""
  entries = {}
  for name, entry in reproduction["experiments"].items():
    if name not in CLAIMS:
      raise ValueError(
        f"rejudge: unknown experiment {name!r} in the report; known: {', '.join(CLAIMS)}."
      )
    # one-teacher arms written before their units were recorded cannot be contrasted
    contrasts = effects_lib.contrasts(entry["effects"], skip_unrecorded=True)
    claimed, other = comparisons(name, entry["effects"], contrasts)
    entries[name] = {
      **entry,
      "claim": CLAIMS[name],
      "comparison": claimed["comparison"],
      "effect": claimed["effect"],
      "other_comparison": other,
      "contrasts": contrasts,
    }
  rejudged = {**reproduction, "experiments": entries, "wall_seconds": _total_seconds(entries)}
  if command is not None:
    rejudged["rejudged_by"] = command
  return rejudged


def _read_report(path: str, flag: str) -> dict:
  try:
    with open(path) as f:
      reproduction = json.load(f)
  except (OSError, ValueError) as error:
    raise ValueError(f"{flag}={path}: cannot read a report.json there ({error}).") from None
  if "experiments" not in reproduction:
    raise ValueError(f"{flag}={path}: not a report.json of experiments.reproduce.")
  return reproduction


def rejudge_file(path: str) -> dict:
  """``rejudge`` the report.json at ``path`` and rewrite it and the REPORT.md beside it."""
  reproduction = _read_report(path, "--rejudge")
  rejudged = rejudge(reproduction, f"python -m experiments.reproduce --rejudge={path}")
  folder = os.path.dirname(os.path.abspath(path))
  files.write_json(os.path.join(folder, "report.json"), rejudged, indent=1)
  files.write_text(os.path.join(folder, "REPORT.md"), markdown(rejudged))
  return rejudged


PUBLISHED_FIGURES = os.path.join("figures", "reproduce")


def publish(path: str, out_dir: str) -> dict:
  """The report.json at ``path`` (a reproduction's workdir) written into ``out_dir``: its
  figures copied under ``out_dir/figures/reproduce/`` with the report's links to them, then
  ``report.json`` and ``REPORT.md``, judged as ``rejudge`` does. Returns the written report."""
  reproduction = _read_report(path, "--publish")
  source = os.path.dirname(os.path.abspath(path))
  entries = {}
  for name, entry in reproduction["experiments"].items():
    figures = []
    for figure in entry.get("figures", []):
      original = os.path.normpath(os.path.join(source, figure))
      if os.path.isabs(figure) or os.path.relpath(original, source).startswith(os.pardir):
        raise ValueError(f"--publish={path}: figure {figure!r} is not inside the report's folder.")
      if not os.path.isfile(original):
        raise ValueError(f"--publish={path}: its figure {figure!r} is missing.")
      # a report published before links into figures/reproduce/ already
      published_already = figure.startswith(PUBLISHED_FIGURES + os.sep)
      target = figure if published_already else os.path.join(PUBLISHED_FIGURES, figure)
      destination = os.path.join(out_dir, target)
      if os.path.abspath(destination) != original:
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        with open(original, "rb") as f, files.atomic_write(destination, "wb") as out:
          out.write(f.read())
      figures.append(target)
    entries[name] = {**entry, "figures": figures}
  published = rejudge({**reproduction, "experiments": entries}, None)
  files.write_json(os.path.join(out_dir, "report.json"), published, indent=1)
  files.write_text(os.path.join(out_dir, "REPORT.md"), markdown(published))
  return published


def _entry(name: str, results: dict, seconds: float, folder: str) -> dict:
  claimed, other = comparisons(name, results["effects"], results["contrasts"])
  return {
    "claim": CLAIMS[name],
    "experiment": results["experiment"],
    "comparison": claimed["comparison"],
    "effect": claimed["effect"],
    "other_comparison": other,
    "effects": results["effects"],
    "contrasts": results.get("contrasts", {}),
    "teacher": {k: v for k, v in results["teacher"].items() if k != "checkpoint"},
    "phi": {k: v for k, v in results["phi"].items() if k != "checkpoint"},
    "wall_seconds": seconds,
    "figures": [os.path.join(name, f) for f in sorted(os.listdir(folder)) if f.endswith(".png")],
    "config": results["config"],
  }


def claims_table(experiments: dict) -> list[str]:
  """``experiment | claim | comparison | Δ acc [CI] | Δ CE [CI] | verdict | K × S | the other
  comparison``: each claim judged by its own comparison (``BASELINES``)."""
  lines = [
    "| experiment | the talk's claim | compared as the talk does | Δ accuracy [95% CI] | "
    "Δ cross-entropy [95% CI] | verdict (acc / CE) | teachers × seeds | the other comparison |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for name, entry in experiments.items():
    acc, ce = entry["effect"]["test_accuracy"], entry["effect"]["test_cross_entropy"]
    other = entry.get("other_comparison")
    other_text = "—"
    if other:
      o_acc, o_ce = other["effect"]["test_accuracy"], other["effect"]["test_cross_entropy"]
      other_text = (
        f"{other['comparison']}: {report.interval_text(o_acc)} / {report.interval_text(o_ce)} "
        f"({o_acc['verdict']} / {o_ce['verdict']})"
      )
    lines.append(
      f"| {name} | {entry['claim']} | {entry.get('comparison', CLAIMED_ARM + ' vs no_teacher')} "
      f"| {report.interval_text(acc)} | {report.interval_text(ce)} | "
      f"{acc['verdict']} / {ce['verdict']} | {acc['teachers']} × {acc['seeds']} | {other_text} |"
    )
  return lines


def _generated_comparison(experiments: dict) -> list[str]:
  """A paragraph setting the talk's GeneratedMNIST beside the translate-everything ablation."""
  if not {"generated", "generated_full"} <= set(experiments):
    return []
  talk, full = experiments["generated"], experiments["generated_full"]

  def teacher_score(entry):
    return entry["phi"]["teacher_on_phi_target_test_accuracy_mean"]

  return [
    "**GeneratedMNIST, the talk's recipe against the ablation.** `generated`: the teacher "
    "learns 70 VAE digits drawn from each of the 1,000 FashionMNIST-Small images, so it has "
    "seen the same 1,000 labels as the student; it scores "
    f"{teacher_score(talk):.4f} on φ_vae(Fashion test) and moves the student by "
    f"{report.interval_text(talk['effect']['test_accuracy'])} "
    f"({talk['effect']['test_accuracy']['verdict']}). `generated_full`: the teacher learns "
    "φ_vae of all of Fashion-MNIST, 59,000 labelled garments the student never sees; it scores "
    f"{teacher_score(full):.4f} and moves the student by "
    f"{report.interval_text(full['effect']['test_accuracy'])} "
    f"({full['effect']['test_accuracy']['verdict']}). Only `generated` tests the talk's claim; "
    "the difference between the two is what 58,000 more labelled garments give the teacher. "
    "Both teachers read φ_vae(test) well because φ_vae itself learned the garment classes: "
    "the VAE pairs each Fashion-MNIST-Big garment with a digit of its class.",
    "",
  ]


def markdown(reproduction: dict) -> str:
  """REPORT.md: the claims table, then per experiment its teachers, effects and figures."""
  experiments = reproduction["experiments"]
  lines = [
    "# Reproducing the talk's claims",
    "",
    "<!-- numbers: report.json; constants: 95% -->",
    "",
    TALK,
    "",
    f"`{reproduction['command']}` — "
    + (f"commit {reproduction['commit']}, " if reproduction.get("commit") else "")
    + f"jax {reproduction['jax']}"
    + (
      f", {reproduction['machine']}."
      if reproduction.get("machine")
      else f" on {', '.join(reproduction['devices'])}."
    )
    + (
      f" The experiments took {reproduction['wall_seconds']:.0f} s, one after another."
      if "wall_seconds" in reproduction
      else ""
    )
    + (" **Quick mode: tiny sizes, the numbers mean nothing.**" if reproduction["quick"] else "")
    + (
      f" Claims judged again from its recorded effects, with no training, by "
      f"`{reproduction['rejudged_by']}`."
      if reproduction.get("rejudged_by")
      else ""
    ),
    "",
    "Δ = `teacher_phi` − the arm the talk compares it with (`no_teacher`, the student "
    "trained alone; for vae `teacher`, the student taught by the same teacher without φ) in "
    "test accuracy and cross-entropy (each run's mean "
    "over its last `effect_epochs` epochs, see each configuration; 1 = the final epoch), "
    "paired by student seed (and teacher); each teacher teaches its own student seeds "
    "(`student_seeds`); "
    "95% Student-t intervals with the teacher as the unit (with one teacher: over student "
    "seeds only). Verdict: *holds* if the interval excludes 0 in the claimed "
    "direction (accuracy up, cross-entropy down), *fails* if it excludes 0 the other way, else "
    "*inconclusive*. Single runs differ across machines (float summation order), so only "
    "intervals over teachers and seeds are comparable between machines.",
    "",
    *claims_table(experiments),
    "",
    *_generated_comparison(experiments),
  ]
  for name, entry in experiments.items():
    teacher, phi = entry["teacher"], entry["phi"]
    lines += [
      f"## {name}: {entry['experiment']}",
      "",
      f"Wall time {entry['wall_seconds']:.0f} s. Teachers on φ(target test): accuracy "
      f"{phi['teacher_on_phi_target_test_accuracy_mean']:.4f} ± "
      f"{phi['teacher_on_phi_target_test_accuracy_std']:.4f}, cross-entropy "
      f"{phi['teacher_on_phi_target_test_cross_entropy_mean']:.4f} ± "
      f"{phi['teacher_on_phi_target_test_cross_entropy_std']:.4f} ({len(teacher['seeds'])} "
      f"teachers: {teacher['model']} on {teacher['trained_on']}).",
      "",
      *report.effects_table(entry["effects"]),
      *report.contrasts_table(entry["contrasts"]),
      " ".join(f"![]({path})" for path in entry["figures"]),
      "",
      "<details><summary>configuration</summary>",
      "",
      "```json",
      json.dumps(entry["config"], indent=1),
      "```",
      "",
      "</details>",
      "",
    ]
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise SystemExit(cli_setup.usage_error(f"unexpected arguments: {' '.join(argv[1:])}"))
  if _REJUDGE.value:
    try:
      rejudge_file(_REJUDGE.value)
    except ValueError as error:
      raise SystemExit(cli_setup.usage_error(str(error))) from None
    logging.info("report: %s", os.path.join(os.path.dirname(_REJUDGE.value), "REPORT.md"))
    return
  if _PUBLISH.value:
    try:
      publish(_PUBLISH.value, _PUBLISH_DIR.value)
    except ValueError as error:
      raise SystemExit(cli_setup.usage_error(str(error))) from None
    logging.info("report: %s", os.path.join(_PUBLISH_DIR.value, "REPORT.md"))
    return
  launch.launch_or_join("experiments.reproduce")
  cli_setup.setup()
  tfds_dir = _TFDS_DIR.value or os.environ.get(
    "TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets")
  )
  os.makedirs(_WORKDIR.value, exist_ok=True)
  data_dir = data_lib.resolve_data_dir(_DATA_DIR.value)
  cli_setup.run_reported(
    lambda: run_all(
      _ONLY.value, workdir=_WORKDIR.value, data_dir=data_dir, tfds_dir=tfds_dir, quick=_QUICK.value
    ),
    folders=(_WORKDIR.value,),
  )
  logging.info("report: %s", os.path.join(_WORKDIR.value, "REPORT.md"))


launch.wait_for_go()  # processes 1 … P − 1 read their flags once process 0 has read its own

if __name__ == "__main__":
  launch.finish(lambda: app.run(main))
