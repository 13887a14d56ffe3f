"""The documentation's Python snippets run as written (each in a fresh interpreter): every
```python block of README.md and of each docs/*.md page (docs/studies/ holds generated study
reports, not snippets)."""

import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def python_snippets(page) -> list[str]:
  """The ```python blocks of one page, in order."""
  return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def documented_snippets() -> list[tuple[str, int, str]]:
  """(page relative to the repository, index on the page, code) of every documented snippet."""
  return [
    (str(page.relative_to(REPO_ROOT)), index, code)
    for page in PAGES
    for index, code in enumerate(python_snippets(page))
  ]


SNIPPETS = documented_snippets()


def test_readme_and_docs_have_snippets():
  pages = {page for page, _, _ in SNIPPETS}
  assert "README.md" in pages
  assert len(pages) >= 2 and len(SNIPPETS) >= 6


@pytest.mark.parametrize(
  "page, index, code", SNIPPETS, ids=[f"{page}:{index}" for page, index, _ in SNIPPETS]
)
def test_readme_snippet_runs(page, index, code):
  result = subprocess.run(
    [sys.executable, "-c", code],
    cwd=REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 0, f"{page}, snippet {index}:\n{result.stderr[-2000:]}"


@pytest.mark.parametrize("page", PAGES[1:], ids=[page.name for page in PAGES[1:]])
def test_readme_docs_pages_say_what_they_answer(page):
  """Each docs page opens with its title and one line saying what it answers (REPORT.md is the
  reproduction's own output and starts with its title only)."""
  lines = page.read_text().splitlines()
  assert lines and lines[0].startswith("# "), f"{page.name}: no title on the first line"
  if page.name != "REPORT.md":
    assert lines[2].startswith("What this page answers:"), f"{page.name}: {lines[2]!r}"
