"""The README's Python snippets run as written (each in a fresh interpreter)."""

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

SNIPPETS = re.findall(r"```python\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S)


def test_readme_has_snippets():
  assert len(SNIPPETS) >= 2


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index):
  result = subprocess.run(
    [sys.executable, "-c", SNIPPETS[index]],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 0, result.stderr[-2000:]
