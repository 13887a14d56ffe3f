"""--list_config: every config field, its value and its meaning, read from the config files."""

import importlib
import subprocess
import sys

import pytest

from experiments import config_help
from tests.conftest import REPO_ROOT

CONFIG_MODULES = ("default", "vae", "generated", "generated_full", "style", "style_gpu")


@pytest.mark.parametrize("name", CONFIG_MODULES)
def test_every_field_is_listed_with_its_value(name):
  config = importlib.import_module(f"experiments.configs.{name}").get_config()
  listing = config_help.describe(config).splitlines()
  flags = [line.split("=", 1)[0] for line in listing]
  leaves = [path for path, _ in config_help._leaves(config.to_dict())]
  assert flags == [f"--config.{path}" for path in leaves]
  assert f"--config.seeds={config.seeds!r}" in "\n".join(listing)


def test_meanings_come_from_the_config_comments():
  meanings = config_help.field_meanings()
  assert meanings["seeds"].startswith("student seeds per teacher and arm")
  assert meanings["teacher.count"].startswith("K teachers, trained at once with vmap")
  assert meanings["vae.sample"].startswith("φ_vae decodes the encoder mean")
  assert "peak step size" in meanings["optimizer.learning_rate"]
  # the first file that documents a field wins: default.py's meaning, not an override's note
  assert meanings["mapping"] == "a name of distill_jax.maps.mapping_names()"
  config = importlib.import_module("experiments.configs.default").get_config()
  line = next(x for x in config_help.describe(config).splitlines() if "learning_rate" in x)
  assert "peak step size" in line


def test_cli_lists_the_selected_experiment_and_does_nothing_else(tmp_path):
  result = subprocess.run(
    [sys.executable, "-m", "experiments.distill", "--mapping=vae", "--seeds=3", "--list_config",
     f"--workdir={tmp_path / 'run'}"],
    cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
  )  # fmt: skip
  assert result.returncode == 0, result.stderr[-2000:]
  flags = [line.split()[0] for line in result.stdout.splitlines()]
  for flag in ("--config.seeds=3", "--config.vae.latent_dim=16", "--config.mapping='vae'"):
    assert flag in flags
  assert not (tmp_path / "run").exists()
