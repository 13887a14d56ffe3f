"""The benchmarks' common flags: subsets of the data, the tiny ``--smoke`` sizes the tests run,
and ``--json``, the result file the docs quote (``docs/results/<benchmark>.json``).

No JAX import here: ``devices_scaling.py`` parses its flags before JAX starts (it may set
``XLA_FLAGS`` for fake CPU devices first).
"""

from __future__ import annotations

import json
import os

SMOKE_SIZES = {
  "teacher_epochs": 2,
  "student_epochs": 2,
  "seeds": 1,
  "max_big": 640,
  "max_test": 200,
}


def add_size_flags(parser, smoke_help: str) -> None:
  """``--max_big``, ``--max_test`` (subsets: the first images) and ``--smoke`` (tiny sizes for
  the test suite, ``SMOKE_SIZES``; ``smoke_help`` says what else it sets)."""
  parser.add_argument("--max_big", type=int, default=None, help="the first images of Big")
  parser.add_argument("--max_test", type=int, default=None, help="the first images of Test")
  parser.add_argument(
    "--smoke", action="store_true",
    help="tiny sizes for the test suite: 640 Big / 200 Test images, 2 + 2 epochs, 1 seed"
    + (f"; {smoke_help}" if smoke_help else ""),
  )  # fmt: skip


def apply_smoke(args) -> None:
  """With ``--smoke``: the ``SMOKE_SIZES`` (explicit ``--max_big`` / ``--max_test`` kept)."""
  if args.smoke:
    for name, value in SMOKE_SIZES.items():
      if not name.startswith("max_") or getattr(args, name) is None:
        setattr(args, name, value)


def subset(data: dict, max_big: int | None, max_test: int | None) -> dict:
  """``data`` with Big and Test cut to their first ``max_big`` / ``max_test`` images."""
  data = dict(data)
  for split, limit in (("big", max_big), ("test", max_test)):
    if limit is not None:
      data[split] = tuple(array[:limit] for array in data[split])
  return data


def add_json_flag(parser) -> None:
  """``--json=PATH``: write the summary with its provenance (command, commit, machine, date)."""
  parser.add_argument(
    "--json", default=None,
    help="write the summary and its provenance here (the docs quote docs/results/<name>.json)",
  )  # fmt: skip


def emit(summary: dict, path: str | None) -> None:
  """Print the ``JSON {...}`` line and, given ``path``, write it with ``provenance`` added."""
  print("JSON " + json.dumps(summary), flush=True)
  if path:
    from distill_jax import files  # JAX starts here, after the flags
    from distill_jax import provenance

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    files.write_json(path, {"provenance": provenance.record(), **summary}, indent=1)
