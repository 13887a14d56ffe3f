"""A run's results.json without its per-run curves: the small file a docs page quotes.

  python -m experiments.publish_run --run=runs/conv --out=docs/results/main_command.json

keeps everything of ``<run>/results.json`` (its provenance, configuration, teachers, φ, effects,
contrasts, wall times) except the curves: each arm's per-run, per-epoch metrics become the arm's
mean scores (``effects.arm_scores``: over the last ``effect_epochs`` epochs and the final one),
and the teachers' and the VAE's training curves are dropped. The numbers are copied, not
recomputed, so a page that quotes the published file quotes the run.
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags

from distill_jax import effects as effects_lib
from distill_jax import files

_RUN = flags.DEFINE_string("run", None, "A finished run's workdir (it holds results.json).")
_OUT = flags.DEFINE_string("out", None, "The file to write, e.g. docs/results/<name>.json.")

CURVES = "history"  # the teachers' and the VAE's per-epoch curves


def published(results: dict) -> dict:
  """``results`` with each arm's runs replaced by its mean scores and the curves dropped."""
  if "arms" not in results or "effects" not in results:
    raise ValueError("not the results.json of an experiment (no 'arms' or 'effects')")
  window = results.get("config", {}).get("effect_epochs", 1)
  out = {key: value for key, value in results.items() if key != "arms"}
  out["scores"] = effects_lib.arm_scores(results["arms"], window)
  for part in ("teacher", "phi"):
    if isinstance(out.get(part), dict):
      out[part] = {key: value for key, value in out[part].items() if key != CURVES}
  return out


def publish(run: str, out: str) -> dict:
  """Reads ``<run>/results.json``, writes ``published`` of it to ``out`` and returns it."""
  path = os.path.join(run, "results.json")
  try:
    with open(path, encoding="utf-8") as file:
      results = json.load(file)
  except (OSError, ValueError) as error:
    raise ValueError(f"--run={run}: cannot read its results.json ({error})") from None
  try:
    summary = published(results)
  except ValueError as error:
    raise ValueError(f"--run={run}: {error}") from None
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  files.write_json(out, summary, indent=1)
  return summary


def main(argv):
  if len(argv) > 1 or not _RUN.value or not _OUT.value:
    raise SystemExit(
      "error: give --run=<a run's workdir> and --out=<file.json>, no other arguments. "
      "Run with --helpshort for the flags."
    )
  try:
    publish(_RUN.value, _OUT.value)
  except ValueError as error:
    raise SystemExit(f"error: {error}.") from None
  print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
