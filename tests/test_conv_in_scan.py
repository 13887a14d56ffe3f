"""``benchmarks/conv_in_scan.py`` runs (a few steps) and prints its JSON line."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_conv_in_scan_smoke():
  result = subprocess.run(
    [sys.executable, os.path.join(REPO_ROOT, "benchmarks", "conv_in_scan.py"), "--steps=3"],
    env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), XLA_FLAGS=""),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  (line,) = [line for line in result.stdout.splitlines() if line.startswith("JSON ")]
  summary = json.loads(line[len("JSON ") :])
  assert summary["benchmark"] == "conv_in_scan" and summary["steps"] == 3
  assert summary["loop_ms_per_step"] > 0 and summary["scan_ms_per_step"] > 0
  assert (
    summary["ratios"]["scan / loop"] == summary["scan_ms_per_step"] / summary["loop_ms_per_step"]
  )
