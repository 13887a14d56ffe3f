"""Studies: one experiment swept over config values, the effects drawn against the swept value.

A study varies one or more config fields (``data.max_small``, ``maps.noise.variance``,
``student.model``, ...) over given values; every combination (a *point*) is one experiment
(``experiment.run_experiment``) in ``<workdir>/<field>=<value>,...``. All points share
``<workdir>/cache``, whose checkpoints are keyed by what they were computed from, so a teacher
whose inputs a sweep does not change (e.g. a sweep over the target size |Small|, or over the
student) is trained once and reused by every point; a point that changes them (φ's strength,
the source set) trains its own. λ and T are swept as the fields ``lam`` and ``temperature``:
every combination of their values is one point, but all the points that differ only in them
are one experiment, whose ``lams`` × ``temperatures`` grid trains in one vmapped program.
Tuple fields take a bracketed value (``--set=student.hidden=[256]``).

For each point: every arm's effect against ``no_teacher`` (``effects``: paired by seed, 95%
interval over teachers), the with-φ-against-without-φ contrasts where the experiment has them,
and the teachers' score on φ(target test). ``write`` puts ``study.json``, ``study.md``,
``study.png`` (Δ accuracy and Δ cross-entropy against the swept value, interval bands, one
line per arm; for two swept fields also ``study_grid.png``, heatmaps over their grid) and
TensorBoard HParams (``<workdir>/tensorboard_study``) next to the points. A study interrupted
midway resumes: finished points reuse their saved runs, an unfinished one resumes from its
last saved epoch.
"""

from __future__ import annotations

import ast
import copy
import itertools
import os

from absl import logging

from distill_jax import effects as effects_lib
from distill_jax import experiment
from distill_jax import figures
from distill_jax import files
from distill_jax import parallel
from distill_jax import provenance
from distill_jax import report
from distill_jax import summaries
from distill_jax import validation


# The grid axes: a study's ``lam`` / ``temperature`` value at a point is one entry of the
# config's ``lams`` / ``temperatures`` grid, which the experiment trains in one program.
GRID_FIELDS = {"lam": "lams", "temperature": "temperatures"}

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
  if isinstance(current, (tuple, list)):
    return _parse_tuple(field, text, tuple(current), flag)
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
    "number, a bool, a name or a bracketed tuple such as [256, 128]."
  )


def _parse_tuple(field: str, text: str, current: tuple, flag: str) -> tuple:
  """A bracketed ``[a, b]`` / ``(a, b)`` / ``[]`` as a tuple of numbers or names; of the type
  of the field's current elements where it has some (ints for ``student.hidden``)."""
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError):
    value = None
  if not isinstance(value, (list, tuple)) or not all(
    isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value
  ):
    raise ValueError(
      f"{flag}={field}: {text!r} is not a tuple; give its elements in brackets, e.g. [256, 128] "
      "or [] (the field is a tuple)."
    )
  if current:
    kind = type(current[0])
    if kind is float and all(isinstance(v, (int, float)) for v in value):
      return tuple(float(v) for v in value)
    if not all(type(v) is kind for v in value):
      raise ValueError(
        f"{flag}={field}: {text!r} must hold elements of the type of the field's {current!r} "
        f"({kind.__name__})."
      )
  return tuple(value)


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


def _check_grid_fields(config, vary: dict) -> None:
  """A swept ``lam`` / ``temperature`` with the other grid axis of one value (or swept too):
  a config grid of several values would give each point several settings."""
  if not any(path in GRID_FIELDS for path in vary):
    return
  for path, grid_field in GRID_FIELDS.items():
    if path not in vary and len(config[grid_field]) != 1:
      raise ValueError(
        f"the config's {grid_field} holds {len(config[grid_field])} values; with --vary of the "
        f"other grid axis, sweep {path} too (--vary={path}) or set one value "
        f"(--set={grid_field}=[1])."
      )


def points(config, vary: dict[str, list[str]]) -> list[tuple[dict, object]]:
  """Every combination of the swept values, in order: ``[(values by field, config), ...]``,
  each config a copy of ``config`` with its values set (and validated); a ``GRID_FIELDS``
  value sets its grid to that one value (``experiments`` joins them again)."""
  if not vary:
    raise ValueError("a study needs at least one --vary field with its --values.")
  _check_grid_fields(config, vary)
  parsed = {}
  for path, texts in vary.items():
    if path in GRID_FIELDS:
      current = 1.0
    else:
      section, name = _field(config, path)
      current = section[name]
    if not texts:
      raise ValueError(f"--vary={path}: give its --values, e.g. --values=100,1000.")
    values = [parse_value(path, text, current) for text in texts]
    if len(set(map(repr, values))) != len(values):
      raise ValueError(f"--vary={path}: a value is given twice in {texts}.")
    parsed[path] = values
  out = []
  for combination in itertools.product(*parsed.values()):
    values = dict(zip(parsed, combination))
    point = copy.deepcopy(config)
    with point.unlocked():
      for path, value in values.items():
        if path in GRID_FIELDS:
          point[GRID_FIELDS[path]] = (value,)
        else:
          section, name = _field(point, path)
          section[name] = value
    validation.validate_config(point)
    out.append((values, point))
  return out


