"""Studies: one experiment swept over config values, the effects drawn against the swept value.

A study varies one or more config fields (``data.max_small``, ``maps.noise.variance``,
``student.model``, ...) over given values; every combination (a *point*) is one experiment
(``experiment.run_experiment``) in ``<workdir>/<field>=<value>,...``. All points share
``<workdir>/cache``, whose checkpoints are keyed by what they were computed from, so a teacher
whose inputs a sweep does not change (e.g. a sweep over the target size |Small|, or over the
student) is trained once and reused by every point; a point that changes them (φ's strength,
the source set) trains its own. λ and T are better swept through the config's ``lams`` /
``temperatures`` grid, which trains all settings in one vmapped program.

For each point: every arm's effect against ``no_teacher`` (``effects``: paired by seed, 95%
interval over teachers), the with-φ-against-without-φ contrasts where the experiment has them,
and the teachers' score on φ(target test). ``write`` puts ``study.json``, ``study.md``,
``study.png`` (Δ accuracy and Δ cross-entropy against the swept value, interval bands, one
line per arm) and TensorBoard HParams (``<workdir>/tensorboard_study``) next to the points. A
study interrupted midway resumes: finished points reuse their saved runs, an unfinished one
resumes from its last saved epoch.
"""

from __future__ import annotations

import copy
import itertools
import os

from absl import logging

from distill_jax import experiment
from distill_jax import figures
from distill_jax import files
from distill_jax import parallel
from distill_jax import report
from distill_jax import summaries
from distill_jax import validation


_KINDS = {
  bool: "a bool (true / false)",
  int: "an int",
  float: "a number",
  type(None): "a number or none",
}


def parse_value(field: str, text: str, current, flag: str = "--vary"):
  """``text`` as a value of config field ``field`` whose current value is ``current``: of its
  type (bool, int, float, str), and for a field that is None by default (``data.max_*``) an int,
  a float or ``none``; tuples cannot be swept this way."""
  text = text.strip()
  try:
    if isinstance(current, bool):
      if text.lower() not in ("true", "false"):
        raise ValueError
      return text.lower() == "true"
    if isinstance(current, int):
      return int(text)
    if isinstance(current, float):
      return float(text)
    if isinstance(current, str):
      return text
    if current is None:
      if text.lower() == "none":
        return None
      try:
        return int(text)
      except ValueError:
        return float(text)
  except ValueError:
    kind = _KINDS.get(type(current), type(current).__name__)
    raise ValueError(f"{flag}={field}: {text!r} is not {kind} (the field's type).") from None
  raise ValueError(
    f"{flag}={field}: a {type(current).__name__} field cannot be set from text; give a "
    "number, a bool or a name (λ and T: set config lams / temperatures instead)."
  )


def _field(config, path: str, flag: str = "--vary"):
  """``(the section holding the field, its name)`` for a dotted ``path``, or a clear error
  naming the ``flag`` that gave it."""
  *sections, name = path.split(".")
  section = config
  for part in sections:
    if part not in section:
      raise ValueError(f"{flag}={path}: the config has no section {part!r}.")
    section = section[part]
  if not hasattr(section, "keys") or name not in section:
    raise ValueError(
      f"{flag}={path}: the config has no field {path!r} (experiments.distill --list_config "
      "lists them)."
    )
  return section, name


def points(config, vary: dict[str, list[str]]) -> list[tuple[dict, object]]:
  """Every combination of the swept values, in order: ``[(values by field, config), ...]``,
  each config a copy of ``config`` with its values set (and validated)."""
  if not vary:
    raise ValueError("a study needs at least one --vary field with its --values.")
  parsed = {}
  for path, texts in vary.items():
    section, name = _field(config, path)
    if not texts:
      raise ValueError(f"--vary={path}: give its --values, e.g. --values=100,1000.")
    values = [parse_value(path, text, section[name]) for text in texts]
    if len(set(map(repr, values))) != len(values):
      raise ValueError(f"--vary={path}: a value is given twice in {texts}.")
    parsed[path] = values
  out = []
  for combination in itertools.product(*parsed.values()):
    values = dict(zip(parsed, combination))
    point = copy.deepcopy(config)
    with point.unlocked():
      for path, value in values.items():
        section, name = _field(point, path)
        section[name] = value
    validation.validate_config(point)
    out.append((values, point))
  return out


def apply_settings(config, settings: list[str]):
  """``config`` with every ``--set=<field>=<value>`` of ``settings`` applied (in place; also
  returned), each value of its field's type (``parse_value``)."""
  for setting in settings:
    path, sep, text = setting.partition("=")
    if not sep:
      raise ValueError(f"--set={setting}: give <field>=<value>, e.g. --set=teacher.epochs=2.")
    section, name = _field(config, path, "--set")
    value = parse_value(path, text, section[name], "--set")
    with config.unlocked():
      section[name] = value
  return config


