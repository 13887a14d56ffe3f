"""A command line (``python -m <module> args``) run in a child forked from a forkserver that has
imported the command's modules once, for the tests of argument and config errors.

A fresh ``python -m experiments.distill --mapping=blur`` spends ~2.5 s importing jax, flax,
orbax and tensorflow-datasets before it reads its flags; the suite runs a few dozen such cases.
Here ``multiprocessing``'s forkserver preloads those modules once per test worker and every case
is a fork of it that runs the module as ``__main__`` (``runpy.run_module``) with its own
``sys.argv``, environment, working directory, stdout and stderr (files on fds 1 and 2): the same
code path as ``python -m``, tens of milliseconds a case. What it cannot show is start-up itself
(imports, JAX's environment variables read at import time), so cases that set ``JAX_*`` variables
and the runs that do real work keep using fresh processes (``subprocess``).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile

# What experiments.distill imports before it reads its flags (the slow part of its start-up).
PRELOAD = [
  "jax",
  "absl.app",
  "ml_collections.config_flags",
  "distill_jax.experiment",
  "experiments.launch",
  "experiments.cli_setup",
  "experiments.config_help",
]


@functools.cache
def _context():
  context = multiprocessing.get_context("forkserver")
  context.set_forkserver_preload(PRELOAD)
  return context


def _main(module: str, args: list[str], env: dict, cwd: str, out: str, err: str) -> None:
  """In the forked child: become ``python -m module *args`` with this environment."""
  for fd, path in ((1, out), (2, err)):
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(handle, fd)
    os.close(handle)
  os.environ.clear()
  os.environ.update(env)
  os.chdir(cwd)
  sys.path.insert(0, cwd)  # as ``python -m`` puts the working directory first
  sys.argv = [module, *args]
  runpy.run_module(module, run_name="__main__", alter_sys=True)


def run(
  module: str, args: list[str], *, env: dict, cwd: str, timeout: float
) -> subprocess.CompletedProcess:
  """``subprocess.run([python, "-m", module, *args], env=env, cwd=cwd, capture_output=True,
  text=True, timeout=timeout)``, forked from the preloaded server instead of started afresh."""
  if any(name.startswith("JAX_") and os.environ.get(name) != value for name, value in env.items()):
    raise ValueError("JAX_* variables are read when jax is imported: use a fresh subprocess")
  with tempfile.TemporaryDirectory(prefix="forked_cli_") as folder:
    out, err = os.path.join(folder, "stdout"), os.path.join(folder, "stderr")
    child = _context().Process(target=_main, args=(module, list(args), dict(env), cwd, out, err))
    child.start()
    child.join(timeout)
    if child.exitcode is None:
      child.kill()
      child.join()
      raise subprocess.TimeoutExpired([module, *args], timeout)
    with open(out) as stdout, open(err) as stderr:
      return subprocess.CompletedProcess(
        [module, *args], child.exitcode, stdout.read(), stderr.read()
      )
