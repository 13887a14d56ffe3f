"""The quoted numbers of a documentation page, and whether its result files hold them.

A page names the JSON files its results come from in an HTML comment (not rendered)::

  <!-- numbers: report.json, results/parity.json -->
  <!-- numbers: target_size/*/study.json; constants: 60 s, 0.25 -->

Paths are relative to the page's folder (globs allowed), so a generated report that declares
``report.json`` holds wherever it is written; ``constants`` lists the quoted
values that are settings rather than results (a timeout, a noise variance), exactly as written.

A result-like number is one a reader takes for a measurement: a signed decimal (``+0.0053``),
a decimal with two or more places (``0.8834``, ``0.96``), or any number with a unit of time,
rate or ratio (``46 s``, ``53 ms``, ``9 min 47 s``, ``12 minutes``, ``1.67×``, ``23%``). Integers without a
unit (sizes, seeds, epochs) and one-place decimals (``0.1``, a setting) are not checked. Code
(fenced blocks and inline spans), link targets and comments are skipped.

Numbers written together are checked together: an interval ``+0.0053 [+0.0033, +0.0073]`` and
a spread ``0.8834 ± 0.0026`` match only when one record of the files holds all of them (a
record: the numbers directly under one JSON object, or one list of numbers), so a mean cannot
borrow its bounds from another effect. A lone number matches any value of the files.

A quoted number matches a value when the value, rounded to the quoted places, gives the same
text: with the quoted sign when one is written, in seconds for
``s``/``min`` (minutes also as ``value / 60``), in seconds or milliseconds for ``ms``, as a
fraction or a percentage for ``%``. Curves (``history``) and settings (``config``, ``args``)
are not results and are not searched.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import re

# Curves, settings, raw runs, and per-unit copies of the summaries' inputs.
SKIPPED_KEYS = frozenset({"history", "config", "args", "curves", "runs", "units"})
# A value is a duration when its key says so; durations match only times, others only non-times.
_DURATION_KEY = re.compile(r"((^|_)(seconds?|s|time)$|^wall$)")
_TIME_UNITS = frozenset({"s", "ms", "µs", "min", "min s", "h"})

_DECLARATION = re.compile(r"<!--\s*numbers:\s*(.*?)\s*-->", re.S)
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_INLINE_CODE = re.compile(r"`(?:[^`\n]|\n(?![ \t]*\n))*`")  # may span lines, not paragraphs
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_LINK_TARGET = re.compile(r"\]\([^)]*\)")
_TOKEN = re.compile(
  r"(?<![\w.\-/+−])"
  r"(?P<sign>[+−-])?"
  r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)"
  r"(?:\.(?P<frac>\d+))?"
  r"(?![\d.]\d|[eE][-+]?\d)"
  r"(?:\s?(?P<unit>min\s\d+\ss|×(?!\s?\d)|%|ms|µs|s|min|h|seconds?|minutes?|hours?)(?![\w/]))?"
  r"(?![\w])"
)


@dataclasses.dataclass(frozen=True)
class Quoted:
  """One result-like number as the page writes it."""

  text: str
  line: int
  sign: str  # "+", "-" or "" (unsigned)
  digits: str  # the magnitude without separators, e.g. "0.0053" or "1126"
  places: int
  unit: str  # "", "×", "%", "s", "ms", "µs", "min", "min s"
  seconds_extra: int = 0  # the "47 s" of "9 min 47 s"
  span: tuple[int, int] = (0, 0)  # where the page writes it


def declaration(text: str) -> tuple[list[str], set[str]] | None:
  """The page's result files and constants, or None when it declares none (a declaration
  shown as code, in a fence or backticks, is an example, not the page's own)."""
  for pattern in (_FENCE, _INLINE_CODE):
    text = pattern.sub("", text)
  match = _DECLARATION.search(text)
  if match is None:
    return None
  sources, constants = [], set()
  for part in match.group(1).split(";"):
    part = part.strip()
    if part.startswith("constants:"):
      constants |= {c.strip() for c in part[len("constants:") :].split(",") if c.strip()}
    else:
      sources += [s.strip() for s in part.split(",") if s.strip()]
  return sources, constants


