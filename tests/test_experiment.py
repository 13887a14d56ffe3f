"""Tiny end-to-end experiments (few epochs, small subsets of the real data) and the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from distill_jax import experiment
from distill_jax import provenance
from distill_jax import validation
from distill_jax.maps import style as style_maps
from tests import forked_cli
from tests.conftest import REPO_ROOT

CONFIG_FILES = ("default", "vae", "generated", "generated_full", "style", "style_gpu")


def experiment_config(mapping):
  """What ``--mapping=<mapping>`` runs: its config file, or default.py with that map."""
  import importlib

  name = mapping if mapping in CONFIG_FILES else "default"
  config = importlib.import_module(f"experiments.configs.{name}").get_config()
  config.mapping = mapping
  return config


def tiny_config(mapping):
  config = experiment_config(mapping)
  config.seeds = 2
  config.teacher.count = 1
  config.teacher.epochs = 1
  config.teacher.hidden = (32,)
  config.student.epochs = 3
  config.data.max_big = 2000
  config.data.max_small = 200
  config.data.max_test = 1000
  config.eval_batch_size = 500
  config.checkpoint_every = 2
  if "generated" in config:  # 200 Small images × 10 draws
    config.generated.samples_per_image = 10
    config.generated.split = (1_400, 200, 400)
  return config


@pytest.fixture(scope="module")
def tfds_dir(shared_tfds_dir):
  return shared_tfds_dir


def test_conv_end_to_end_and_rerun_reuses_work(shared_data_dir, tfds_dir, tmp_path):
  config = tiny_config("conv")
  config.teacher.count = 2  # 2 teachers × 2 seeds for teacher_phi, paired with no_teacher
  results = experiment.run_experiment(
    config, str(tmp_path), data_dir=shared_data_dir, tfds_dir=tfds_dir
  )
  assert list(results["arms"]) == ["no_teacher", "teacher_phi"]  # conv changes the shape
  for name in ("results.json", "results.md", "test_accuracy.png", "test_cross_entropy.png"):
    assert (tmp_path / name).stat().st_size > 0
  saved = json.loads((tmp_path / "results.json").read_text())
  for entry in saved["arms"].values():
    acc = np.asarray(entry["test_accuracy"])
    assert acc.shape == (len(entry["seeds"]), 3) and np.all(np.isfinite(acc))
  assert saved["arms"]["teacher_phi"]["teachers"] == [0, 0, 1, 1]
  assert saved["config"]["maps"] == {"conv": {"dilation": 2}}  # not the other maps' options
  assert saved["provenance"]["commit"] == provenance.code_commit()  # where the numbers came from
  # student_seeds = per_teacher: teacher k teaches seeds 2k, 2k + 1; no_teacher runs all four.
  assert saved["arms"]["teacher_phi"]["seeds"] == [0, 1, 2, 3]
  assert saved["arms"]["no_teacher"]["seeds"] == [0, 1, 2, 3]
  effect = saved["effects"]["teacher_phi"]["test_accuracy"]
  assert effect["teachers"] == 2 and effect["seeds"] == 2 and effect["unit"] == "teacher"
  assert effect["last_epochs"] == min(config.effect_epochs, config.student.epochs)  # 3 of 3
  assert effect["verdict"] in ("holds", "fails", "inconclusive") and len(effect["per_teacher"]) == 2
  assert "| teacher_phi | " in (tmp_path / "results.md").read_text()
  assert (tmp_path / "teacher_gains.png").stat().st_size > 0
  assert len(saved["teacher"]["test_accuracy"]) == 2 and saved["teacher"]["seeds"] == [0, 1]
  assert 0.1 < saved["teacher"]["test_accuracy_mean"] <= 1.0
  assert saved["teacher"]["evaluated_on"] == "phi(fashion_mnist test)"
  assert not saved["teacher"]["reused_checkpoint"]
  # TensorBoard: a run per teacher and per student run, each arm's mean, the figures; the
  # teachers' curves end at their final scores (tests/test_summaries.py reads every value back).
  board = tmp_path / "tensorboard"
  assert sorted(os.listdir(board)) == ["figures", "no_teacher", "teacher", "teacher_phi"]
  assert sorted(os.listdir(board / "teacher_phi")) == ["mean", "t0_s0", "t0_s1", "t1_s2", "t1_s3"]
  assert sorted(os.listdir(board / "teacher")) == ["k0", "k1"]
  history = saved["teacher"]["history"]["test_accuracy"]
  assert [row[-1] for row in history] == pytest.approx(saved["teacher"]["test_accuracy"])
  for folder in (board / "teacher" / "k0", board / "teacher_phi" / "t1_s2"):  # one file each
    assert len([name for name in os.listdir(folder) if name.startswith("events.")]) == 1
  events = sorted(board.rglob("events.*"))

  again = experiment.run_experiment(
    config, str(tmp_path), data_dir=shared_data_dir, tfds_dir=tfds_dir
  )
  assert again["teacher"]["reused_checkpoint"]
  assert sorted(board.rglob("events.*")) == events  # a finished run is not written twice
  for arm, entry in results["arms"].items():
    np.testing.assert_array_equal(again["arms"][arm]["test_accuracy"], entry["test_accuracy"])


def test_noise_has_teacher_arm_and_grid(shared_data_dir, tfds_dir, tmp_path):
  config = tiny_config("noise")
  config.lams = (0.5, 1.0)
  config.student.epochs = 2
  config.teacher.train_on = "source"  # a teacher of clean images, taught through noisy φ(x)
  results = experiment.run_experiment(
    config, str(tmp_path), data_dir=shared_data_dir, tfds_dir=tfds_dir
  )
  assert list(results["arms"]) == [
    "no_teacher",
    "teacher[lam=0.5,T=1]",
    "teacher[lam=1,T=1]",
    "teacher_phi[lam=0.5,T=1]",
    "teacher_phi[lam=1,T=1]",
  ]
  for entry in results["arms"].values():
    assert entry["seeds"] == [0, 1]
    assert np.all(np.isfinite(entry["test_cross_entropy"]))
  assert results["teacher"]["trained_on"] == "fashion_mnist Big"
  assert results["teacher"]["evaluated_on"] == "fashion_mnist test"
  assert list(results["contrasts"]) == [  # through φ against without φ, setting by setting
    "teacher_phi[lam=0.5,T=1] vs teacher[lam=0.5,T=1]",
    "teacher_phi[lam=1,T=1] vs teacher[lam=1,T=1]",
  ]
  assert "| with φ vs without φ |" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize(
  "mapping,change,match",
  [
    ("identity", lambda c: setattr(c, "mapping", "blur"), "unknown mapping 'blur'"),
    ("identity", lambda c: setattr(c, "lams", (-1.0,)), "lam must be finite and >= 0"),
    (
      "identity",
      lambda c: setattr(c, "temperatures", (0.0,)),
      "temperature must be finite and > 0",
    ),
    ("identity", lambda c: setattr(c, "seeds", 0), "seeds must be >= 1"),
    ("identity", lambda c: setattr(c.student, "model", "resnet"), "unknown student model"),
    ("identity", lambda c: setattr(c, "source_dataset", "cifar"), "unknown source dataset"),
    ("identity", lambda c: setattr(c, "target_dataset", "generated_mnist"), "unknown target"),
    (
      "identity",
      lambda c: setattr(c, "source_dataset", "generated_mnist"),
      "needs mapping 'generated' or 'generated_full'",
    ),
    ("vae", lambda c: setattr(c, "source_dataset", "generated_mnist"), "needs mapping 'generated'"),
    ("generated", lambda c: setattr(c, "source_dataset", "mnist"), "exactly when the mapping"),
    ("generated", lambda c: setattr(c.generated, "samples_per_image", 0), "samples_per_image"),
    ("generated", lambda c: setattr(c.generated, "pixels", "binary"), "unknown generated.pixels"),
    ("generated", lambda c: setattr(c.generated, "split", (1, 2)), "three ints"),
    ("generated", lambda c: setattr(c.generated, "split", (60_000, 0, 10_000)), "three ints"),
    (
      "generated",
      lambda c: setattr(c.generated, "split", (59_000, 1_000, 9_000)),
      "adding up to 2,000",
    ),
    ("generated", lambda c: setattr(c.vae, "latent_dim", 0), "vae:"),
    ("vae", lambda c: setattr(c.vae, "prior_std", 0.0), "prior_std"),
    ("vae", lambda c: setattr(c.vae, "steps_per_call", 0), "steps_per"),
    ("vae", lambda c: setattr(c.vae, "figure_latent_dim", 3), "figure_latent_dim must be 2"),
    ("vae", lambda c: setattr(c.vae.optimizer, "learning_rate", 0.0), "vae.optimizer"),
    ("vae", lambda c: setattr(c, "target_dataset", "mnist"), "φ_vae translates Fashion-MNIST"),
    ("identity", lambda c: setattr(c.teacher, "train_on", "both"), "teacher.train_on must be"),
    ("identity", lambda c: setattr(c.student, "eval_every", 0), "student.eval_every must be >= 1"),
    ("identity", lambda c: setattr(c.teacher.optimizer, "name", "adagrad"), "teacher.optimizer"),
    ("conv", lambda c: setattr(c.teacher, "train_on", "source"), "cannot read φ"),
    ("conv", lambda c: setattr(c.maps.conv, "size", 3), "config.maps.conv"),
    ("style", lambda c: setattr(c, "target_dataset", "fashion_mnist"), "Imagenette experiments"),
    ("style", lambda c: setattr(c.style, "pool", "min"), "style.pool"),
    # Derived values: checked before any data is read or any model trained.
    ("conv", lambda c: setattr(c.student, "batch_size", 5000), "Small has 200 examples"),
    ("conv", lambda c: setattr(c.teacher, "batch_size", 2001), "Big has 2,000 examples"),
    (
      "conv",
      lambda c: (setattr(c, "devices_per_run", 2), setattr(c.student, "batch_size", 25)),
      "across 2 devices per run",
    ),
    ("conv", lambda c: setattr(c.maps.conv, "dilation", 20), "nothing is left"),
    ("conv", lambda c: setattr(c.data, "max_small", -5), r"data.max_small = -5: give a number"),
    ("conv", lambda c: setattr(c.data, "max_small", 0), r"max_small = 0.*leave it unset"),
    ("conv", lambda c: setattr(c.data, "max_test", 0), r"data.max_test = 0"),
    (
      "conv",
      lambda c: setattr(c.data, "max_small", 3000),
      r"data.max_small = 3000: fashion_mnist Small holds only 1,000 images; raise "
      r"data.small_pool to at least 3000",
    ),
    ("conv", lambda c: setattr(c.data, "small_pool", 60_000), r"data.small_pool = 60000: give"),
    ("vae", lambda c: setattr(c.data, "small_pool", 2000), "leave data.small_pool at 1000"),
    ("conv", lambda c: setattr(c.maps.conv, "dilation", -1), "dilation must be an int >= 1"),
    ("conv", lambda c: setattr(c.maps.conv, "dilation", 0), "dilation must be an int >= 1"),
    ("conv", lambda c: setattr(c, "lams", (float("inf"),)), "lam must be finite"),
    ("conv", lambda c: setattr(c, "temperatures", (float("inf"),)), "temperature must be finite"),
    ("conv", lambda c: setattr(c, "num_devices", -1), "num_devices must be an int from 1 to 2"),
    ("conv", lambda c: setattr(c, "num_devices", 3), "num_devices must be an int from 1 to 2"),
    (
      "conv",
      lambda c: (setattr(c, "devices_per_run", 2), setattr(c, "eval_batch_size", 333)),
      "eval_batch_size = 333",
    ),
    ("noise", lambda c: setattr(c.maps.noise, "variance", float("inf")), "variance must be finite"),
    ("vae", lambda c: setattr(c.vae, "batch_size", 5000), "vae.batch_size = 5000"),
    (
      "vae",
      lambda c: (setattr(c, "devices_per_run", 2), setattr(c.vae, "batch_size", 15)),
      "across 2 devices per run",
    ),
    ("conv", lambda c: setattr(c, "devices_per_run", 3), "devices_per_run must be a whole number"),
    ("conv", lambda c: setattr(c, "devices_per_run", 0), "devices_per_run must be a whole number"),
  ],
)
def test_bad_config_values(mapping, change, match):
  config = tiny_config(mapping)
  validation.validate_config(config)  # the tiny config itself is fine
  change(config)
  with pytest.raises(ValueError, match=match) as raised:
    validation.validate_config(config)
  assert "\n" not in str(raised.value)  # one line: the value and its fix


def _cli(*args, timeout=120, fresh_process=False, **env_vars):
  """``python -m experiments.distill *args``: forked from preloaded modules (``forked_cli``) for
  the cases that stop before any work, or with ``fresh_process`` a new interpreter."""
  env = dict(os.environ, XLA_FLAGS="", DISTILL_DATA_DIR="", **env_vars)
  if not fresh_process:
    return forked_cli.run(
      "experiments.distill", list(args), env=env, cwd=str(REPO_ROOT), timeout=timeout
    )
  return subprocess.run(
    [sys.executable, "-m", "experiments.distill", *args],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=timeout,
    env=env,
  )


@pytest.mark.parametrize(
  "args,match",
  [
    (["--mapping=blur"], "--mapping=blur: unknown mapping; choose one of conv, generated"),
    (["--mapping=cnv"], "--mapping=cnv: unknown mapping (did you mean conv?)"),
    (["--mapping=conv", "--lam=-1"], "lam must be finite and >= 0"),
    (["--mapping=conv", "--temperature=abc"], "--temperature takes numbers"),
    (["--mapping=conv", "--seeds=0"], "seeds must be >= 1"),
    (["--config.num_seeds=2"], "no field 'num_seeds' (did you mean --config.seeds"),
    (["--config.teacher.epoch=3"], "did you mean --config.teacher.epochs"),
    (["--config=experiments/configs/nope.py"], "nope.py: no such config file"),
    (["--config=nope.py", "--config.seeds=2"], "nope.py: no such config file"),
    (["--config=tests/test_experiment.py"], "this config file has no get_config()"),
    # --mapping=vae runs configs/vae.py (its vae section exists and is checked) ...
    (["--mapping=vae", "--config.vae.epochs=0"], "vae: latent_dim, epochs"),
    # ... while the fixed maps' default.py has no vae section.
    (["--mapping=conv", "--config.vae.epochs=3"], "no field 'vae.epochs'"),
  ],
)
def test_cli_rejects_bad_flags(args, match):
  result = _cli(*args)
  assert result.returncode != 0
  assert match in result.stderr
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
  "args,match",
  [
    (["--mapping=conv", "--config.student.batch_size=5000"], "Small has 1,000 examples"),
    (["--mapping=conv", "--lam=inf"], "lam must be finite"),
    (["--mapping=conv", "--config.maps.conv.dilation=20"], "nothing is left"),
    (["--mapping=conv", "--config.num_devices=-1"], "num_devices must be an int from 1"),
    (["--mapping=conv", "--num_processes=0"], "--num_processes must be >= 1"),
    (["--mapping=conv", "--num_processes=2", "--distributed"], "give one of them"),
    (["--mapping=conv", "--distributed"], "no jax.distributed job found to join"),
    (["--mapping=conv", "--lam=1,,2"], "--lam takes numbers separated by commas, got '1,,2'"),
    (["--mapping=conv", "stray"], "unexpected arguments: stray. Run with --helpshort"),
    (["--mapping=conv", "--config.data.max_small=-5"], "data.max_small = -5: give a number"),
  ],
)
def test_cli_config_errors_are_one_line_before_any_work(args, match, tmp_path):
  """The error alone (no help text), and no data prepared or model trained before it."""
  result = _cli(*args, f"--workdir={tmp_path / 'run'}", f"--tfds_dir={tmp_path / 'tfds'}")
  assert result.returncode != 0
  assert result.stderr.strip().splitlines() == [result.stderr.strip().splitlines()[-1]]
  assert match in result.stderr and result.stderr.startswith("error: ")
  assert not (tmp_path / "tfds").exists() and not (tmp_path / "run").exists()


def test_cli_bad_heartbeat_timeout_is_one_line_before_joining(tmp_path):
  job = {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1", "JAX_NUM_PROCESSES": "2"}
  result = _cli(
    "--mapping=conv", f"--workdir={tmp_path / 'run'}", fresh_process=True, JAX_PROCESS_ID="0",
    DISTILL_HEARTBEAT_TIMEOUT_S="soon", **job,
  )  # fmt: skip
  assert result.returncode != 0
  assert result.stderr.strip() == (
    "error: $DISTILL_HEARTBEAT_TIMEOUT_S='soon': give a whole number of seconds >= 1."
  )
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("flag", ["--workdir", "--cache_dir", "--tfds_dir"])
def test_cli_unusable_folder_is_one_line(flag, tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  folders = {
    "--workdir": tmp_path / "run",
    "--cache_dir": tmp_path / "cache",
    "--tfds_dir": tmp_path / "tfds",
  }
  folders[flag] = blocker / "inside"
  result = _cli("--mapping=conv", *(f"{name}={path}" for name, path in folders.items()), timeout=60)
  assert result.returncode != 0 and "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: ") and "a part of the path is a file" in last
  assert flag.lstrip("-") in last


def test_cli_missing_data_dir_fails_fast_with_fix(tmp_path):
  result = _cli(
    "--mapping=identity",
    f"--data_dir={tmp_path / 'nowhere'}",
    f"--workdir={tmp_path / 'run'}",
    f"--tfds_dir={tmp_path / 'tfds'}",
    timeout=60,
  )
  assert result.returncode != 0
  assert "nowhere" in result.stderr and "DISTILL_DATA_DIR" in result.stderr


def tiny_vae_config(mapping):
  config = tiny_config(mapping)
  config.teacher.epochs, config.teacher.hidden, config.student.epochs = 1, (32,), 2
  config.vae.epochs, config.vae.figure_epochs, config.vae.latent_dim = 1, 1, 4
  config.vae.encoder_hidden, config.vae.decoder_hidden = (32,), (32,)
  return config


def test_vae_map_end_to_end(shared_data_dir, tfds_dir, tmp_path):
  config = tiny_vae_config("vae")
  workdir, cache_dir = tmp_path / "run", str(tmp_path / "cache")
  results = experiment.run_experiment(
    config, str(workdir), data_dir=shared_data_dir, tfds_dir=tfds_dir, cache_dir=cache_dir
  )
  assert list(results["arms"]) == ["no_teacher", "teacher", "teacher_phi"]
  assert results["teacher"]["trained_on"] == "mnist Big"
  assert results["teacher"]["checkpoint"].startswith(cache_dir)
  assert np.isfinite(results["phi"]["test_neg_elbo"])
  assert 0.0 <= results["phi"]["teacher_on_phi_target_test_accuracy_mean"] <= 1.0
  for name in ("vae_translations.png", "vae_latent_grid.png", "results.md"):
    assert (workdir / name).stat().st_size > 0
  assert len(results["phi"]["history"]["test_neg_elbo"]) == config.vae.epochs  # its curves
  assert (workdir / "tensorboard" / "vae").is_dir()
  vaes = [name for name in os.listdir(os.path.join(cache_dir, "vae")) if name != ".locks"]
  assert len(vaes) == 2  # the map's VAE and the 2-D one
  again = experiment.run_experiment(
    config,
    str(tmp_path / "other"),
    data_dir=shared_data_dir,
    tfds_dir=tfds_dir,
    cache_dir=cache_dir,
  )  # another workdir, same cache: VAE and teacher reused, students retrained the same
  assert again["phi"]["reused_checkpoint"] and again["teacher"]["reused_checkpoint"]
  np.testing.assert_array_equal(
    again["arms"]["teacher_phi"]["test_accuracy"], results["arms"]["teacher_phi"]["test_accuracy"]
  )


@pytest.fixture(scope="module")
def generated_cache_dir(tmp_path_factory):
  """One cache for both GeneratedMNIST recipes: they share the tiny VAE (trained once)."""
  return str(tmp_path_factory.mktemp("generated_cache"))


def _run_generated(config, workdir, data_dir, tfds_dir, cache_dir) -> dict:
  """Runs a GeneratedMNIST experiment without the latent-grid VAE; checks what both share."""
  config.vae.figure_latent_dim = 0  # no latent grid: one VAE
  results = experiment.run_experiment(
    config, str(workdir), data_dir=data_dir, tfds_dir=tfds_dir, cache_dir=cache_dir
  )
  assert list(results["arms"]) == ["no_teacher", "teacher", "teacher_phi"]
  assert results["teacher"]["trained_on"] == "generated_mnist Big"
  assert results["teacher"]["evaluated_on"] == "generated_mnist test"
  assert not (workdir / "vae_latent_grid.png").exists()
  return results


def test_generated_end_to_end_from_small(shared_data_dir, tfds_dir, generated_cache_dir, tmp_path):
  """The talk's GeneratedMNIST at its sizes: 70 draws per FashionMNIST-Small image, every
  generated image made from Small, split 59,000 / 1,000 / 10,000."""
  from distill_jax import data as data_lib

  config = tiny_vae_config("generated")
  config.data.max_small = None  # all of FashionMNIST-Small: the talk's 1,000 × 70
  config.generated.samples_per_image = 70
  config.generated.split = (59_000, 1_000, 10_000)
  results = _run_generated(config, tmp_path, shared_data_dir, tfds_dir, generated_cache_dir)
  assert results["num_examples"] == {"big": 2000, "small": 1000, "test": 1000}  # data.max_*
  name = results["phi"]["generated_mnist"]
  vae_key = os.path.basename(results["phi"]["checkpoint"])
  assert name.startswith(f"vae_{vae_key}_small_")
  assert results["phi"]["generated_samples_per_image"] == 70

  provenance = {
    split: data_lib.generated_mnist_provenance(name, tfds_dir=tfds_dir, split=split)
    for split in ("big", "small", "test")
  }
  assert {split: len(p["label"]) for split, p in provenance.items()} == {
    "big": 59_000,
    "small": 1_000,
    "test": 10_000,
  }
  source = np.concatenate([p["source_index"] for p in provenance.values()])
  draw = np.concatenate([p["draw"] for p in provenance.values()])
  assert np.all((source >= 59_000) & (source < 60_000))  # FashionMNIST-Small only
  np.testing.assert_array_equal(np.bincount(source - 59_000), np.full(1_000, 70))
  assert len(np.unique((source - 59_000) * 70 + draw)) == 70_000  # 70 distinct draws each
  fashion_small_labels = data_lib.load(
    "fashion_mnist", data_dir=shared_data_dir, tfds_dir=tfds_dir, splits="small"
  )["small"].labels
  label = np.concatenate([p["label"] for p in provenance.values()])
  np.testing.assert_array_equal(label, fashion_small_labels[source - 59_000])

  # Independent draws: the 70 digits of one garment are not one image copied 70 times.
  test_images = data_lib.load_generated_mnist(
    name, generate=None, tfds_dir=tfds_dir, splits="test"
  )["test"][0]
  first = provenance["test"]["source_index"] == provenance["test"]["source_index"][0]
  assert first.sum() >= 2
  assert len(np.unique(test_images[first].reshape(first.sum(), -1), axis=0)) == first.sum()


def test_generated_full_end_to_end(shared_data_dir, tfds_dir, generated_cache_dir, tmp_path):
  config = tiny_vae_config("generated_full")
  results = _run_generated(config, tmp_path, shared_data_dir, tfds_dir, generated_cache_dir)
  assert results["num_examples"] == {"big": 2000, "small": 200, "test": 1000}
  vae_key = os.path.basename(results["phi"]["checkpoint"])
  assert results["phi"]["generated_mnist"] == f"vae_{vae_key}_mean"
  generated_dir = os.path.join(tfds_dir, "distill_generated_mnist", f"vae_{vae_key}_mean")
  assert os.path.isdir(generated_dir)  # the tfds dataset of this VAE

  # GeneratedMNIST's teacher on its own test set ≈ the same teacher on φ(Fashion test)
  # (uint8 rounding is the only difference; the first 1,000 test images in both).
  assert (
    abs(
      results["teacher"]["test_accuracy_mean"]
      - results["phi"]["teacher_on_phi_target_test_accuracy_mean"]
    )
    <= 0.01
  )


def test_imagenette_cnn_end_to_end_on_a_fake_tree(tmp_path):
  from tests.test_imagenette import write_tree

  root = write_tree(tmp_path / "data", per_class={"train": 6, "val": 2})
  config = tiny_config("noise")
  config.source_dataset = config.target_dataset = "imagenette"
  config.data.image_size, config.data.imagenette_small = 16, 20
  config.data.max_big = config.data.max_small = config.data.max_test = None
  config.eval_batch_size = 10
  for part in (config.teacher, config.student):
    part.model, part.features, part.dense, part.global_pool = "cnn", (4, 8), 16, True
  config.teacher.batch_size, config.student.batch_size = 10, 10
  config.teacher.steps_per_call = 1  # the CPU conv-net mode
  results = experiment.run_experiment(
    config, str(tmp_path / "run"), data_dir=str(root), tfds_dir=str(tmp_path / "tfds")
  )
  assert results["num_examples"] == {"big": 40, "small": 20, "test": 20}
  assert list(results["arms"]) == ["no_teacher", "teacher", "teacher_phi"]
  for entry in results["arms"].values():
    assert np.all(np.isfinite(entry["test_cross_entropy"]))


def test_style_end_to_end_on_a_fake_tree_caches_the_stylized_sets(tmp_path, caplog):
  from tests.test_imagenette import write_tree

  root = write_tree(tmp_path / "data", per_class={"train": 4, "val": 1})
  config = tiny_config("style")
  config.data.image_size, config.data.imagenette_small = 16, 10
  config.data.max_big = config.data.max_small = config.data.max_test = None
  config.eval_batch_size = 10
  config.teacher.batch_size, config.student.batch_size = 10, 10
  config.teacher.features, config.student.features = (4, 8), (4,)
  config.style.steps, config.style.batch_size = 2, 16
  config.style.style_layers, config.style.content_layers = ("relu1_1", "relu2_1"), ("relu2_1",)
  config.teacher.eval_size = 6  # of the 10 test images: only those are stylized
  config.student.epochs = 3
  config.student.eval_every = 2  # 3 epochs: scored after epochs 2 and 3
  run = dict(data_dir=str(root), tfds_dir=str(tmp_path / "tfds"), cache_dir=str(tmp_path / "c"))
  with caplog.at_level("WARNING"):
    results = experiment.run_experiment(config, str(tmp_path / "run"), **run)
  assert "RANDOM VGG-19" in caplog.text  # ranVGG is said in the logs ...
  assert results["phi"]["random_weights"]  # ... and in the results
  assert results["teacher"]["model"] == "cnn" and results["teacher"]["trained_on"].startswith(
    "phi("
  )
  assert list(results["arms"]) == ["no_teacher", "teacher", "teacher_phi"]
  assert results["teacher"]["num_test"] == results["phi"]["phi_target_test_size"] == 6
  assert results["num_examples"]["test"] == 10  # the students are scored on the whole test set
  accuracy = np.asarray(results["arms"]["teacher_phi"]["test_accuracy"], np.float64)
  assert np.isnan(accuracy[:, 0]).all() and np.isfinite(accuracy[:, 1:]).all()
  assert (tmp_path / "run" / "style_examples.png").stat().st_size > 0
  # Big, Small and the teacher's 6 test images were each stylized once and cached.
  (cache_folder,) = (tmp_path / "c" / "phi").iterdir()
  assert len(list(cache_folder.glob("*.npy"))) == 3
  again = experiment.run_experiment(config, str(tmp_path / "run2"), **run)
  assert len(list(cache_folder.glob("*.npy"))) == 3
  np.testing.assert_array_equal(
    again["arms"]["teacher_phi"]["test_accuracy"], results["arms"]["teacher_phi"]["test_accuracy"]
  )


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_every_config_file_validates_and_writes_out_its_values(name):
  import importlib

  config = importlib.import_module(f"experiments.configs.{name}").get_config()
  validation.validate_config(config)

  def no_none(tree, path=""):  # None only where it means "all" / "automatic"
    optional = ("steps_per_call", "eval_size", "max_big", "max_small", "max_test")
    for key, value in tree.items():
      if isinstance(value, dict):
        no_none(value, f"{path}{key}.")
      else:
        assert value is not None or key in optional, f"{path}{key} is None"

  no_none(config.to_dict())
  if name.startswith("style"):
    assert config.target_dataset == config.source_dataset == "imagenette"
    assert config.teacher.model == config.student.model == "cnn"


def test_several_style_image_files(tmp_path):
  from PIL import Image

  paths = []
  for number, colour in enumerate(((255, 0, 0), (0, 0, 255))):
    path = tmp_path / f"style{number}.png"
    Image.new("RGB", (40, 20), colour).save(path)
    paths.append(str(path))
  config = tiny_config("style")
  config.data.image_size = 8
  config.style.style_image = f"{paths[0]}, {paths[1]}"
  validation.validate_config(config)
  assert style_maps.style_image_paths(config) == paths
  images = style_maps.load_style_images(config)
  assert images.shape == (2, 8, 8, 3) and images.dtype == np.float32
  np.testing.assert_allclose(images[0, ..., 0], 1.0)  # red
  np.testing.assert_allclose(images[1, ..., 2], 1.0)  # blue
  _, info = style_maps.make_phi(config, str(tmp_path))
  assert info["style_images"] == paths
  config.style.style_image = paths[0]
  _, single_info = style_maps.make_phi(config, str(tmp_path))
  assert single_info["cache_key"] != info["cache_key"]  # the stylized cache tells them apart
  config.style.style_image = ""
  assert style_maps.load_style_images(config).shape == (1, 8, 8, 3)  # the generated default
  config.style.style_image = f"{paths[0]},{tmp_path / 'missing.png'}"
  with pytest.raises(ValueError, match="missing.png"):
    validation.validate_config(config)
  (tmp_path / "vgg19.bin").write_bytes(b"weights")
  config.style.style_image = ""
  config.style.weights = str(tmp_path / "vgg19.bin")
  with pytest.raises(ValueError, match=r"vgg19.bin' has none of the extensions .pth"):
    validation.validate_config(config)
  config.style.weights = ""
  (tmp_path / "notes.png").write_text("not an image")
  config.style.style_image = str(tmp_path / "notes.png")
  with pytest.raises(ValueError, match="cannot read .*notes.png.* as an image"):
    validation.validate_config(config)


def _readme_user_config() -> str:
  """The documented own-map config file: the one snippet starting ``# my_experiment.py``, in
  README.md or a docs/*.md page."""
  from tests.test_readme import documented_snippets

  snippets = [code for _, _, code in documented_snippets()]
  (snippet,) = [s for s in snippets if s.startswith("# my_experiment.py")]
  return snippet


def test_cli_mapping_registered_by_a_user_config_file(tmp_path):
  """A map registered in a config file outside the repository (the documented one) is a valid
  ``--mapping``."""
  user_config = tmp_path / "my_experiment.py"
  user_config.write_text(_readme_user_config())
  listed = _cli(f"--config={user_config}", "--mapping=rot90", "--list_config")
  assert listed.returncode == 0, listed.stderr[-2000:]
  assert "mapping = 'rot90'" in listed.stdout or "rot90" in listed.stdout
  for args, line in [
    (["--config.kk=1"], "error: --config.kk: the config has no field 'kk'; --list_config lists"),
    (["--config.student.epoch=1"], "error: --config.student.epoch: the config has no field"),
  ]:
    wrong = _cli(f"--config={user_config}", *args, "--list_config")
    assert wrong.returncode != 0 and wrong.stderr.strip().startswith(line), wrong.stderr[-2000:]
    assert len(wrong.stderr.strip().splitlines()) == 1
  broken = tmp_path / "broken.py"
  broken.write_text("def get_config(:\n")
  wrong = _cli(f"--config={broken}", "--config.seeds=2", "--list_config")
  assert wrong.stderr.strip().splitlines() == [
    f"error: --config={broken}: cannot load this config file: SyntaxError: invalid syntax "
    "(broken.py, line 1)"
  ]
  typo = _cli(f"--config={user_config}", "--mapping=rot9", "--list_config")
  assert typo.returncode != 0
  assert (
    typo.stderr.strip()
    .splitlines()[-1]
    .startswith("error: --mapping=rot9: unknown mapping (did you mean rot90?)")
  )
