"""A user's own datasets and models, registered by name (``data.register_dataset``,
``models.register_model``): the ready-made loaders, the checks on what they return, and tiny
experiments on them (synthetic 8×8 images of 3 classes: no real data needed)."""

import json
import logging
import os
import shutil
import subprocess
import sys

import flax.linen as nn
import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from distill_jax import data
from distill_jax import experiment
from distill_jax import models
from distill_jax.data import registry
from experiments.configs import default
from tests.conftest import REPO_ROOT

CONTEXT = data.DataContext(data_dir=None, tfds_dir="/nonexistent")


@pytest.fixture(autouse=True)
def own_registries(monkeypatch):
  """Registrations made by a test stay in it."""
  monkeypatch.setattr(registry, "_DATASETS", {})
  monkeypatch.setattr(models, "_REGISTERED", {})


def blobs(count, *, seed=0, classes=3, side=8, channels=1):
  """uint8 images [count, side, side, channels] whose bright quadrant is the class, and labels."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, classes, count)
  images = rng.integers(0, 60, (count, side, side, channels))
  half = side // 2
  for i, label in enumerate(labels):
    row, col = divmod(int(label), 2)
    images[i, row * half : (row + 1) * half, col * half : (col + 1) * half] += 180
  return images.astype(np.uint8), labels.astype(np.int64)


def test_check_loaded_converts_and_names_each_problem():
  train, test = blobs(50), blobs(20, seed=1)
  splits = data.from_arrays({"train": train, "test": test}, small_size=10).load(CONTEXT)
  checked, classes = data.check_loaded("mine", splits)
  assert classes == 3
  assert {split: len(s.labels) for split, s in checked.items()} == {
    "big": 40,
    "small": 10,
    "test": 20,
  }
  small = checked["small"]
  assert small.images.dtype == np.float32 and small.labels.dtype == np.int32
  np.testing.assert_array_equal(small.images, train[0][40:] / np.float32(255))  # the last 10
  np.testing.assert_array_equal(small.labels, train[1][40:])
  three_d = {s: (x[..., 0], y) for s, (x, y) in splits.items()}  # [N, H, W]: one channel added
  assert data.check_loaded("mine", three_d)[0]["test"].images.shape == (20, 8, 8, 1)

  def fails(message, changed, num_classes=None):
    with pytest.raises(data.DataError, match=message):
      data.check_loaded("mine", {**splits, **changed}, num_classes)

  images, labels = splits["test"]
  fails(r"dataset 'mine' has splits .*it needs exactly big, small, test", {"train": train})
  fails(
    r"split 'test': labels must be one per image, shape \(20,\)", {"test": (images, labels[:5])}
  )
  fails(
    r"split 'test': images must be uint8 \(0-255\) or float",
    {"test": (images.astype(np.int32), labels)},
  )
  fails(
    r"float images must lie in \[0, 1\], got \[0, 2\d\d\]; scale them",
    {"test": (images.astype(np.float32), labels)},
  )
  nan = images.astype(np.float32) / 255
  nan[0, 0, 0, 0] = np.nan
  fails("split 'test': images hold NaN", {"test": (nan, labels)})
  fails("labels must be integers", {"test": (images, labels.astype(np.float32))})
  fails("label -1 is negative", {"test": (images, labels - 1)})
  fails("split 'small' is empty", {"small": (images[:0], labels[:0])})
  fails(r"same image shape \(H, W, C\), got big \(8, 8, 1\)", {"test": blobs(20, side=6)})
  fails("declares num_classes=2 but has label 2", {}, num_classes=2)
  fails(r"has 1 class\(es\)", {s: (x, 0 * y) for s, (x, y) in splits.items()})


def test_from_arrays_cuts_small_seeded_and_checks_small_size():
  train, test = blobs(30), blobs(5, seed=1)
  seeded = data.from_arrays({"train": train, "test": test}, small_size=6, small_seed=0)
  splits = seeded.load(CONTEXT)
  chosen = np.sort(np.random.default_rng(0).permutation(30)[:6])
  np.testing.assert_array_equal(splits["small"][0], train[0][chosen])
  assert len(splits["big"][1]) == 24
  lazy = data.from_arrays(lambda context: {"big": train, "small": test, "test": test})
  assert lazy.load(CONTEXT)["small"][0] is test[0]  # three splits given: used as they are
  with pytest.raises(data.DataError, match="small_size must be an int from 1 to 29"):
    data.from_arrays({"train": train, "test": test}, small_size=30).load(CONTEXT)
  with pytest.raises(data.DataError, match="give either big, small and test, or train and test"):
    data.from_arrays({"train": train}).load(CONTEXT)


def test_from_npz_file_and_folder(tmp_path):
  train, test = blobs(30), blobs(8, seed=1)
  path = tmp_path / "mine.npz"
  np.savez(
    path, train_images=train[0], train_labels=train[1], test_images=test[0], test_labels=test[1]
  )
  splits = data.from_npz(path, small_size=5).load(CONTEXT)
  np.testing.assert_array_equal(splits["small"][0], train[0][25:])
  folder = tmp_path / "npy"
  folder.mkdir()
  for split, (images, labels) in {"big": train, "small": test, "test": test}.items():
    np.save(folder / f"{split}_images.npy", images)
    np.save(folder / f"{split}_labels.npy", labels)
  np.testing.assert_array_equal(data.from_npz(folder).load(CONTEXT)["big"][1], train[1])

  np.savez(tmp_path / "partial.npz", train_images=train[0])
  with pytest.raises(data.DataError, match=r"partial.npz holds \['train_images'\]; it needs"):
    data.from_npz(tmp_path / "partial.npz").load(CONTEXT)
  with pytest.raises(data.DataError, match="missing.npz: no such file or folder"):
    data.from_npz(tmp_path / "missing.npz").load(CONTEXT)
  (tmp_path / "broken.npz").write_bytes(path.read_bytes()[:200])  # truncated
  with pytest.raises(data.DataError, match="broken.npz: cannot read it as .npz"):
    data.from_npz(tmp_path / "broken.npz").load(CONTEXT)


def _write_folder(root, split, images, labels, names=("cat", "dog", "owl")):
  for index, (image, label) in enumerate(zip(images, labels)):
    folder = root / split / names[label]
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image[..., 0]).save(folder / f"{index:03d}.png")


def test_from_image_folder(tmp_path):
  train, test = blobs(24), blobs(9, seed=1)
  _write_folder(tmp_path, "train", *train)
  _write_folder(tmp_path, "val", *test)
  gray = data.from_image_folder(tmp_path, channels=1, small_size=4).load(CONTEXT)
  order = np.argsort(train[1], kind="stable")  # files are listed class by class
  everything = np.concatenate([gray["big"][0], gray["small"][0]])
  assert sorted(map(bytes, everything)) == sorted(map(bytes, train[0][order]))
  np.testing.assert_array_equal(gray["test"][1], np.sort(test[1]))
  rgb = data.from_image_folder(tmp_path, image_size=4, small_size=4).load(CONTEXT)
  assert rgb["test"][0].shape == (9, 4, 4, 3)
  assert data.check_loaded("folder", rgb)[1] == 3

  with pytest.raises(data.DataError, match="it needs train/ and val/"):
    data.from_image_folder(tmp_path / "train", small_size=4).load(CONTEXT)
  broken = next((tmp_path / "val" / "cat").iterdir())
  broken.write_bytes(b"not a png")
  with pytest.raises(data.DataError, match=f"{broken.name}: cannot decode the image"):
    data.from_image_folder(tmp_path, splits={"train": "train", "test": "val"}).load(CONTEXT)
  shutil.rmtree(tmp_path / "val" / "owl")
  with pytest.raises(data.DataError, match=r"class folders \['cat', 'dog'\] differ from"):
    data.from_image_folder(tmp_path, small_size=4).load(CONTEXT)


class TinyImages(tfds.core.GeneratorBasedBuilder):
  """A tfds dataset made here (PNG-encoded with PIL: no TensorFlow, no network)."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return self.dataset_info_from_configs(
      disable_shuffling=True,  # records in the order they are made
      features=tfds.features.FeaturesDict(
        {
          "picture": tfds.features.Image(shape=(8, 8, 1)),
          "label": tfds.features.ClassLabel(num_classes=3),
        }
      ),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples(20, 0), "test": self._generate_examples(6, 1)}

  def _generate_examples(self, count, seed):
    images, labels = blobs(count, seed=seed)
    for index in range(count):
      yield index, {"picture": Image.fromarray(images[index][..., 0]), "label": int(labels[index])}


