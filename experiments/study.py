"""A study: one experiment swept over config values (``distill_jax.study``).

  python -m experiments.study --mapping=conv --vary=data.max_small --values=50,100,300,1000 \\
      --data_dir=../shared/data

runs the conv experiment (its config, as ``python -m experiments.distill --mapping=conv``) once
per value of ``data.max_small`` into ``<workdir>/data.max_small=<value>``, the teachers trained
once (a target-size sweep leaves their inputs unchanged) and reused through ``<workdir>/cache``,
then writes ``study.json``, ``study.md``, ``study.png`` (Δ accuracy and Δ cross-entropy with
interval bands against the swept value, one line per arm) and TensorBoard HParams
(``<workdir>/tensorboard_study``). Several ``--vary`` (each with its own ``--values``, in
order) sweep their grid. ``--set=<field>=<value>`` changes a config value at every point (e.g.
``--set=teacher.epochs=2``; a tuple in brackets, ``--set=student.hidden=[256]``). Rerunning the
same command resumes an interrupted study. λ and T are the fields ``lam`` and ``temperature``:

  python -m experiments.study --mapping=conv --vary=lam --values=0.1,0.3,1,3,10 \
      --vary=temperature --values=1,2,4,8 --data_dir=../shared/data

trains the 20 settings in one experiment (its ``lams`` × ``temperatures`` grid, one vmapped
program per arm) and also draws ``study_grid.png``, heatmaps over the grid. One process (no
``--num_processes``).
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from distill_jax import data as data_lib
from distill_jax import maps
from distill_jax import study as study_lib
from experiments import cli_setup
from experiments import configs

_MAPPING = flags.DEFINE_string(
  "mapping", "conv", "The experiment (its config file, as for experiments.distill)."
)
_VARY = flags.DEFINE_multi_string(
  "vary", [], "A config field to sweep, e.g. data.max_small (repeat for a grid)."
)
_VALUES = flags.DEFINE_multi_string(
  "values", [], "The swept values of the --vary of the same position, separated by commas."
)
_SET = flags.DEFINE_multi_string(
  "set", [], "<field>=<value>: a config value for every point, e.g. teacher.epochs=2."
)
_WORKDIR = flags.DEFINE_string(
  "workdir", None, "Output folder (default runs/study_<mapping>_<fields>)."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "As for experiments.distill (offline data).")
_TFDS_DIR = flags.DEFINE_string(
  "tfds_dir", None, "Prepared datasets (default $TFDS_DATA_DIR or ~/tensorflow_datasets)."
)


def main(argv):
  if len(argv) > 1:
    raise SystemExit(cli_setup.usage_error(f"unexpected arguments: {' '.join(argv[1:])}"))
  try:
    if _MAPPING.value not in maps.mapping_names():
      raise ValueError(
        f"--mapping={_MAPPING.value}: unknown mapping; choose one of "
        f"{', '.join(maps.mapping_names())}."
      )
    config = study_lib.apply_settings(configs.for_mapping(_MAPPING.value), _SET.value)
    vary = study_lib.sweep(_VARY.value, _VALUES.value)
    study_lib.points(config, vary)  # every point validated before any work
  except ValueError as error:
    raise SystemExit(cli_setup.usage_error(str(error))) from None
  cli_setup.setup()
  workdir = _WORKDIR.value or os.path.join(
    "runs", f"study_{config.mapping}_{'_'.join(vary).replace('.', '-')}"
  )
  tfds_dir = _TFDS_DIR.value or os.environ.get(
    "TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets")
  )
  data_dir = data_lib.resolve_data_dir(_DATA_DIR.value)
  cli_setup.run_reported(
    lambda: study_lib.run_study(
      config, vary, workdir=workdir, data_dir=data_dir, tfds_dir=tfds_dir
    ),
    folders=(workdir,),
  )
  print(f"study: {os.path.join(workdir, 'study.md')}")


if __name__ == "__main__":
  app.run(main)
