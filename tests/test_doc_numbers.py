"""Every result-like number the documentation quotes is in the JSON file it came from.

Each page declares its result files in a comment (``tests/doc_numbers.py`` says how); a number
that none of them holds, rounded as quoted, fails here with its page and line. The checker
itself is tested on small pages and files below, and its power on the real pages: numbers
moved in their last digit must fail.
"""

import ast
import json

import pytest

from tests import doc_numbers
from tests.conftest import REPO_ROOT

PAGES = [
  REPO_ROOT / "README.md",
  REPO_ROOT / "benchmarks" / "README.md",
  *sorted((REPO_ROOT / "docs").glob("*.md")),
  *sorted((REPO_ROOT / "docs" / "studies").glob("*.md")),
]
IDS = [str(page.relative_to(REPO_ROOT)) for page in PAGES]
# Config files' docstrings hold their command and expected result, as big_vision's do.
CONFIGS = sorted((REPO_ROOT / "experiments" / "configs").glob("*.py"))


def _text(path) -> str:
  if path.suffix == ".py":
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
  return path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
  "page", PAGES + CONFIGS, ids=IDS + [str(c.relative_to(REPO_ROOT)) for c in CONFIGS]
)
def test_every_quoted_number_is_in_the_pages_result_files(page):
  text = _text(page)
  unmatched, missing, _ = doc_numbers.unmatched(text, str(page.parent))
  assert not missing, f"{page.name} declares result files that do not exist: {missing}"
  lines = [f"line {g[0].line}: {' '.join(q.text for q in g)}" for g in unmatched]
  assert not unmatched, (
    f"{page.name} quotes numbers that its declared result files do not hold (fix the number, "
    "regenerate it from its JSON, or declare the JSON in its <!-- numbers: ... --> comment):\n"
    + "\n".join(lines)
  )


def test_the_check_catches_numbers_moved_in_their_last_digit():
  """Its power on the real pages: most numbers moved by three in their last digit fail."""
  caught = total = 0
  for page in PAGES + CONFIGS:
    c, t = doc_numbers.power(_text(page), str(page.parent))
    caught, total = caught + c, total + t
  assert total > 500  # the pages quote that many results
  assert caught / total >= 0.9, f"only {caught} of {total} moved numbers caught"


# ----------------------------------------------------------------------------- the checker


def _write(folder, name, tree):
  (folder / name).write_text(json.dumps(tree))


def _texts(text):
  return [q.text for q in doc_numbers.quoted_numbers(text)]


def test_result_like_numbers_are_found_and_code_is_skipped():
  text = (
    "Δ +0.0053 and −0.0369, accuracy 0.8834, 23%, 1.67×, 46 s, 53 ms, 9 min 47 s, 1,126 s.\n"
    "Sizes 59,000 and 5 seeds, λ = 0.5, version 2.13.0, `0.1234 in code`, [a](x0.55.md).\n"
    "<!-- 0.9876 in a comment -->\n"
    "```\n0.4242 in a block\n```\n"
  )
  assert _texts(text) == [
    "+0.0053", "−0.0369", "0.8834", "23%", "1.67×", "46 s", "53 ms", "9 min 47 s", "1,126 s",
  ]  # fmt: skip
  quoted = doc_numbers.quoted_numbers(text)
  assert [(q.sign, q.digits, q.places, q.unit) for q in quoted[:2]] == [
    ("+", "0.0053", 4, ""),
    ("-", "0.0369", 4, ""),
  ]
  assert quoted[-1].digits == "1126" and quoted[-2].seconds_extra == 47


def test_values_match_rounded_as_quoted_with_sign_and_unit():
  values = [(0.005312, False), (-0.03688, False), (0.2349, False), (46.4, True), (0.0531, True)]

  def match(text):
    (quoted,) = doc_numbers.quoted_numbers(text)
    return doc_numbers.matches(quoted, values)

  assert match("+0.0053") and match("0.0053") and match("−0.0369")
  assert not match("+0.0054") and not match("−0.0053") and not match("+0.0369")
  assert match("23%") and match("46 s") and match("53 ms")
  assert match("46.40 s")  # 46.4 to two places
  assert not match("0.0531")  # a duration is not an accuracy
  assert not match("5 s")