def test_from_tfds_by_name(tmp_path):
  context = data.DataContext(data_dir=None, tfds_dir=str(tmp_path))
  dataset = data.from_tfds("tiny_images", image_key="picture", small_size=5)
  splits = dataset.load(context)
  train = blobs(20)
  np.testing.assert_array_equal(splits["small"][0], train[0][15:])
  np.testing.assert_array_equal(splits["test"][1], blobs(6, seed=1)[1])
  with pytest.raises(data.DataError, match=r"has features \['label', 'picture'\], no 'image'"):
    data.from_tfds("tiny_images", small_size=5).load(context)
  with pytest.raises(data.DataError, match="tfds dataset 'no_such_set' under"):
    data.from_tfds("no_such_set", download=False).load(context)


def test_register_names():
  dataset = data.from_arrays({"train": blobs(10), "test": blobs(4)}, small_size=2)
  with pytest.raises(ValueError, match="'mnist' is built in"):
    data.register_dataset("mnist", dataset)
  with pytest.raises(ValueError, match="must be an identifier"):
    data.register_dataset("my digits", dataset)
  with pytest.raises(TypeError, match="takes a data.Dataset"):
    data.register_dataset("mine", {"train": blobs(10)})
  data.register_dataset("mine", dataset)
  data.register_dataset("mine", dataset)  # again (a config file run twice): replaced
  assert "mine" in data.dataset_names() and data.image_shape("mine") is None
  with pytest.raises(ValueError, match="'cnn' is built in"):
    models.register_model("cnn", lambda section, num_classes: None)


