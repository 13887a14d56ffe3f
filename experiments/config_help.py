"""``--list_config``: every ``--config.*`` field with its value and one-line meaning.

The meanings are read from the config files themselves (``experiments/configs/*.py``,
``default.py`` first: the first file that documents a field wins; the optimizer fields from the
bullets of ``distill_jax/optim.py``'s docstring): the comment at the end of the line that sets a
field, else the comment block right above it. Nothing is written twice: a field documented in
its config file is documented here.
"""

from __future__ import annotations

import glob
import os
import re

CONFIG_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
OPTIM_FILE = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "distill_jax", "optim.py"
)
_ASSIGN = re.compile(r"^\s*([a-z_]\w*(?:\.\w+)*)\s*=\s*(.*?)\s*(?:#\s*(.*))?$")
_DICT_KEY = re.compile(r'^\s*"(\w+)"\s*:\s*(.*?)\s*(?:#\s*(.*))?$')
_OPENS_DICT = re.compile(r"ConfigDict\(\s*\{?\s*$")


def _first_sentence(text: str) -> str:
  text = " ".join(text.split())
  match = re.match(r"(.+?[^.]\.)(\s|$)", text)
  return (match.group(1) if match else text).rstrip(";.")


def _optimizer_meanings(path: str) -> dict[str, str]:
  """``optimizer.<field>`` from the bullets of optim.py's docstring (``- ``name``: ...``)."""
  with open(path, encoding="utf-8") as f:
    text = f.read()
  meanings = {}
  for bullet in re.findall(r"^- (.+(?:\n  .+)*)", text, re.M):
    for field in re.findall(r"``(\w+)``", bullet):
      meanings.setdefault(f"optimizer.{field}", _first_sentence(bullet.replace("``", "")))
  return meanings


def field_meanings(paths: list[str] | None = None) -> dict[str, str]:
  """``{field path: meaning}`` from the comments of the config files (``paths``: default, every
  ``experiments/configs/*.py`` with ``default.py`` first) and optim.py's docstring."""
  if paths is None:
    configs = sorted(glob.glob(os.path.join(CONFIG_FOLDER, "*.py")))
    configs.sort(key=lambda p: os.path.basename(p) != "default.py")
    paths = [p for p in configs if not p.endswith("__init__.py")]
  meanings: dict[str, str] = _optimizer_meanings(OPTIM_FILE)
  for path in paths:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
    above: list[str] = []
    open_dict = None  # the section a ConfigDict({...}) literal being read belongs to
    for line in lines:
      stripped = line.strip()
      if stripped.startswith("#"):
        above.append(stripped.lstrip("#").strip())
        continue
      key = _DICT_KEY.match(line) if open_dict else None
      assign = None if key else _ASSIGN.match(line)
      if key:
        name, comment = f"{open_dict}.{key.group(1)}", key.group(3)
      elif assign and "(" not in assign.group(1):
        target = assign.group(1)
        name = target.split(".", 1)[1] if target.startswith("config.") else target
        comment = assign.group(3)
        open_dict = name if _OPENS_DICT.search(assign.group(2)) else open_dict
      else:
        if stripped.startswith(("})", ")")):
          open_dict = None
        above = []
        continue
      meaning = comment or (" ".join(above) if above else "")
      if meaning and name not in meanings:  # the first file that documents a field: default.py
        meanings[name] = _first_sentence(meaning)
      above = []
  return meanings


def _leaves(tree: dict, prefix: str = ""):
  for name, value in tree.items():
    if isinstance(value, dict) and value:
      yield from _leaves(value, f"{prefix}{name}.")
    else:
      yield prefix + name, value


def _meaning(path: str, meanings: dict[str, str]) -> str:
  """The field's meaning, else its section's (``teacher.optimizer.learning_rate`` is documented
  as ``optimizer.learning_rate`` in optim.py, or by ``teacher.optimizer``)."""
  parts = path.split(".")
  for start in range(len(parts)):
    candidate = ".".join(parts[start:])
    if candidate in meanings:
      return meanings[candidate]
  for end in range(len(parts) - 1, 0, -1):
    if ".".join(parts[:end]) in meanings:
      return f"(in {'.'.join(parts[:end])}: {meanings['.'.join(parts[:end])]})"
  return ""


def describe(config) -> str:
  """One line per field: ``--config.<path>=<value>  <meaning>``."""
  meanings = field_meanings()
  rows = [(f"--config.{path}={value!r}", _meaning(path, meanings)) for path, value in
          _leaves(config.to_dict())]  # fmt: skip
  width = min(58, max(len(flag) for flag, _ in rows))
  return "\n".join(f"{flag:<{width}}  {meaning}".rstrip() for flag, meaning in rows)
