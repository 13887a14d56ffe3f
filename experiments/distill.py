"""Multi-domain distillation experiment: ``python -m experiments.distill --mapping=conv``.

``--mapping=<name>`` picks the experiment: ``experiments/configs/<name>.py`` when there is one
(vae, generated, generated_full, style), else ``default.py`` with that map φ (identity, noise, conv);
``--config=<file>`` picks a config file directly. Flags set the common values; any config value
can be set with ``--config.<name>=...`` (``--list_config`` lists them with their values and
meanings). Writes results.json, results.md, figures and TensorBoard event files to
``--workdir``.
"""

# ruff: noqa: E402 — launch.start_early runs before the imports that load JAX

import difflib
import importlib.util
import os
import sys

from experiments import launch  # no JAX: with --num_processes, start the others first

launch.start_early(sys.argv, "experiments.distill")

from absl import app  # the other processes import while this one does
from absl import flags
from ml_collections import config_flags

from distill_jax import data as data_lib
from distill_jax import experiment
from distill_jax import maps
from distill_jax import validation
from experiments import cli_setup
from experiments import config_help

CONFIG_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")

flags.adopt_module_key_flags(launch)  # --num_processes, --distributed in --help


def _config_file_for_mapping(argv: list[str]) -> list[str]:
  """``argv`` with ``--config=configs/<m>.py`` added for ``--mapping=<m>`` when that file exists
  and no ``--config`` is given, so that ``--mapping=vae`` runs the vae experiment as written in
  its config file."""
  if any(arg == "--config" or arg.startswith("--config=") for arg in argv[1:]):
    return argv
  mapping = launch.flag_value(argv, "mapping")
  path = os.path.join(CONFIG_FOLDER, f"{mapping}.py")
  if mapping not in (None, "default") and os.path.isfile(path):
    return [argv[0], f"--config={path}", *argv[1:]]
  return argv


def _config_files(argv: list[str]) -> list[str]:
  """The values of every ``--config=<file>`` in ``argv`` (the last one counts)."""
  return [arg.split("=", 1)[1] for arg in argv[1:] if arg.startswith("--config=")]


def _config_module(argv: list[str]):
  """The config file module that ``argv`` selects (default.py when none is given)."""
  files = _config_files(argv)
  path = files[-1].split(":", 1)[0] if files else os.path.join(CONFIG_FOLDER, "default.py")
  spec = importlib.util.spec_from_file_location("_selected_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _unknown_field_message(argv: list[str]) -> str | None:
  """Names the first ``--config.<path>`` whose path is not in the config, with close matches."""
  try:
    fields = sorted(_flat_fields(_config_module(argv).get_config().to_dict()))
  except Exception:  # noqa: BLE001 — a broken config file is reported by config_flags itself
    return None
  for arg in argv[1:]:
    if not arg.startswith("--config."):
      continue
    path = arg[len("--config.") :].split("=", 1)[0]
    if path in fields or any(field.startswith(path + ".") for field in fields):
      continue
    close = difflib.get_close_matches(path, fields, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join('--config.' + c for c in close)}?)" if close else ""
    return (
      f"--config.{path}: the config has no field {path!r}{hint}; --list_config lists every "
      "field with its value and meaning."
    )
  return None


def _unknown_mapping_message(mapping: str) -> str:
  """Names an unknown ``--mapping``, the close matches and where names come from."""
  names = maps.mapping_names()
  close = difflib.get_close_matches(mapping, names, n=3, cutoff=0.6)
  hint = f" (did you mean {', '.join(close)}?)" if close else ""
  return (
    f"--mapping={mapping}: unknown mapping{hint}; choose one of {', '.join(names)}, or register "
    "your own in a --config file (maps.register_map)."
  )


def _flat_fields(tree: dict, prefix: str = "") -> set[str]:
  fields = set()
  for name, value in tree.items():
    fields.add(prefix + name)
    if isinstance(value, dict):
      fields |= _flat_fields(value, prefix + name + ".")
  return fields


def _no_get_config_message(argv: list[str]) -> str:
  files = _config_files(argv)
  return (
    f"--config={files[-1] if files else '(default)'}: this config file has no get_config(); "
    "define get_config() returning an ml_collections.ConfigDict (e.g. extend "
    "experiments/configs/default.get_config())."
  )


def _config_file_message(argv: list[str], error: OSError) -> str:
  files = _config_files(argv)
  path = files[-1] if files else "(default)"
  if files and not os.path.isfile(path.split(":", 1)[0]):
    return (
      f"--config={path}: no such config file; pass one of experiments/configs/*.py "
      f"(e.g. --config=experiments/configs/style.py)."
    )
  cause = error
  while cause.__cause__ is not None or cause.__context__ is not None:
    cause = cause.__cause__ or cause.__context__
  return f"--config={path}: cannot load this config file: {type(cause).__name__}: {cause}"


launch.wait_for_go()  # processes 1 … P − 1 read their flags once process 0 has read its own
sys.argv = _config_file_for_mapping(sys.argv)
try:
  _CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(os.path.dirname(__file__), "configs", "default.py"),
    "Experiment configuration file (default: the one --mapping picks). Any field can be set "
    "with --config.<field>=<value>; --list_config prints them all with their values and "
    "meanings.",
    lock_config=True,
  )
except (AttributeError, KeyError) as _error:
  # config_flags reads the --config.<field> overrides in sys.argv right here; an unknown field
  # would end a long traceback with just AttributeError: "'field'".
  raise SystemExit(f"error: {_unknown_field_message(sys.argv) or _error}") from None