def tiny_own_config(source="blobs_source", target="blobs_target"):
  """default.py at tiny sizes on the registered 8×8 sets, through the identity."""
  config = default.get_config()
  config.source_dataset, config.target_dataset = source, target
  config.seeds = 2
  config.teacher.count = 2
  config.teacher.epochs = 3
  config.teacher.hidden = (16,)
  config.teacher.optimizer.learning_rate = 1e-2
  config.teacher.batch_size = 20
  config.student.epochs = 3
  config.student.batch_size = 10
  config.eval_batch_size = 10
  config.effect_epochs = 1
  config.checkpoint_every = 2
  return config


def register_blobs(small_size=30):
  data.register_dataset(
    "blobs_source",
    data.from_arrays(
      {"train": blobs(200), "test": blobs(40, seed=1)}, small_size=20, description="source blobs"
    ),
  )
  data.register_dataset(
    "blobs_target",
    data.from_arrays(
      {"train": blobs(small_size + 25, seed=2), "test": blobs(30, seed=3)},
      small_size=small_size,
      description="target blobs",
    ),
  )


def _run(config, tmp_path, name="run"):
  return experiment.run_experiment(
    config, str(tmp_path / name), data_dir=None, tfds_dir=str(tmp_path / "tfds")
  )


def test_registered_datasets_end_to_end(tmp_path):
  """Each set is its own (no stand-in swaps the target), with its class count; reports name
  them; a Small smaller than the batch is refused before any teacher trains."""
  register_blobs()
  results = _run(tiny_own_config(), tmp_path)
  assert results["num_examples"] == {"big": 180, "small": 30, "test": 30}
  assert results["datasets"]["target"] == {
    "name": "blobs_target",
    "registered": True,
    "description": "target blobs",
    "num_classes": 3,
    "image_shape": [8, 8, 1],
    "sizes": {"big": 25, "small": 30, "test": 30},
  }
  assert results["teacher"]["trained_on"] == "phi(blobs_source Big)"
  assert np.asarray(results["teacher"]["test_accuracy"]).min() > 0.6  # 3 easy classes
  table = (tmp_path / "run" / "results.md").read_text()
  assert table.startswith("# blobs_source -> blobs_target through phi = identity")
  assert "Registered datasets: source blobs_source (source blobs; 3 classes, images 8×8×1); " in (
    table
  )
  one_set = _run(tiny_own_config("blobs_target", "blobs_target"), tmp_path, "one_set")
  assert one_set["num_examples"] == {"big": 25, "small": 30, "test": 30}

  config = tiny_own_config()
  config.student.batch_size = 40
  with pytest.raises(ValueError, match="student.batch_size = 40 but blobs_target Small has 30"):
    _run(config, tmp_path, "too_small")
  assert not os.path.exists(tmp_path / "too_small" / "teachers")
  data.register_dataset(
    "ten_classes",
    data.from_arrays(
      {"train": blobs(60, classes=10), "test": blobs(10, classes=10)}, small_size=20
    ),
  )
  with pytest.raises(ValueError, match="same classes: blobs_source 3 and ten_classes 10"):
    _run(tiny_own_config(target="ten_classes"), tmp_path, "other_classes")
  data.register_dataset(
    "larger",
    data.from_arrays({"train": blobs(60, side=12), "test": blobs(10, side=12)}, small_size=20),
  )
  config = tiny_own_config(target="larger")
  config.teacher.train_on = "source"
  with pytest.raises(
    ValueError,
    match=r"raw source images of shape \(8, 8, 1\) cannot read φ\(x\) of shape \(12, 12, 1\) "
    r"for mapping 'identity'; φ must turn target images into images of the source's shape",
  ):
    _run(config, tmp_path, "other_shape")
  assert not os.path.exists(tmp_path / "other_shape" / "teachers")


