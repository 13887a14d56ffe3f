"""Tiny end-to-end experiments (few epochs, small subsets of the real data) and the CLI."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from distill_jax import experiment
from distill_jax import maps
from experiments.configs import default as default_config
from tests.conftest import REPO_ROOT


def tiny_config(mapping):
  config = default_config.get_config()
  config.mapping = mapping
  config.seeds = 2
  config.teacher.epochs = 1
  config.teacher.hidden = (32,)
  config.student.epochs = 3
  config.data.max_big = 2000
  config.data.max_small = 200
  config.data.max_test = 1000
  config.eval_batch_size = 500
  config.checkpoint_every = 2
  return config


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


def test_conv_end_to_end_and_rerun_reuses_work(shared_data_dir, tfds_dir, tmp_path):
  config = tiny_config("conv")
  results = experiment.run_experiment(
    config, str(tmp_path), data_dir=shared_data_dir, tfds_dir=tfds_dir
  )
  assert list(results["arms"]) == ["no_teacher", "teacher_phi"]  # conv changes the shape
  for name in ("results.json", "results.md", "test_accuracy.png", "test_cross_entropy.png"):
    assert (tmp_path / name).stat().st_size > 0
  saved = json.loads((tmp_path / "results.json").read_text())
  for entry in saved["arms"].values():
    acc = np.asarray(entry["test_accuracy"])
    assert acc.shape == (2, 3) and np.all(np.isfinite(acc))
    assert np.all(np.isfinite(entry["test_cross_entropy"]))
  assert 0.1 < saved["teacher"]["test_accuracy"] <= 1.0
  assert saved["teacher"]["evaluated_on"] == "phi(fashion_mnist test)"
  assert not saved["teacher"]["reused_checkpoint"]

  again = experiment.run_experiment(
    config, str(tmp_path), data_dir=shared_data_dir, tfds_dir=tfds_dir
  )
  assert again["teacher"]["reused_checkpoint"]
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


@pytest.mark.parametrize(
  "mapping,source,train_on",
  [
    ("identity", "fashion_mnist", "phi"),
    ("conv", "fashion_mnist", "phi"),
    ("vae", "mnist", "source"),
    ("generated", "generated_mnist", "source"),
  ],
)
def test_resolve_config_fills_mapping_defaults(mapping, source, train_on):
  config = tiny_config(mapping)
  resolved = experiment.resolve_config(config)
  assert (resolved.source_dataset, resolved.teacher.train_on) == (source, train_on)
  assert config.source_dataset is None  # the input is not changed
  config.source_dataset, config.teacher.train_on = "fashion_mnist", "phi"  # explicit values win
  resolved = experiment.resolve_config(config)
  assert (resolved.source_dataset, resolved.teacher.train_on) == ("fashion_mnist", "phi")


@pytest.mark.parametrize(
  "change,match",
  [
    (lambda c: setattr(c, "mapping", "blur"), "unknown mapping 'blur'"),
    (lambda c: setattr(c, "lams", (-1.0,)), "lam must be >= 0"),
    (lambda c: setattr(c, "temperatures", (0.0,)), "temperature must be > 0"),
    (lambda c: setattr(c, "seeds", 0), "seeds must be >= 1"),
    (lambda c: setattr(c.student, "model", "resnet"), "unknown student model"),
    (lambda c: setattr(c, "source_dataset", "cifar"), "unknown source dataset 'cifar'"),
    (lambda c: setattr(c, "target_dataset", "generated_mnist"), "unknown target dataset"),
    (lambda c: setattr(c, "source_dataset", "generated_mnist"), "needs mapping 'vae'"),
    (lambda c: setattr(c, "mapping", "generated") or setattr(c.vae, "latent_dim", 0), "vae:"),
    (lambda c: setattr(c, "mapping", "vae") or setattr(c.vae, "prior_std", 0.0), "prior_std"),
    (lambda c: setattr(c, "mapping", "vae") or setattr(c.vae, "steps_per_call", 0), "steps_per"),
    (
      lambda c: setattr(c, "mapping", "vae") or setattr(c.vae, "figure_latent_dim", 3),
      "figure_latent_dim must be 2",
    ),
    (lambda c: setattr(c.teacher, "train_on", "both"), "teacher.train_on must be"),
    (lambda c: setattr(c.student, "eval_every", 0), "student.eval_every must be >= 1"),
    (
      lambda c: (setattr(c, "mapping", "conv"), setattr(c.teacher, "train_on", "source")),
      "cannot read φ",
    ),
  ],
)
def test_bad_config_values(change, match):
  config = tiny_config("identity")
  change(config)
  with pytest.raises(ValueError, match=match):
    experiment.validate_config(config)


def _cli(*args, timeout=120):
  env = dict(os.environ, XLA_FLAGS="", DISTILL_DATA_DIR="")
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
    (["--mapping=blur"], "value should be one of"),
    (["--mapping=conv", "--lam=-1"], "lam must be >= 0"),
    (["--mapping=conv", "--temperature=abc"], "--temperature takes numbers"),
    (["--mapping=conv", "--seeds=0"], "seeds must be >= 1"),
    (["--config.num_seeds=2"], "no field 'num_seeds' (did you mean --config.seeds"),
    (["--config.teacher.epoch=3"], "did you mean --config.teacher.epochs"),
    (["--config=experiments/configs/nope.py"], "nope.py: no such config file"),
  ],
)
def test_cli_rejects_bad_flags(args, match):
  result = _cli(*args)
  assert result.returncode != 0
  assert match in result.stderr
  assert "Traceback" not in result.stderr


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
  from experiments.configs import vae as vae_config

  config = vae_config.get_config()
  tiny = tiny_vae_config("vae")
  for name in ("seeds", "eval_batch_size", "checkpoint_every", "data", "teacher", "student", "vae"):
    setattr(config, name, getattr(tiny, name))
  workdir, cache_dir = tmp_path / "run", str(tmp_path / "cache")
  results = experiment.run_experiment(
    config, str(workdir), data_dir=shared_data_dir, tfds_dir=tfds_dir, cache_dir=cache_dir
  )
  assert list(results["arms"]) == ["no_teacher", "teacher", "teacher_phi"]
  assert results["teacher"]["trained_on"] == "mnist Big"
  assert results["teacher"]["checkpoint"].startswith(cache_dir)
  assert np.isfinite(results["phi"]["test_neg_elbo"])
  assert 0.0 <= results["phi"]["teacher_accuracy_on_phi_target_test"] <= 1.0
  for name in ("vae_translations.png", "vae_latent_grid.png", "results.md"):
    assert (workdir / name).stat().st_size > 0
  assert len(os.listdir(os.path.join(cache_dir, "vae"))) == 2  # the map's VAE and the 2-D one
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


def test_generated_end_to_end(shared_data_dir, tfds_dir, tmp_path):
  config = tiny_vae_config("generated")
  config.vae.figure_latent_dim = 0  # no latent grid: one VAE
  results = experiment.run_experiment(
    config, str(tmp_path), data_dir=shared_data_dir, tfds_dir=tfds_dir
  )
  assert list(results["arms"]) == ["no_teacher", "teacher", "teacher_phi"]
  assert results["teacher"]["trained_on"] == "generated_mnist Big"
  assert results["teacher"]["evaluated_on"] == "generated_mnist test"
  assert results["num_examples"] == {"big": 2000, "small": 200, "test": 1000}
  assert not (tmp_path / "vae_latent_grid.png").exists()
  vae_key = os.path.basename(results["phi"]["checkpoint"])
  generated_dir = os.path.join(tfds_dir, "distill_generated_mnist", f"vae_{vae_key}_mean")
  assert os.path.isdir(generated_dir)  # the tfds dataset of this VAE

  # GeneratedMNIST's teacher on its own test set ≈ the same teacher on φ(Fashion test)
  # (uint8 rounding is the only difference; the first 1,000 test images in both).
  assert (
    abs(results["teacher"]["test_accuracy"] - results["phi"]["teacher_accuracy_on_phi_target_test"])
    <= 0.01
  )


def test_expensive_phi_is_cached_per_input_and_resumes(tmp_path):
  calls = []

  def double(images, key):
    calls.append(images.shape[0])  # traced once per chunk shape, run by the jitted function
    return images * 2.0

  phi = maps.Map("double", double, stochastic=False, chunk_size=4, cache_key="d1")
  images = np.arange(10 * 2 * 2 * 1, dtype=np.float32).reshape(10, 2, 2, 1)
  key = jax.random.key(0)
  mapped = experiment._map_array(phi, images, key, str(tmp_path))
  np.testing.assert_array_equal(mapped, images * 2)
  cached_files = list((tmp_path / "phi" / "d1").glob("*.npy"))
  assert len(cached_files) == 1 and not list((tmp_path / "phi" / "d1").glob("*.parts"))

  # Same input: read back, φ not traced again; another input: a second file.
  calls.clear()
  np.testing.assert_array_equal(experiment._map_array(phi, images, key, str(tmp_path)), mapped)
  assert calls == []
  experiment._map_array(phi, images + 1, key, str(tmp_path))
  assert len(list((tmp_path / "phi" / "d1").glob("*.npy"))) == 2

  # An interrupted run keeps its finished chunks: fake one chunk done with a marker value.
  other = images + 5
  digest_parts = tmp_path / "phi" / "d2"
  phi2 = maps.Map("double", double, stochastic=False, chunk_size=4, cache_key="d2")
  first = experiment._map_array(phi2, other, key, str(tmp_path))
  (path,) = digest_parts.glob("*.npy")
  parts = digest_parts / (path.name[: -len(".npy")] + ".parts")
  parts.mkdir()
  np.save(parts / f"{0:09d}.npy", np.full((4, 2, 2, 1), -1.0, np.float32))
  path.unlink()
  resumed = experiment._map_array(phi2, other, key, str(tmp_path))
  np.testing.assert_array_equal(resumed[:4], -1.0)  # the kept chunk, not recomputed
  np.testing.assert_array_equal(resumed[4:], first[4:])


def test_subset_is_seeded_sorted_and_whole_when_not_smaller():
  images, labels = np.arange(20).reshape(10, 2), np.arange(10)
  sub_images, sub_labels = experiment._subset((images, labels), 4)
  assert len(sub_labels) == 4 and np.all(np.diff(sub_labels) > 0)
  np.testing.assert_array_equal(sub_images, images[sub_labels])
  np.testing.assert_array_equal(experiment._subset((images, labels), 4)[1], sub_labels)
  assert experiment._subset((images, labels), None)[1] is labels
  assert experiment._subset((images, labels), 10)[1] is labels


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
  config.target_dataset = None  # style → imagenette, cnn teacher and student
  config.data.image_size, config.data.imagenette_small = 16, 10
  config.data.max_big = config.data.max_small = config.data.max_test = None
  config.eval_batch_size = 10
  config.teacher.batch_size, config.student.batch_size = 10, 10
  config.teacher.features, config.student.features = (4, 8), (4,)
  config.style.steps, config.style.batch_size = 2, 16
  config.style.style_layers, config.style.content_layers = ("relu1_1", "relu2_1"), ("relu2_1",)
  config.teacher.eval_size = 6  # of the 10 test images: only those are stylized
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


@pytest.mark.parametrize("name", ["default", "vae", "generated", "style", "style_gpu"])
def test_every_config_file_validates(name):
  import importlib

  config = importlib.import_module(f"experiments.configs.{name}").get_config()
  experiment.validate_config(config)
  resolved = experiment.resolve_config(config)
  if name.startswith("style"):
    assert resolved.target_dataset == resolved.source_dataset == "imagenette"
    assert resolved.teacher.model == resolved.student.model == "cnn"


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
  experiment.validate_config(config)
  assert experiment.style_image_paths(config) == paths
  images = experiment.load_style_images(config)
  assert images.shape == (2, 8, 8, 3) and images.dtype == np.float32
  np.testing.assert_allclose(images[0, ..., 0], 1.0)  # red
  np.testing.assert_allclose(images[1, ..., 2], 1.0)  # blue
  _, info = experiment.build_style_map(config)
  assert info["style_images"] == paths
  config.style.style_image = paths[0]
  _, single_info = experiment.build_style_map(config)
  assert single_info["cache_key"] != info["cache_key"]  # the stylized cache tells them apart
  config.style.style_image = ""
  assert experiment.load_style_images(config).shape == (1, 8, 8, 3)  # the generated default
  config.style.style_image = f"{paths[0]},{tmp_path / 'missing.png'}"
  with pytest.raises(ValueError, match="missing.png"):
    experiment.validate_config(config)
  (tmp_path / "vgg19.bin").write_bytes(b"weights")
  config.style.style_image = ""
  config.style.weights = str(tmp_path / "vgg19.bin")
  with pytest.raises(ValueError, match=r"vgg19.bin' has none of the extensions .pth"):
    experiment.validate_config(config)
  config.style.weights = ""
  (tmp_path / "notes.png").write_text("not an image")
  config.style.style_image = str(tmp_path / "notes.png")
  with pytest.raises(ValueError, match="cannot read .*notes.png.* as an image"):
    experiment.validate_config(config)