def experiments(planned: list[tuple[dict, object]]) -> list[tuple[dict, object, list[dict]]]:
  """The experiments that train ``points``: ``[(values of the other fields, config, [the
  points' values, ...]), ...]``, one per combination of the fields that are not
  ``GRID_FIELDS``, its config's ``lams`` × ``temperatures`` holding every swept λ and T."""
  groups: dict[str, tuple[dict, object, list[dict]]] = {}
  for values, point in planned:
    rest = {path: value for path, value in values.items() if path not in GRID_FIELDS}
    name = point_name(rest)
    if name not in groups:
      groups[name] = (rest, copy.deepcopy(point), [])
    groups[name][2].append(values)
  out = []
  for rest, config, members in groups.values():
    with config.unlocked():
      for path, grid_field in GRID_FIELDS.items():
        if any(path in values for values in members):
          config[grid_field] = tuple(dict.fromkeys(values[path] for values in members))
    out.append((rest, config, members))
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
    out[field] = [text for text in split_values(texts) if text.strip()]
  return out


def split_values(text: str) -> list[str]:
  """``text`` split at its commas outside brackets: ``"[],[256],[256,128]"`` → three values."""
  parts, depth, start = [], 0, 0
  for index, char in enumerate(text):
    if char in "[(":
      depth += 1
    elif char in "])":
      depth -= 1
    elif char == "," and depth == 0:
      parts.append(text[start:index])
      start = index + 1
  parts.append(text[start:])
  return parts


def point_name(values: dict) -> str:
  """A point's folder: ``data.max_small=100,seeds=5``; a tuple as ``256-128`` (``()``: ``-``)."""
  return ",".join(f"{path}={_value_name(value)}" for path, value in values.items())


def _value_name(value) -> str:
  if isinstance(value, tuple):
    return "-".join(map(str, value)) or "-"
  return str(value)


def at_setting(labelled: dict, lam: float, temperature: float, grid: bool) -> dict:
  """The entries of ``labelled`` (effects or contrasts of one experiment, keyed by
  ``summaries.run_label`` labels, ``"<a> vs <b>"`` for contrasts) at one (λ, T) of its grid,
  keyed by their arms alone (``teacher_phi``, ``teacher_phi vs teacher``)."""
  suffix = summaries.run_label("", lam, temperature, grid=grid)
  out = {}
  for label, entry in labelled.items():
    parts = label.split(" vs ")
    if all(part.endswith(suffix) for part in parts):
      out[" vs ".join(part[: len(part) - len(suffix)] for part in parts)] = entry
  return out


def _point_summary(values: dict, results: dict, folder: str) -> dict:
  """A point of the study from its experiment's results (at the point's λ and T when the
  experiment trained a grid of them)."""
  lams, temperatures = results["config"]["lams"], results["config"]["temperatures"]
  lam, temperature = values.get("lam", lams[0]), values.get("temperature", temperatures[0])
  grid = len(lams) * len(temperatures) > 1  # the arms' labels then name their (λ, T)
  effects = at_setting(results["effects"], lam, temperature, grid)
  contrasts = at_setting(results.get("contrasts", {}), lam, temperature, grid)
  phi = results.get("phi", {})
  scores = effects_lib.arm_scores(
    at_setting(results["arms"], lam, temperature, grid), results["config"].get("effect_epochs", 1)
  )
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
    "effects": effects,
    "contrasts": contrasts,
    # each arm's test scores, averaged over its runs: over the last effect_epochs and the last
    "scores": scores,
    "wall_seconds": results["seconds"]["total"],
  }


def run_study(config, vary: dict[str, list[str]], *, workdir: str, data_dir, tfds_dir: str):
  """Runs every point (all validated first) and writes the study (``write``); returns it."""
  planned = experiments(points(config, vary))
  cache_dir = os.path.join(workdir, "cache")
  summaries_ = []
  for index, (rest, point, members) in enumerate(planned, start=1):
    grid = [path for path in GRID_FIELDS if path in vary]
    name = point_name({**rest, **({"grid": "+".join(grid)} if grid else {})})
    logging.info("study [%d/%d]: %s (%d points)", index, len(planned), name, len(members))
    results = experiment.run_experiment(
      point, os.path.join(workdir, name), data_dir=data_dir, tfds_dir=tfds_dir, cache_dir=cache_dir
    )
    summaries_.extend(_point_summary(values, results, name) for values in members)
  study = {
    "mapping": config.mapping,
    "vary": list(vary),
    "commit": provenance.code_commit(),
    "machine": provenance.machine(),
    "points": summaries_,
  }
  write(study, workdir)
  return study


def markdown(study: dict) -> str:
  """study.md: per point and arm, Δ accuracy and Δ cross-entropy with their intervals."""
  fields = study["vary"]
  lines = [
    f"# Study: {study['mapping']}, varying {', '.join(fields)}",
    "",
    *(
      [f"Commit {study.get('commit') or 'unknown'}; {study['machine']}.", ""]
      if study.get("machine")
      else []
    ),
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
  """study.json, study.md, study.png (and for two swept fields study_grid.png, heatmaps over
  their grid) and the TensorBoard HParams (process 0 writes)."""
  if parallel.is_primary():
    files.write_json(os.path.join(workdir, "study.json"), study, indent=1)
    files.write_text(os.path.join(workdir, "study.md"), markdown(study))
  figures.study_effects(study, os.path.join(workdir, "study.png"))
  if len(study["vary"]) == 2:
    figures.study_grid(study, os.path.join(workdir, "study_grid.png"))
  summaries.write_study_hparams(study, os.path.join(workdir, "tensorboard_study"))