_MAPPING = flags.DEFINE_string(
  "mapping",
  None,
  "The experiment, by its map φ (default: the config file's, identity): a built-in one or one "
  "a --config file registers (maps.register_map), checked once that file is loaded. identity / "
  "noise / "
  "conv: a Fashion-MNIST teacher taught through φ (configs/default.py); vae: an MNIST teacher "
  "through the learned φ_vae (configs/vae.py); generated: the talk's GeneratedMNIST, a teacher "
  "trained on 70 VAE digits drawn from each FashionMNIST-Small image (configs/generated.py); "
  "generated_full: the ablation, GeneratedMNIST = φ_vae(all of Fashion-MNIST) "
  "(configs/generated_full.py); style: Imagenette through VGG-19 style transfer "
  "(configs/style.py). With --config=<file>, only sets config.mapping.",
)
_LIST_CONFIG = flags.DEFINE_bool(
  "list_config",
  False,
  "Print every --config.<field> of the selected experiment (after --mapping and the flags "
  "below) with its value and one-line meaning, from the config files' comments; then exit.",
)
_EPOCHS = flags.DEFINE_integer("epochs", None, "Student epochs (default: config, 100).")
_TEACHER_EPOCHS = flags.DEFINE_integer("teacher_epochs", None, "Teacher epochs (default 10).")
_SEEDS = flags.DEFINE_integer("seeds", None, "Student seeds per teacher and arm (default 5).")
_TEACHERS = flags.DEFINE_integer(
  "teachers", None, "Teachers K, seeds teacher.seed … + K − 1 (config teacher.count; default 5)."
)
_LAM = flags.DEFINE_list("lam", None, "Distillation weight(s) λ >= 0, e.g. 1 or 0.5,1,2.")
_TEMPERATURE = flags.DEFINE_list("temperature", None, "Temperature(s) T > 0, e.g. 1 or 1,2,4.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (default runs/<mapping>).")
_CACHE_DIR = flags.DEFINE_string(
  "cache_dir",
  None,
  "Where trained teachers and VAEs are kept and reused (default: the workdir). Point several "
  "experiments at one folder, e.g. runs/cache, to share them.",
)
_DATA_DIR = flags.DEFINE_string(
  "data_dir",
  None,
  "Folder holding mnist/ and fashion_mnist/ with the official IDX .gz files and "
  "imagenette/{train,val}/<wnid>/*.JPEG (default: $DISTILL_DATA_DIR; if neither is set, "
  "tensorflow-datasets downloads them).",
)
_TFDS_DIR = flags.DEFINE_string(
  "tfds_dir",
  None,
  "Where tfds writes prepared datasets (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).",
)


def _floats(name: str, values: list[str]) -> tuple[float, ...]:
  try:
    return tuple(float(v) for v in values)
  except ValueError:
    raise SystemExit(
      cli_setup.usage_error(f"--{name} takes numbers separated by commas, got {','.join(values)!r}")
    ) from None


def _config_from_flags():
  """The selected config file with ``--mapping`` and the other flags applied."""
  config = _CONFIG.value
  try:
    config.mapping  # noqa: B018 — config_flags defers a bad --config file's error to first use
  except OSError as error:
    raise SystemExit(f"error: {_config_file_message(sys.argv, error)}") from None
  if _MAPPING.value is not None and _MAPPING.value not in maps.mapping_names():
    raise SystemExit(f"error: {_unknown_mapping_message(_MAPPING.value)}")
  with config.unlocked():
    if _MAPPING.value is not None:
      config.mapping = _MAPPING.value
    if _EPOCHS.value is not None:
      config.student.epochs = _EPOCHS.value
    if _TEACHER_EPOCHS.value is not None:
      config.teacher.epochs = _TEACHER_EPOCHS.value
    if _SEEDS.value is not None:
      config.seeds = _SEEDS.value
    if _TEACHERS.value is not None:
      config.teacher.count = _TEACHERS.value
    if _LAM.value is not None:
      config.lams = _floats("lam", _LAM.value)
    if _TEMPERATURE.value is not None:
      config.temperatures = _floats("temperature", _TEMPERATURE.value)
  return config


def main(argv):
  if len(argv) > 1:
    raise SystemExit(cli_setup.usage_error(f"unexpected arguments: {' '.join(argv[1:])}"))
  if _LIST_CONFIG.value:  # before any process is launched or any work done
    print(config_help.describe(_config_from_flags()))
    return
  launch.launch_or_join("experiments.distill")
  cli_setup.setup()
  config = _config_from_flags()
  try:
    validation.validate_config(config)
  except ValueError as error:  # one line, no help text: the message names the value and the fix
    raise SystemExit(f"error: {error}") from None
  workdir = _WORKDIR.value or os.path.join("runs", config.mapping)
  tfds_dir = _TFDS_DIR.value or os.environ.get(
    "TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets")
  )
  data_dir = data_lib.resolve_data_dir(_DATA_DIR.value)
  cli_setup.run_reported(
    lambda: experiment.run_experiment(
      config, workdir, data_dir=data_dir, tfds_dir=tfds_dir, cache_dir=_CACHE_DIR.value
    ),
    folders=(workdir, _CACHE_DIR.value),
  )


def _parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a ``--config`` file's failures and ``--config.<field>`` typos as
  one ``error:`` line (config_flags reads them only here when ``--config=`` is given)."""
  try:
    return app.parse_flags_with_usage(argv)
  except (AttributeError, KeyError) as error:
    if "has no attribute 'get_config'" in str(error):
      raise SystemExit(f"error: {_no_get_config_message(argv)}") from None
    raise SystemExit(f"error: {_unknown_field_message(argv) or error}") from None
  except (OSError, SyntaxError) as error:
    raise SystemExit(f"error: {_config_file_message(argv, error)}") from None


if __name__ == "__main__":
  launch.finish(lambda: app.run(main, flags_parser=_parse_flags))
