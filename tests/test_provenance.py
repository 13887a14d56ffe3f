"""The commit and machine a report records."""

import os
import subprocess
import sys

import pytest

from distill_jax import provenance
from tests.conftest import REPO_ROOT


def test_machine_names_the_cpus_and_devices():
  text = provenance.machine()
  assert f"{os.cpu_count()} CPUs" in text and "devices cpu:0" in text


def test_code_commit_is_the_checkouts_head():
  try:
    head = subprocess.run(
      ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
      capture_output=True,
      text=True,
      check=True,
    ).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    pytest.skip("not a git checkout")
  commit = provenance.code_commit()
  assert commit is not None and commit.split("+")[0] == head


def test_outside_a_checkout_there_is_no_commit(monkeypatch, tmp_path):
  monkeypatch.setattr(provenance, "_PACKAGE_DIR", str(tmp_path))
  provenance.code_commit.cache_clear()
  try:
    assert provenance.code_commit() is None
  finally:
    provenance.code_commit.cache_clear()


def test_record_names_the_command_commit_machine_and_date():
  record = provenance.record(["benchmarks/x.py", "--data_dir=a b"])
  assert record["command"] == "python benchmarks/x.py '--data_dir=a b'"
  assert record["commit"] == provenance.code_commit()
  assert record["machine"] == provenance.machine()
  assert len(record["date"]) == 10 and record["date"][4] == "-"


def test_the_commit_is_read_when_the_package_is_imported():
  """A long run records the commit it started from, not the one checked out when it ends."""
  probe = (
    "from distill_jax import provenance as p; i = p.code_commit.cache_info(); "
    "print(i.misses, i.currsize)"
  )
  done = subprocess.run(
    [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
  )
  assert done.stdout.split() == ["1", "1"], done.stderr[-2000:]


def test_a_module_run_is_recorded_as_python_dash_m(tmp_path):
  probe = "from distill_jax import provenance; print(provenance.record()['command'])"
  (tmp_path / "probe_module.py").write_text(probe)
  done = subprocess.run(
    [sys.executable, "-m", "probe_module", "--flag=a b"],
    cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
    capture_output=True, text=True, timeout=60,
  )  # fmt: skip
  assert done.stdout.strip() == "python -m probe_module '--flag=a b'", done.stderr[-2000:]


def test_only_changes_outside_the_documentation_mark_the_commit(monkeypatch, tmp_path):
  def git(*args):
    subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

  package = tmp_path / "pkg"
  (tmp_path / "docs").mkdir()
  package.mkdir()
  for path in ("README.md", "docs/page.md", "docs/result.json", "pkg/code.py"):
    (tmp_path / path).write_text("a\n")
  git("init", "-q")
  git("add", ".")
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
  monkeypatch.setattr(provenance, "_PACKAGE_DIR", str(package))
  try:
    for path in ("README.md", "docs/page.md", "docs/result.json"):
      (tmp_path / path).write_text("b\n")
      provenance.code_commit.cache_clear()
      assert "+" not in provenance.code_commit(), path
    (package / "code.py").write_text("b\n")
    provenance.code_commit.cache_clear()
    assert provenance.code_commit().endswith("+changes")
  finally:
    provenance.code_commit.cache_clear()