def test_minutes_and_seconds_match_a_duration():
  values = [(587.2, True), (1126.1, True)]
  (quoted,) = doc_numbers.quoted_numbers("9 min 47 s")
  assert doc_numbers.matches(quoted, values)
  (quoted,) = doc_numbers.quoted_numbers("9 min 48 s")
  assert not doc_numbers.matches(quoted, values)
  (quoted,) = doc_numbers.quoted_numbers("1,126 s")
  assert doc_numbers.matches(quoted, values)


def test_an_interval_must_come_from_one_record(tmp_path):
  _write(
    tmp_path,
    "r.json",
    {
      "a": {"mean": 0.0053, "low": 0.0033, "high": 0.0073, "sd": 0.0026},
      "b": {"mean": 0.0048, "low": 0.0021, "high": 0.0076},
      "history": {"mean": 0.9999},
    },
  )
  declared = "<!-- numbers: r.json -->\n"

  def unmatched(line):
    found, missing, count = doc_numbers.unmatched(declared + line, str(tmp_path))
    assert not missing
    return [[q.text for q in group] for group in found]

  assert unmatched("Δ +0.0053 [+0.0033, +0.0073] and +0.0048 [+0.0021, +0.0076].") == []
  # each number is in the file, but the bounds belong to another effect
  assert unmatched("Δ +0.0053 [+0.0021, +0.0076].") == [["+0.0053", "+0.0021", "+0.0076"]]
  assert unmatched("0.0053 ± 0.0026") == [] and unmatched("0.0048 ± 0.0026") != []
  assert unmatched("0.9999") == [["0.9999"]]  # curves are not results


def test_constants_missing_files_and_undeclared_pages(tmp_path):
  _write(tmp_path, "r.json", {"accuracy": 0.8834})
  page = "<!-- numbers: r.json, gone/*.json; constants: 60 s, 95% -->\n0.8834, 95%, 60 s, 61 s"
  found, missing, count = doc_numbers.unmatched(page, str(tmp_path))
  assert missing == ["gone/*.json"]
  assert [g[0].text for g in found] == ["61 s"] and count == 2
  found, _, _ = doc_numbers.unmatched("accuracy 0.8834", str(tmp_path))
  assert [g[0].text for g in found] == ["0.8834"]  # no declaration: nothing matches
  shown = "Declare yours as `<!-- numbers: r.json -->`.\naccuracy 0.8834"
  found, _, _ = doc_numbers.unmatched(shown, str(tmp_path))
  assert len(found) == 1  # a declaration shown as code is an example, not the page's


def test_power_counts_the_moved_numbers_the_check_catches(tmp_path):
  _write(tmp_path, "r.json", {"x": 0.8834, "y": 0.8837, "e": [0.1234, 0.2345]})
  caught, total = doc_numbers.power("<!-- numbers: r.json -->\n0.8834, 0.1234", str(tmp_path))
  assert (caught, total) == (1, 2)  # 0.8837 is in the file too: that move goes unseen


def test_values_under_a_durations_key_are_durations(tmp_path):
  _write(tmp_path, "r.json", {"seconds": {"conv/jax": 57.1, "total": 120.4}, "accuracy": 0.57})
  page = "<!-- numbers: r.json -->\nconv 57 s of 120 s"
  found, _, count = doc_numbers.unmatched(page, str(tmp_path))
  assert found == [] and count == 2
  found, _, _ = doc_numbers.unmatched("<!-- numbers: r.json -->\n0.57 s", str(tmp_path))
  assert len(found) == 1  # an accuracy is not a time


def test_times_written_out_in_words_are_checked_too():
  assert _texts("took 12 minutes, 3 hours and 40 seconds; 9-15 minutes") == [
    "12 minutes",
    "3 hours",
    "40 seconds",
  ]  # fmt: skip  (a range is not a measurement)
  (quoted,) = doc_numbers.quoted_numbers("12 minutes")
  assert quoted.unit == "min" and doc_numbers.matches(quoted, [(718.3, True)])
