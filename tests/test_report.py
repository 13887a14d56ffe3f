"""Report: grouping runs by (λ, T), final mean/std, the Markdown table and the figures."""

import json

import numpy as np
import pytest

from distill_jax import effects
from distill_jax import report
from distill_jax.students import Run


def _results():
  history = {
    m: np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    for m in ("train_loss", "test_accuracy", "test_cross_entropy")
  }
  grid = [Run(1.0, 1.0, 0, 0), Run(1.0, 1.0, 1, 0), Run(2.0, 1.0, 0, 0), Run(2.0, 1.0, 1, 0)]
  baseline = [Run(0.0, 1.0, 0, -1), Run(0.0, 1.0, 1, -1)]
  arms = report.group_runs("no_teacher", baseline, {m: v[:2] for m, v in history.items()}, 1.0)
  arms.update(report.group_runs("teacher_phi", grid, history, 2.0))
  return {
    "experiment": "toy",
    "arms": arms,
    "effects": effects.effects(arms),
    "devices": ["cpu:0"],
    "seconds": {"total": 3.0},
    "teacher": {
      "model": "mlp",
      "trained_on": "phi(toy)",
      "evaluated_on": "phi(toy test)",
      "num_test": 100,
      "seeds": [0],
      "test_accuracy_mean": 0.9,
      "test_accuracy_std": 0.0,
      "test_cross_entropy_mean": 0.3,
      "test_cross_entropy_std": 0.0,
    },
  }


def test_group_runs_splits_grid_and_computes_final_stats():
  arms = _results()["arms"]
  assert list(arms) == ["no_teacher", "teacher_phi[lam=1,T=1]", "teacher_phi[lam=2,T=1]"]
  entry = arms["teacher_phi[lam=2,T=1]"]
  assert entry["seeds"] == [0, 1] and entry["lam"] == 2.0
  np.testing.assert_allclose(entry["test_accuracy"], [[0.6, 0.7, 0.8], [0.9, 1.0, 1.1]], rtol=1e-6)
  assert abs(entry["final"]["test_accuracy"]["mean"] - 0.95) < 1e-6
  assert abs(entry["final"]["test_accuracy"]["std"] - 0.15) < 1e-6


def test_write_outputs(tmp_path):
  results = _results()
  report.write(results, str(tmp_path))
  loaded = json.loads((tmp_path / "results.json").read_text())
  assert loaded["arms"].keys() == results["arms"].keys()
  table = (tmp_path / "results.md").read_text()
  assert "| teacher_phi[lam=2,T=1] | 2 | 1 | 2 |" in table
  # Δ accuracy vs no_teacher, paired by seed: (0.8 - 0.2, 1.1 - 0.5), one teacher: n/a interval
  # (both differences equal 0.6: no spread to estimate)
  assert "| teacher_phi[lam=2,T=1] | +0.6000 [n/a] |" in table
  assert "student seed (one teacher" in table
  assert "φ keeps the class" not in table  # no φ measurements given

  for name in ("test_accuracy.png", "test_cross_entropy.png"):
    assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_markdown_reports_phi_quality():
  results = _results()
  results["phi"] = {
    "teacher_on_phi_target_test_accuracy_mean": 0.8512,
    "teacher_on_phi_target_test_accuracy_std": 0.002,
    "teacher_on_phi_target_test_cross_entropy_mean": 0.61,
    "teacher_on_phi_target_test_cross_entropy_std": 0.01,
    "phi_target_test_size": 10000,
    "latent_dim": 16,
    "test_neg_elbo": 420.37,
    "test_kl": 14.78,
  }
  table = report.markdown_table(results)
  assert "accuracy 0.8512 ± 0.0020, cross-entropy 0.6100 ± 0.0100" in table
  assert "VAE (latent 16): test −ELBO 420.37 (KL 14.78)" in table  # older results: no train_on
  results["phi"]["train_on"] = "fashion_mnist Small (1000 garments)"
  table = report.markdown_table(results)
  assert "VAE (latent 16, trained on fashion_mnist Small (1000 garments)): test −ELBO" in table


