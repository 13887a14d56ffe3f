"""Where a number came from: the code's commit and the machine, recorded beside results.

``code_commit()`` is the short git commit of the checkout the package runs from, with
``+changes`` when tracked files other than the documentation (Markdown files, ``docs/``) differ
from it (None outside a git checkout, e.g. a wheel);
``machine()`` names the OS, the architecture, the CPU count and model and the JAX devices. A
report quotes both with its command, so a reader knows which code on which machine gave it.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.cache
def code_commit() -> str | None:
  """``abc1234`` (``abc1234+changes`` with uncommitted changes to tracked files other than the
  documentation), or None."""

  def git(*args: str) -> str | None:
    try:
      done = subprocess.run(
        ["git", "-C", _PACKAGE_DIR, *args], capture_output=True, text=True, timeout=10
      )
    except (OSError, subprocess.SubprocessError):
      return None
    return done.stdout.strip() if done.returncode == 0 else None

  commit = git("rev-parse", "--short", "HEAD")
  if not commit:
    return None
  # Edits to the documentation (Markdown, docs/) change no result: only the others count.
  changes = git(
    "status", "--porcelain", "--untracked-files=no", "--", ":(top)",
    ":(top,exclude)docs", ":(top,exclude,glob)**/*.md",
  )  # fmt: skip
  return commit + ("+changes" if changes else "")


def cpu_model() -> str | None:
  """The CPU's model name from /proc/cpuinfo (Linux), else ``platform.processor()``, or None."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or None


def machine() -> str:
  """``Linux x86_64, 2 CPUs (AMD EPYC 7B13), devices cpu:0``."""
  import jax

  model = cpu_model()
  devices = ", ".join(str(d) for d in jax.devices())
  return (
    f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    + (f" ({model})" if model else "")
    + f", devices {devices}"
  )


def _command_line() -> list[str]:
  """``sys.argv`` as typed: ``-m <module>`` for a module run (``sys.argv[0]`` is then its file)."""
  import sys

  main = sys.modules.get("__main__")
  spec = getattr(main, "__spec__", None)
  if spec is not None and spec.name and spec.name != "__main__":
    return ["-m", spec.name.removesuffix(".__main__"), *sys.argv[1:]]
  return list(sys.argv)


def record(argv: list[str] | None = None) -> dict:
  """What a result file stores of its origin: the command, the commit, the machine and the date.

  ``argv`` defaults to this process's command line (``-m <module>`` for ``python -m``); the
  command is written as ``python <argv...>``, to paste back into a shell.
  """
  import datetime
  import shlex

  import jax

  argv = _command_line() if argv is None else list(argv)
  return {
    "command": shlex.join(["python", *argv]),
    "commit": code_commit(),
    "machine": machine(),
    "jax": jax.__version__,
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
  }


# Read once, when the package is first imported: a checkout that changes while a long run goes
# on (a commit, an edit) must not relabel the run's results with code it did not run.
code_commit()
