"""experiments/publish_run.py: a run's results.json without its curves, numbers copied."""

import json
import subprocess
import sys

import pytest

from experiments import publish_run
from tests.conftest import REPO_ROOT


def _results():
  # 2 paired runs per arm, 3 epochs; effect_epochs = 2
  return {
    "provenance": {"command": "python -m experiments.distill", "commit": "abc1234"},
    "config": {"effect_epochs": 2},
    "teacher": {"test_accuracy_mean": 0.85, "history": {"test_accuracy": [[0.5, 0.85]]}},
    "phi": {"teacher_on_phi_target_test_accuracy_mean": 0.84, "history": {"x": [1, 2]}},
    "arms": {
      "no_teacher": {
        "test_accuracy": [[0.70, 0.80, 0.82], [0.72, 0.78, 0.80]],
        "test_cross_entropy": [[0.9, 0.7, 0.6], [0.8, 0.7, 0.8]],
      },
      "teacher_phi": {
        "test_accuracy": [[0.71, 0.82, 0.84], [0.73, 0.80, 0.82]],
        "test_cross_entropy": [[0.8, 0.6, 0.5], [0.7, 0.6, 0.7]],
      },
    },
    "effects": {"teacher_phi": {"test_accuracy": {"mean": 0.02}}},
    "seconds": {"total": 12.5},
  }


def test_published_keeps_the_numbers_and_drops_the_curves(tmp_path):
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "results.json").write_text(json.dumps(_results()))
  out = tmp_path / "docs" / "r.json"
  summary = publish_run.publish(str(tmp_path / "run"), str(out))
  assert json.loads(out.read_text()) == summary
  assert "arms" not in summary and "history" not in summary["teacher"]
  assert "history" not in summary["phi"]
  for key in ("provenance", "config", "effects", "seconds"):
    assert summary[key] == _results()[key]
  scores = summary["scores"]
  assert scores["no_teacher"]["test_accuracy"]["last_epochs"] == pytest.approx(0.80)
  assert scores["no_teacher"]["test_accuracy"]["final"] == pytest.approx(0.81)
  assert scores["teacher_phi"]["test_cross_entropy"]["last_epochs"] == pytest.approx(0.6)
  gain = scores["teacher_phi"]["test_accuracy"]["last_epochs"] - 0.80
  assert gain == pytest.approx(0.02)  # paired runs: the difference of scores is the effect


def test_a_folder_without_results_is_one_error_line(tmp_path):
  result = subprocess.run(
    [sys.executable, "-m", "experiments.publish_run", f"--run={tmp_path}",
     f"--out={tmp_path / 'x.json'}"],
    cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
  )  # fmt: skip
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(f"error: --run={tmp_path}: cannot read")
  (tmp_path / "results.json").write_text('{"report": 1}')
  with pytest.raises(ValueError, match="not the results.json of an experiment"):
    publish_run.publish(str(tmp_path), str(tmp_path / "x.json"))