def test_unevaluated_epochs_are_null_in_json_and_skipped_in_figures(tmp_path):
  history = {
    m: np.array([[np.nan, 0.5, 0.6], [np.nan, 0.4, 0.8]], np.float32)
    for m in ("test_accuracy", "test_cross_entropy")
  }
  history["train_loss"] = np.ones((2, 3), np.float32)
  arms = report.group_runs("no_teacher", [Run(0.0, 1.0, 0, -1), Run(0.0, 1.0, 1, -1)], history, 1.0)
  entry = arms["no_teacher"]
  assert entry["test_accuracy"][0][0] is None and entry["test_accuracy"][1][2] == np.float32(0.8)
  assert abs(entry["final"]["test_accuracy"]["mean"] - 0.7) < 1e-6
  results = {**_results(), "arms": arms, "effects": {}}
  report.write(results, str(tmp_path))
  text = (tmp_path / "results.json").read_text()
  assert "NaN" not in text and json.loads(text)["arms"]["no_teacher"]["test_accuracy"][0][0] is None
  assert (tmp_path / "test_accuracy.png").stat().st_size > 0


def test_same_test_set_is_not_scored_twice():
  """identity / conv: target test = source test, so the class check repeats the teacher's line."""
  results = _results()
  results["teacher"]["test_accuracy"] = [0.9]
  results["phi"] = {
    "teacher_on_phi_target_test_accuracy": [0.9],
    "teacher_on_phi_target_test_accuracy_mean": 0.9,
    "teacher_on_phi_target_test_accuracy_std": 0.0,
    "teacher_on_phi_target_test_cross_entropy_mean": 0.3,
    "teacher_on_phi_target_test_cross_entropy_std": 0.0,
    "phi_target_test_size": 100,
  }
  table = report.markdown_table(results)
  assert table.count("accuracy 0.9000 ± 0.0000") == 1
  assert "φ keeps the class: the teachers score the same on φ(target test)" in table
  results["phi"]["teacher_on_phi_target_test_accuracy"] = [0.8]  # another draw (noise)
  assert "φ keeps the class: the teachers on φ(target test)" in report.markdown_table(results)


def test_results_json_is_strict_json_with_non_finite_values_named(tmp_path):
  results = _results()
  results["teacher"]["test_cross_entropy_std"] = float("inf")
  results["arms"]["no_teacher"]["final"]["test_cross_entropy"]["mean"] = np.float32("nan")
  report.write(results, str(tmp_path))
  text = (tmp_path / "results.json").read_text()
  loaded = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in results.json"))
  assert loaded["teacher"]["test_cross_entropy_std"] is None
  assert sorted(loaded["non_finite"]) == [
    "arms/no_teacher/final/test_cross_entropy/mean",
    "teacher/test_cross_entropy_std",
  ]


def test_diverged_runs_are_flagged_in_results_md(tmp_path):
  history = {
    m: np.full((3, 2), 0.5, np.float32)
    for m in ("train_loss", "test_accuracy", "test_cross_entropy")
  }
  history["test_cross_entropy"][1:, -1] = [5e7, 1e31]  # two of three runs blew up
  grid = [Run(1.0, 1.0, seed, 0) for seed in range(3)]
  arms = report.group_runs("teacher_phi", grid, history, 1.0)
  diverged = report.diverged_runs(arms, num_classes=10)
  assert diverged == [
    {
      "label": "teacher_phi",
      "runs": 2,
      "of": 3,
      "worst": pytest.approx(1e31, rel=1e-6),
      "limit": pytest.approx(10 * np.log(10)),
    }
  ]
  assert report.diverged_runs(_results()["arms"], num_classes=10) == []  # 0.0 … 1.1: fine
  results = _results()
  results["diverged"] = diverged
  report.write(results, str(tmp_path))
  table = (tmp_path / "results.md").read_text()
  assert (
    "**Diverged**: teacher_phi: 2 of 3 runs end with a test cross-entropy above 10·ln C" in table
  )
  assert "lower the learning rate" in table