def _prose(text: str) -> str:
  """The page with code, comments and link targets blanked, line numbers kept."""

  def blank(match):
    return re.sub(r"[^\n]", " ", match.group(0))

  for pattern in (_FENCE, _COMMENT, _INLINE_CODE, _LINK_TARGET):
    text = pattern.sub(blank, text)
  return text


def quoted_numbers(text: str) -> list[Quoted]:
  """Every result-like number of a page, in order."""
  prose = _prose(text)
  found = []
  for match in _TOKEN.finditer(prose):
    sign = {"+": "+", "−": "-", "-": "-"}.get(match.group("sign") or "", "")
    frac = match.group("frac") or ""
    unit = match.group("unit") or ""
    extra = 0
    if re.fullmatch(r"min\s\d+\ss", unit):
      extra, unit = int(re.search(r"\d+", unit).group(0)), "min s"
    unit = {
      "second": "s",
      "seconds": "s",
      "minute": "min",
      "minutes": "min",
      "hour": "h",
      "hours": "h",
    }.get(unit.strip(), unit.strip())
    places = len(frac)
    result_like = bool(unit) or places >= 2 or (sign and places >= 1)
    if not result_like:
      continue
    integer = match.group("int").replace(",", "")
    digits = integer + ("." + frac if frac else "")
    line = prose.count("\n", 0, match.start()) + 1
    text = match.group(0).strip()
    span = (match.start(), match.start() + len(text))
    found.append(Quoted(text, line, sign, digits, places, unit, extra, span))
  return found


_INTERVAL_GLUE = (re.compile(r"\s*\[\s*$"), re.compile(r"\s*,\s*$"), re.compile(r"\s*\]"))
_SPREAD_GLUE = re.compile(r"\s*±\s*$")


def grouped(text: str) -> list[tuple[Quoted, ...]]:
  """The page's quoted numbers, an interval ``m [l, h]`` or a spread ``m ± s`` as one group."""
  prose = _prose(text)
  numbers = quoted_numbers(text)
  groups, i = [], 0

  def between(a: Quoted, b: Quoted) -> str:
    return prose[a.span[1] : b.span[0]]

  while i < len(numbers):
    a = numbers[i]
    if i + 2 < len(numbers):
      b, c = numbers[i + 1], numbers[i + 2]
      first, second, close = _INTERVAL_GLUE
      if (
        first.fullmatch(between(a, b))
        and second.fullmatch(between(b, c))
        and close.match(prose, c.span[1])
      ):
        groups.append((a, b, c))
        i += 3
        continue
    if i + 1 < len(numbers) and _SPREAD_GLUE.fullmatch(between(a, numbers[i + 1])):
      groups.append((a, numbers[i + 1]))
      i += 2
      continue
    groups.append((a,))
    i += 1
  return groups


Value = tuple[float, bool]  # a number, and whether it is a duration


def _number(node) -> bool:
  return isinstance(node, (int, float)) and not isinstance(node, bool) and math.isfinite(node)


def records(tree, skipped=SKIPPED_KEYS) -> list[list[Value]]:
  """The records of a JSON tree: the numbers directly under each object, and each list's numbers.

  Keys in ``skipped`` are not entered; booleans and non-finite numbers are not numbers here.
  Each value comes with whether it is a duration (its key, or its object's key, names seconds,
  wall or time).
  """
  out = []
  stack = [(tree, "")]
  while stack:
    node, key = stack.pop()
    if isinstance(node, dict):  # under a duration's key ("seconds": {...}) all are durations
      inherited = bool(_DURATION_KEY.search(key.lower()))
      items = [(str(k), value) for k, value in node.items() if k not in skipped]
      record = [
        (float(v), inherited or bool(_DURATION_KEY.search(k.lower())))
        for k, v in items
        if _number(v)
      ]
      stack += [(value, k) for k, value in items if not _number(value)]
    elif isinstance(node, list):
      duration = bool(_DURATION_KEY.search(key.lower()))
      record = [(float(v), duration) for v in node if _number(v)]
      stack += [(value, key) for value in node if not _number(value)]
    else:
      continue
    if record:
      out.append(record)
  return out


