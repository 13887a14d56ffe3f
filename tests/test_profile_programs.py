"""benchmarks/profile_programs.py: the HLO classes, and the documented command (smoke sizes)."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from distill_jax import provenance
from tests.conftest import REPO_ROOT

sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import profile_programs  # noqa: E402


def test_operations_are_classed_by_what_their_computation_holds():
  def step(w, m, x):
    y = jnp.maximum(x @ w, 0.0)  # a matmul, then elementwise
    return w - 0.1 * m / (jnp.sqrt(m + 1.0) + 1e-8), y.sum(), x[jnp.argmax(y[:, 0])]

  args = (jnp.ones((64, 32)), jnp.ones((64, 32)), jnp.ones((16, 64)))
  hlo = jax.jit(step).lower(*args).compile().as_text()
  classes = profile_programs.classify_instructions(hlo)
  assert set(classes.values()) <= set(profile_programs.CLASSES)
  assert "matmul" in classes.values() and "optimizer" in classes.values()
  assert not set(classes) & {"while", "tuple"}  # control flow is not counted


def test_profile_smoke(shared_data_dir, tmp_path):
  result = subprocess.run(
    [
      sys.executable, os.path.join(REPO_ROOT, "benchmarks", "profile_programs.py"),
      f"--data_dir={shared_data_dir}", "--smoke", f"--out={tmp_path / 'traces'}",
      f"--json={tmp_path / 'profile.json'}",
    ],
    env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), XLA_FLAGS=""),
    capture_output=True, text=True, timeout=300, cwd=tmp_path,
  )  # fmt: skip
  assert result.returncode == 0, result.stderr[-3000:]
  (line,) = [line for line in result.stdout.splitlines() if line.startswith("JSON ")]
  summary = json.loads(line[len("JSON ") :])
  written = json.loads((tmp_path / "profile.json").read_text())
  assert written.pop("provenance")["commit"] == provenance.code_commit() and written == summary
  programs = {p["program"]: p for p in summary["programs"]}
  assert set(programs) == {"teacher_epoch_k1", "teacher_epoch_k2", "student_epoch_2_runs"}
  for program in programs.values():
    assert program["wall_seconds"] > 0 and os.path.isdir(program["trace"])
    shares = program["share_of_wall"]
    assert shares["matmul"] > 0  # the trace held the program's operations
    assert sum(shares.values()) + program["unaccounted_share"] == pytest.approx(1, abs=0.05)
