"""``benchmarks/devices_scaling.py --smoke``: the experiment command on 1 device, 2 devices on
data and 2 processes gives the same results, and the runs axis's per-device work falls with the
devices while holding no collective. (The fourth layout, 2 devices on runs, is the one
``gpu_check.sh --parts=scaling`` runs: ``tests/test_gpu_check.py``.)"""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT


def test_devices_scaling_smoke_compares_the_layouts(shared_data_dir, shared_tfds_dir, tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  env.pop("JAX_PROCESS_ID", None)
  result = subprocess.run(
    [
      sys.executable, os.path.join(REPO_ROOT, "benchmarks", "devices_scaling.py"), "--smoke",
      "--workloads=main", "--devices=2", "--layouts=1,data,processes", "--cost=1,2,4", f"--data_dir={shared_data_dir}",
      f"--tfds_dir={shared_tfds_dir}", f"--json={tmp_path / 'scaling.json'}",
    ],
    env=env, capture_output=True, text=True, timeout=600,
  )  # fmt: skip
  assert result.returncode == 0, result.stderr[-3000:]
  (line,) = [line for line in result.stdout.splitlines() if line.startswith("JSON ")]
  report = json.loads(line[len("JSON ") :])
  written = json.loads((tmp_path / "scaling.json").read_text())
  assert "devices_scaling.py --smoke" in written.pop("provenance")["command"]
  assert written == report
  columns = report["columns"]
  names = ["1 device", "2 devices, data", "2 processes, runs"]
  assert list(columns) == [f"main: {name}" for name in names]
  assert [c["devices"] for c in columns.values()] == [1, 2, 2]
  assert all(ratio > 0 for ratio in report["ratios"].values())
  one = columns["main: 1 device"]
  for name, column in columns.items():  # the same work: the same results up to rounding
    assert column["teacher_accuracy"] == pytest.approx(one["teacher_accuracy"], abs=0.02), name
    assert column["delta_accuracy"] == pytest.approx(one["delta_accuracy"], abs=0.02), name
  cost = report["cost"]
  assert [row["devices"] for row in cost] == [1, 2, 4]
  assert [row["runs"] for row in cost] == [10, 10, 12]
  assert all(row["collectives"] == [] for row in cost)
  flops = [row["flops"] for row in cost]
  for row in cost:  # per device: its share of the (padded) runs, ⌈10/N⌉ of 10
    share = row["runs"] / row["devices"] / 10
    assert row["flops"] == pytest.approx(flops[0] * share, rel=0.05), row
  assert "vs 1 device" in result.stdout and "GFLOP per device" in result.stdout
