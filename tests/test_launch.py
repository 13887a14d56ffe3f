"""``--num_processes``: the command becomes process 0 and starts the others before its imports."""

import os
import subprocess
import sys
import time

import pytest

from experiments import launch
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(
  "argv, want",
  [
    (["prog"], None),
    (["prog", "--num_processes=2"], 2),
    (["prog", "--num_processes", "3", "--lam=1"], 3),
    (["prog", "--num_processes=2", "--num_processes=4"], 4),  # the last one wins, as in absl
    (["prog", "--num_processes=two"], None),  # left to the flag parser, which reports it
    (["prog", "--num_processes"], None),
  ],
)
def test_num_processes_is_read_before_the_flag_parser(argv, want):
  assert launch._num_processes(argv) == want


def test_child_argv_drops_num_processes():
  argv = ["--mapping=conv", "--num_processes", "2", "--num_processes=2", "--lam=1"]
  assert launch.child_argv(argv) == ["--mapping=conv", "--lam=1"]


def test_cores_are_shared_evenly_and_apart():
  cores = sorted(os.sched_getaffinity(0))
  shares = [launch.cores_for(i, len(cores)) for i in range(len(cores))]
  assert sorted(c for share in shares for c in share) == cores
  assert launch.cores_for(0, len(cores) + 1) == set()  # more processes than cores: no pinning


def test_start_early_does_nothing_in_a_process_of_a_job(monkeypatch):
  monkeypatch.setenv("JAX_PROCESS_ID", "1")
  launch.start_early(["prog", "--num_processes=2"], "experiments.distill")
  assert launch._early_children == []


def test_a_bad_flag_is_reported_once_and_the_others_end_at_once(tmp_path):
  """Process 0 reports the unknown flag; process 1, never released, ends without a word."""
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu")
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    env.pop(name, None)
  started = time.monotonic()
  result = subprocess.run(
    [sys.executable, "-m", "experiments.distill", "--num_processes=2", "--no_such_flag=1",
     f"--workdir={tmp_path}/run"],
    env=env, capture_output=True, text=True, timeout=120,
  )  # fmt: skip
  assert result.returncode == 1
  assert result.stderr.count("Unknown command line flag 'no_such_flag'") == 1, result.stderr
  assert "launch:" not in result.stderr  # the other process ended at once: nothing to say
  assert time.monotonic() - started < 60  # not the grace period
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize(
  "environ, want",
  [
    ({}, None),
    ({"OMPI_COMM_WORLD_SIZE": "1"}, None),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, ("Open MPI (mpirun)", 2)),
    ({"PMI_SIZE": "4"}, ("MPICH / Intel MPI (mpirun)", 4)),
    ({"SLURM_STEP_NUM_TASKS": "3", "SLURM_NTASKS": "3"}, ("SLURM (srun)", 3)),
    ({"SLURM_NTASKS": "8"}, None),  # an allocation, not a step of several tasks
  ],
)
def test_foreign_launchers_are_recognized(environ, want):
  assert launch.foreign_launcher(environ) == want


def test_mpirun_without_distributed_is_one_line_before_any_work(tmp_path):
  """Two tasks of ``mpirun`` would each run the whole job into one workdir: refused."""
  env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu", OMPI_COMM_WORLD_SIZE="2")
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    env.pop(name, None)
  result = subprocess.run(
    [sys.executable, "-m", "experiments.distill", "--mapping=conv", f"--workdir={tmp_path}/run"],
    env=env, capture_output=True, text=True, timeout=120,
  )  # fmt: skip
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
    "error: started as 2 tasks by Open MPI (mpirun) without --distributed: each would run the "
    "whole experiment into the same workdir. Add --distributed to run them as one job, or "
    "start one task."
  )
  assert not os.path.exists(tmp_path / "run")
