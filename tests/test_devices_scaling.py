"""``benchmarks/devices_scaling.py --smoke``: 1 device, 2 devices and 2 processes do the same work."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def test_devices_scaling_smoke_compares_devices_and_processes(shared_data_dir, tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  env.pop("JAX_PROCESS_ID", None)
  result = subprocess.run(
    [
      sys.executable, os.path.join(REPO_ROOT, "benchmarks", "devices_scaling.py"), "--smoke",
      f"--data_dir={shared_data_dir}", f"--tfds_dir={tmp_path / 'tfds'}",
    ],
    env=env, capture_output=True, text=True, timeout=400,
  )  # fmt: skip
  assert result.returncode == 0, result.stderr[-3000:]
  (line,) = [line for line in result.stdout.splitlines() if line.startswith("JSON ")]
  report = json.loads(line[len("JSON ") :])
  columns = report["columns"]
  assert list(columns) == ["1 device", "2 devices", "2 processes"]
  assert [c["num_devices"] for c in columns.values()] == [1, 2, 2]
  assert set(report["ratios"]) == {
    f"{measure} {name} / 1 device"
    for measure in ("teacher_steps_per_s", "student_run_epochs_per_s")
    for name in ("2 devices", "2 processes")
  }
  assert all(ratio > 0 for ratio in report["ratios"].values())
  one = columns["1 device"]
  for name in ("2 devices", "2 processes"):  # the same work: the same model up to rounding
    assert columns[name]["teacher_accuracy"] == pytest.approx(one["teacher_accuracy"], abs=0.02)
    for arm, accuracy in one["student_accuracy"].items():
      assert columns[name]["student_accuracy"][arm] == pytest.approx(accuracy, abs=0.02)
  assert "teacher: steps/s" in result.stdout and "2 processes / 1" in result.stdout