class TwoLayer(nn.Module):
  """A user's model: its width comes from a field the user adds to the config section."""

  width: int
  num_classes: int
  scale: float = 1.0

  @nn.compact
  def __call__(self, images):
    x = images.reshape(images.shape[0], -1) * self.scale
    return nn.Dense(self.num_classes)(nn.relu(nn.Dense(self.width)(x)))


def test_registered_model_by_name_and_its_edits_retrain(tmp_path, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  register_blobs()
  models.register_model(
    "two_layer", lambda section, num_classes: TwoLayer(section.width, num_classes)
  )
  config = tiny_own_config()
  config.teacher.model = "two_layer"
  config.teacher.width = 12
  first = _run(config, tmp_path)
  assert first["teacher"]["model"] == "two_layer"
  saved = json.loads((tmp_path / "run" / "results.json").read_text())
  assert saved["config"]["teacher"]["width"] == 12
  assert _run(config, tmp_path)["teacher"]["reused_checkpoint"]
  models.register_model(  # the body edited under the same name
    "two_layer", lambda section, num_classes: TwoLayer(section.width, num_classes, scale=2.0)
  )
  assert not _run(config, tmp_path)["teacher"]["reused_checkpoint"]
  config.teacher.model = "two_layers"
  with pytest.raises(ValueError, match="unknown teacher model 'two_layers'; choose one of"):
    _run(config, tmp_path)


def test_worked_example_from_a_folder_outside_the_repository(shared_data_dir, tmp_path):
  """experiments/configs/inverted_mnist.py copied elsewhere runs from the command line, with
  the user's dataset and map named in results.md."""
  shutil.copy(REPO_ROOT / "experiments" / "configs" / "inverted_mnist.py", tmp_path / "mine.py")
  tiny = [
    "--config.teacher.count=2", "--config.seeds=2", "--config.teacher.epochs=1",
    "--config.teacher.hidden=(32,)", "--config.student.epochs=2", "--config.data.max_big=2000",
    "--config.data.max_small=200", "--config.data.max_test=500", "--config.effect_epochs=1",
  ]  # fmt: skip
  result = subprocess.run(
    [sys.executable, "-m", "experiments.distill", "--config=mine.py",
     f"--data_dir={shared_data_dir}", "--workdir=run", "--tfds_dir=tfds", *tiny],
    cwd=tmp_path, capture_output=True, text=True, timeout=300,
  )  # fmt: skip
  assert result.returncode == 0, result.stderr[-3000:]
  table = (tmp_path / "run" / "results.md").read_text()
  assert table.startswith("# mnist -> inverted_mnist through phi = invert")
  assert "target inverted_mnist (MNIST digits inverted (1 - x); 10 classes" in table
  results = json.loads((tmp_path / "run" / "results.json").read_text())
  assert set(results["arms"]) == {"no_teacher", "teacher", "teacher_phi"}
  # φ undoes the inversion: the teachers read φ(target test) as well as MNIST's test digits.
  np.testing.assert_allclose(
    results["phi"]["teacher_on_phi_target_test_accuracy"], results["teacher"]["test_accuracy"]
  )
