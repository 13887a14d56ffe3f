"""The one-command reproduction in ``--quick`` mode: the talk's six experiments and the generated_full ablation, REPORT.md, report.json."""

import json
import os

import pytest

from experiments import reproduce
from tests.test_imagenette import write_tree


@pytest.fixture
def data_dir(shared_data_dir, tmp_path):
  """The offline MNIST / Fashion-MNIST next to a small fake Imagenette tree."""
  root = tmp_path / "data"
  root.mkdir()
  for name in ("mnist", "fashion_mnist"):
    os.symlink(os.path.join(shared_data_dir, name), root / name)
  write_tree(root, per_class={"train": 6, "val": 2})
  return str(root)


def test_quick_reproduction_covers_every_claim(data_dir, tmp_path):
  workdir = str(tmp_path / "reproduce")
  os.makedirs(workdir)
  report = reproduce.run_all(
    list(reproduce.CLAIMS),
    workdir=workdir,
    data_dir=data_dir,
    tfds_dir=str(tmp_path / "tfds"),
    quick=True,
  )
  assert list(report["experiments"]) == list(reproduce.CLAIMS)
  saved = json.loads((tmp_path / "reproduce" / "report.json").read_text())
  text = (tmp_path / "reproduce" / "REPORT.md").read_text()
  assert "Quick mode" in text
  for name, entry in saved["experiments"].items():
    effect = entry["effect"]["test_accuracy"]
    assert effect["verdict"] in ("holds", "fails", "inconclusive")
    assert entry["config"]["mapping"] == name and entry["wall_seconds"] > 0
    assert f"| {name} | {reproduce.CLAIMS[name]} |" in text
    for figure in entry["figures"]:
      assert (tmp_path / "reproduce" / figure).stat().st_size > 0
  assert "GeneratedMNIST, the talk's recipe against the ablation" in text
  talk_phi = saved["experiments"]["generated"]["phi"]
  assert talk_phi["generated_from"] == "FashionMNIST-Small (100 images)"
  assert talk_phi["generated_samples_per_image"] == 10
  assert saved["experiments"]["generated_full"]["phi"]["generated_mnist"].endswith("_mean")
  assert saved["experiments"]["conv"]["effect"]["test_accuracy"]["teachers"] == 2
  assert saved["experiments"]["style"]["effect"]["test_accuracy"]["teachers"] == 2


def test_unknown_experiment_is_refused_before_any_work(tmp_path):
  with pytest.raises(ValueError, match="unknown experiment 'blur'"):
    reproduce.run_all(
      ["conv", "blur"], workdir=str(tmp_path), data_dir=None, tfds_dir=str(tmp_path)
    )
  assert os.listdir(tmp_path) == []
