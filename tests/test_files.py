"""Tests for distill_jax/files.py: atomic writes keep the previous file on any failure."""

import errno
import json
import os

import pytest

from distill_jax import files
from distill_jax import report


def test_atomic_write_replaces_the_whole_file(tmp_path):
  path = tmp_path / "results.json"
  files.write_json(path, {"a": 1})
  files.write_json(path, {"b": 2})
  assert json.loads(path.read_text()) == {"b": 2}
  assert os.listdir(tmp_path) == ["results.json"]  # no temporary file left


def test_an_error_mid_write_keeps_the_previous_file(tmp_path):
  path = tmp_path / "results.md"
  files.write_text(path, "old")
  with pytest.raises(RuntimeError, match="boom"):
    with files.atomic_write(path) as file:
      file.write("half of the new")
      raise RuntimeError("boom")
  assert path.read_text() == "old"
  assert os.listdir(tmp_path) == ["results.md"]


class _FullDisk:
  """A file object whose writes fail with ENOSPC after ``budget`` bytes, as on a full disk."""

  def __init__(self, file, budget):
    self._file, self._budget = file, budget

  def write(self, data):
    if len(data) > self._budget:
      raise OSError(errno.ENOSPC, "No space left on device")
    self._budget -= len(data)
    return self._file.write(data)

  def __getattr__(self, name):
    return getattr(self._file, name)

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self._file.close()


def test_a_full_disk_during_the_report_leaves_the_previous_results_intact(tmp_path, monkeypatch):
  previous = {"experiment": "before", "arms": {}}
  files.write_json(tmp_path / "results.json", previous)
  real_fdopen = os.fdopen
  monkeypatch.setattr(
    files.os, "fdopen", lambda fd, mode: _FullDisk(real_fdopen(fd, mode), budget=4096)
  )
  results = {"experiment": "after", "arms": {}, "padding": "x" * 100_000}
  with pytest.raises(OSError) as raised:
    report.write(results, str(tmp_path))
  assert raised.value.errno == errno.ENOSPC
  assert json.loads((tmp_path / "results.json").read_text()) == previous
  assert sorted(os.listdir(tmp_path)) == ["results.json"]


def test_only_whole_file_modes():
  with pytest.raises(ValueError, match="mode 'w' or 'wb'"):
    with files.atomic_write("x", "a"):
      pass


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_permissions_the_umask_allows(tmp_path, umask, mode):
  previous = os.umask(umask)
  try:
    files.write_text(tmp_path / "results.md", "shared")
    files.write_json(tmp_path / "results.json", {"a": 1})
  finally:
    os.umask(previous)
  for name in ("results.md", "results.json"):
    assert os.stat(tmp_path / name).st_mode & 0o777 == mode