def sweep(fields: list[str], values: list[str]) -> dict[str, list[str]]:
  """``{field: [value text, ...]}`` from the paired ``--vary`` / ``--values`` flags."""
  if len(fields) != len(values):
    raise ValueError(
      f"give one --values per --vary ({len(fields)} --vary, {len(values)} --values), e.g. "
      "--vary=data.max_small --values=100,1000."
    )
  out = {}
  for field, texts in zip(fields, values):
    if field in out:
      raise ValueError(f"--vary={field} is given twice; give all its values in one --values.")
    out[field] = [text for text in texts.split(",") if text.strip()]
  return out


def point_name(values: dict) -> str:
  """A point's folder: ``data.max_small=100,seeds=5``."""
  return ",".join(f"{path}={value}" for path, value in values.items())


def _point_summary(values: dict, results: dict, folder: str) -> dict:
  phi = results.get("phi", {})
  return {
    "values": values,
    "folder": folder,
    "experiment": results["experiment"],
    "num_examples": results["num_examples"],
    "teacher": {
      "reused_checkpoint": results["teacher"]["reused_checkpoint"],
      "on_phi_target_test_accuracy_mean": phi.get("teacher_on_phi_target_test_accuracy_mean"),
      "on_phi_target_test_accuracy_std": phi.get("teacher_on_phi_target_test_accuracy_std"),
      "on_phi_target_test_cross_entropy_mean": phi.get(
        "teacher_on_phi_target_test_cross_entropy_mean"
      ),
    },
    "effects": results["effects"],
    "contrasts": results.get("contrasts", {}),
    "wall_seconds": results["seconds"]["total"],
  }


def run_study(config, vary: dict[str, list[str]], *, workdir: str, data_dir, tfds_dir: str):
  """Runs every point (all validated first) and writes the study (``write``); returns it."""
  planned = points(config, vary)
  cache_dir = os.path.join(workdir, "cache")
  summaries_ = []
  for index, (values, point) in enumerate(planned, start=1):
    name = point_name(values)
    logging.info("study [%d/%d]: %s", index, len(planned), name)
    results = experiment.run_experiment(
      point, os.path.join(workdir, name), data_dir=data_dir, tfds_dir=tfds_dir, cache_dir=cache_dir
    )
    summaries_.append(_point_summary(values, results, name))
  study = {"mapping": config.mapping, "vary": list(vary), "points": summaries_}
  write(study, workdir)
  return study


def markdown(study: dict) -> str:
  """study.md: per point and arm, Δ accuracy and Δ cross-entropy with their intervals."""
  fields = study["vary"]
  lines = [
    f"# Study: {study['mapping']}, varying {', '.join(fields)}",
    "",
    "Δ = arm − no_teacher, paired by student seed, 95% Student-t interval over the teachers; "
    "teacher: its accuracy on φ(target test) (mean ± std over teachers); reused: the point "
    "read its teachers from another point's checkpoint.",
    "",
    "| " + " | ".join(fields) + " | arm | Δ accuracy [95% CI] | Δ cross-entropy [95% CI] | "
    "verdict (acc / CE) | teachers × seeds | teacher on φ(test) | reused |",
    "|" + "---|" * (len(fields) + 7),
  ]
  for point in study["points"]:
    teacher = point["teacher"]
    score = teacher["on_phi_target_test_accuracy_mean"]
    score_text = (
      "n/a" if score is None else f"{score:.4f} ± {teacher['on_phi_target_test_accuracy_std']:.4f}"
    )
    labelled = {**point["effects"], **point["contrasts"]}
    for label, effect in labelled.items():
      acc, ce = effect["test_accuracy"], effect["test_cross_entropy"]
      lines.append(
        "| "
        + " | ".join(str(point["values"][f]) for f in fields)
        + f" | {label} | {report.interval_text(acc)} | {report.interval_text(ce)} | "
        f"{acc['verdict']} / {ce['verdict']} | {acc['teachers']} × {acc['seeds']} | "
        f"{score_text} | {'yes' if teacher['reused_checkpoint'] else 'no'} |"
      )
  return "\n".join(lines) + "\n"


def is_numeric(values: list) -> bool:
  """Whether every swept value is a number (not a bool)."""
  return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def log_axis(values: list) -> bool:
  """Whether the swept values are best drawn on a log axis (positive, spanning ≥ 10×)."""
  return is_numeric(values) and min(values) > 0 and max(values) / min(values) >= 10 - 1e-9


def write(study: dict, workdir: str) -> None:
  """study.json, study.md, study.png and the TensorBoard HParams (process 0 writes)."""
  if parallel.is_primary():
    files.write_json(os.path.join(workdir, "study.json"), study, indent=1)
    files.write_text(os.path.join(workdir, "study.md"), markdown(study))
  figures.study_effects(study, os.path.join(workdir, "study.png"))
  summaries.write_study_hparams(study, os.path.join(workdir, "tensorboard_study"))