def numeric_values(tree, skipped=SKIPPED_KEYS) -> list[Value]:
  """Every number of a JSON tree outside the skipped keys, with whether it is a duration."""
  return [value for record in records(tree, skipped) for value in record]


def load_sources(folder: str, patterns: list[str]) -> tuple[list[list[Value]], list[str]]:
  """The records of the files the patterns name, and the patterns that name no file."""
  found, missing = [], []
  for pattern in patterns:
    paths = sorted(glob.glob(os.path.join(folder, pattern)))
    if not paths:
      missing.append(pattern)
    for path in paths:
      with open(path, encoding="utf-8") as file:
        found += records(json.load(file))
  return found, missing


def _candidates(value: float, unit: str) -> list[float]:
  if unit == "%":
    return [value, value * 100]
  if unit == "ms":
    return [value, value * 1e3]
  if unit == "µs":
    return [value, value * 1e6]
  if unit == "min":
    return [value, value / 60]
  return [value]


def _formatted(value: float, places: int, signed: bool) -> str:
  text = f"{value:+.{places}f}" if signed else f"{abs(value):.{places}f}"
  return text


def matches(quoted: Quoted, values: list[Value]) -> bool:
  """Whether some value of the right kind, rounded as quoted, gives the quoted text."""
  signed = bool(quoted.sign)
  want = (quoted.sign + quoted.digits) if signed else quoted.digits
  is_time = quoted.unit in _TIME_UNITS
  values = [value for value, duration in values if duration == is_time]
  if quoted.unit == "min s":
    seconds = int(quoted.digits) * 60 + quoted.seconds_extra
    return any(round(value) == seconds for value in values)
  for value in values:
    for candidate in _candidates(value, quoted.unit):
      if _formatted(candidate, quoted.places, signed) == want:
        return True
  return False


def group_matches(group: tuple[Quoted, ...], found: list[list[Value]]) -> bool:
  """Whether one record holds every number of the group (a lone number: any value)."""
  if len(group) == 1:
    return matches(group[0], [value for record in found for value in record])
  return any(all(matches(q, record) for q in group) for record in found)


def unmatched(text: str, folder: str) -> tuple[list[tuple[Quoted, ...]], list[str], int]:
  """The page's groups its files do not hold, its missing files, and how many groups it quotes.

  A page without a declaration has no files: every result-like number it quotes is unmatched.
  Constants are left out of their groups.
  """
  declared = declaration(text)
  sources, constants = declared if declared else ([], set())
  found, missing = load_sources(folder, sources)
  groups = [tuple(q for q in g if q.text not in constants) for g in grouped(text)]
  groups = [g for g in groups if g]
  return [g for g in groups if not group_matches(g, found)], missing, len(groups)


def nudged(quoted: Quoted) -> Quoted:
  """The same quote with its last digit moved by three: a number the files should not hold."""
  step = 10.0**-quoted.places
  magnitude = float(quoted.digits) + 3 * step
  digits = f"{magnitude:.{quoted.places}f}"
  return dataclasses.replace(quoted, digits=digits, text=quoted.sign + digits)


def power(text: str, folder: str) -> tuple[int, int]:
  """How many of the page's matched numbers, each moved by ``nudged``, the check catches, of how
  many: the chance that a number mistyped in its last digit would fail the test."""
  declared = declaration(text)
  sources, constants = declared if declared else ([], set())
  found, _ = load_sources(folder, sources)
  caught = total = 0
  for group in grouped(text):
    group = tuple(q for q in group if q.text not in constants)
    if not group or not group_matches(group, found):
      continue
    for i, q in enumerate(group):
      if q.unit == "min s":
        continue
      total += 1
      moved = (*group[:i], nudged(q), *group[i + 1 :])
      caught += not group_matches(moved, found)
  return caught, total
