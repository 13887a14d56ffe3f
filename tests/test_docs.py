"""The project speaks of itself only: no work-log references in code, docs, tests or scripts.

Provenance of a number is a command, a commit and a machine; the history of what changed when
is CHANGELOG.md (and git). Each file of the checkout is checked line by line.
"""

import re
import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT

SUFFIXES = (".py", ".md", ".sh", ".toml")
EXTRA_FILES = (".ci/run",)
ALLOWED = ("CHANGELOG.md",)  # the dated history may name what it likes
# Built from pieces so that this file's own source does not match it.
WORK_LOG = re.compile(
  r"(?i)\b(" + "sess" + r"ions? [0-9]+|" + "iss" + r"ues? [0-9]+|" + "this " + "session)"
)


def _tracked_files() -> list[str]:
  if shutil.which("git") is None:
    pytest.skip("git is not installed")
  try:
    listed = subprocess.run(
      ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
  except (OSError, subprocess.SubprocessError) as error:
    pytest.skip(f"git ls-files failed: {error}")
  if listed.returncode != 0:
    pytest.skip(f"not a git checkout: {listed.stderr.strip()}")
  return [name for name in listed.stdout.split("\0") if name]


def test_no_work_log_references_in_the_checkout():
  checked, found = 0, []
  for name in _tracked_files():
    if name in ALLOWED or not (name.endswith(SUFFIXES) or name in EXTRA_FILES):
      continue
    path = REPO_ROOT / name
    if not path.is_file():  # deleted in the working tree, not yet in the index
      continue
    checked += 1
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
      match = WORK_LOG.search(line)
      if match:
        found.append(f"{name}:{number}: {match.group(0)!r} in {line.strip()[:120]!r}")
  assert checked > 0
  assert not found, (
    "work-log references (give a command, a commit and a machine instead, or drop them):\n"
    + "\n".join(found)
  )
