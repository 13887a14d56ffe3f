"""tests/suite_record.py: a pytest run writes its counts, time and slowest tests to the JSON file
the environment names, and nothing without it."""

import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT

SAMPLE = """
import time, pytest

def test_passes():
  time.sleep(0.2)

def test_fails():
  assert False

@pytest.mark.skip(reason="shown")
def test_skipped():
  pass
"""


def _pytest(folder, env):
  return subprocess.run(
    [sys.executable, "-m", "pytest", "-q", "-p", "tests.suite_record", "-p", "no:cacheprovider",
     "-o", "addopts=", str(folder / "test_sample.py")],
    cwd=folder, env=env, capture_output=True, text=True, timeout=120,
  )  # fmt: skip


def test_a_run_writes_its_record(tmp_path):
  (tmp_path / "test_sample.py").write_text(SAMPLE)
  out = tmp_path / "out" / "suite.json"
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), DISTILL_JAX_SUITE_JSON=str(out))
  result = _pytest(tmp_path, env)
  assert result.returncode == 1, result.stdout[-2000:]  # one test fails
  record = json.loads(out.read_text())
  assert (record["passed"], record["failed"], record["skipped"]) == (1, 1, 1)
  assert record["exit_status"] == 1
  assert record["seconds"] >= 0.2
  slowest = record["slowest"][0]
  assert slowest["test"].endswith("test_passes") and slowest["seconds"] >= 0.2
  assert record["provenance"]["command"].startswith("python -m pytest")


def test_without_the_variable_nothing_is_written(tmp_path):
  (tmp_path / "test_sample.py").write_text(SAMPLE)
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
  env.pop("DISTILL_JAX_SUITE_JSON", None)
  _pytest(tmp_path, env)
  assert list(tmp_path.rglob("*.json")) == []
