"""The one-command reproduction in ``--quick`` mode: the talk's six experiments and the generated_full ablation, REPORT.md, report.json."""

import json
import os
import re

import numpy as np
import pytest

from experiments import reproduce
from tests.conftest import REPO_ROOT
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
  assert saved["experiments"]["vae"]["comparison"] == "teacher_phi vs teacher"
  assert (
    saved["experiments"]["vae"]["contrasts"]["teacher_phi vs teacher"]
    == (saved["experiments"]["vae"]["effect"])
  )  # the claim's comparison is the experiment's own with-vs-without-φ contrast
  assert saved["experiments"]["conv"]["effect"]["test_accuracy"]["teachers"] == 2
  assert saved["experiments"]["style"]["effect"]["test_accuracy"]["teachers"] == 2

  docs = tmp_path / "docs"  # published: the figures beside it, every link resolving there
  published = reproduce.publish(str(tmp_path / "reproduce" / "report.json"), str(docs))
  assert json.loads((docs / "report.json").read_text()) == published
  for name, entry in published["experiments"].items():
    assert entry["figures"] and all(
      f.startswith(f"figures/reproduce/{name}/") for f in entry["figures"]
    )
    assert all((docs / figure).stat().st_size > 0 for figure in entry["figures"])
    assert {k: v for k, v in entry.items() if k != "figures"} == {
      k: v for k, v in saved["experiments"][name].items() if k != "figures"
    }
  _assert_links_resolve(docs / "REPORT.md")
  assert reproduce.publish(str(docs / "report.json"), str(docs)) == published  # idempotent


def _assert_links_resolve(page):
  links = re.findall(r"!\[\]\(([^)]+)\)", page.read_text())
  assert links
  missing = [link for link in links if not (page.parent / link).is_file()]
  assert not missing, f"{page} links to missing files: {missing[:5]}"


def test_unknown_experiment_is_refused_before_any_work(tmp_path):
  with pytest.raises(ValueError, match="unknown experiment 'blur'"):
    reproduce.run_all(
      ["conv", "blur"], workdir=str(tmp_path), data_dir=None, tfds_dir=str(tmp_path)
    )
  assert os.listdir(tmp_path) == []


def _docs_report() -> dict:
  with open(REPO_ROOT / "docs" / "report.json") as f:
    return json.load(f)


def test_docs_report_is_what_rejudging_its_json_writes():
  """docs/REPORT.md and docs/report.json agree with the claims as the code judges them now
  (regenerate with the command the report names when this fails)."""
  saved = _docs_report()
  again = reproduce.rejudge(saved, None)
  assert again == saved
  assert reproduce.markdown(again) == (REPO_ROOT / "docs" / "REPORT.md").read_text()


def test_docs_report_figures_resolve():
  _assert_links_resolve(REPO_ROOT / "docs" / "REPORT.md")


def test_vae_claim_is_judged_as_the_talk_compares_it():
  """vae: teacher_phi against teacher (with φ vs without φ), no_teacher beside it; the rest
  against no_teacher."""
  experiments = reproduce.rejudge(_docs_report(), "test")["experiments"]
  vae = experiments["vae"]
  assert vae["comparison"] == "teacher_phi vs teacher"
  for metric in ("test_accuracy", "test_cross_entropy"):
    with_phi = np.asarray(vae["effects"]["teacher_phi"][metric]["per_teacher"])
    without = np.asarray(vae["effects"]["teacher"][metric]["per_teacher"])
    assert vae["effect"][metric]["mean"] == pytest.approx((with_phi - without).mean())
  assert vae["other_comparison"] == {
    "comparison": "teacher_phi vs no_teacher",
    "effect": vae["effects"]["teacher_phi"],
  }
  for name in set(experiments) - {"vae"}:
    assert experiments[name]["comparison"] == "teacher_phi vs no_teacher"
    assert experiments[name]["effect"] == experiments[name]["effects"]["teacher_phi"]
    assert experiments[name]["other_comparison"] is None
  table = "\n".join(reproduce.claims_table(experiments))
  assert "| teacher_phi vs teacher | +0.3349" in table
  assert "teacher_phi vs no_teacher: -0.0023" in table


def test_rejudge_file_refuses_what_is_not_a_report(tmp_path):
  with pytest.raises(ValueError, match="cannot read a report.json there"):
    reproduce.rejudge_file(str(tmp_path / "missing.json"))
  (tmp_path / "other.json").write_text('{"arms": {}}')
  with pytest.raises(ValueError, match="not a report.json of experiments.reproduce"):
    reproduce.rejudge_file(str(tmp_path / "other.json"))


def test_readme_claims_table_is_the_docs_report_table():
  table = reproduce.claims_table(_docs_report()["experiments"])
  readme = (REPO_ROOT / "README.md").read_text().splitlines()
  start = readme.index(table[0])
  assert readme[start : start + len(table)] == table
