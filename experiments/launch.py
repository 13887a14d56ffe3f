"""``--num_processes=P``: the same command as P local JAX processes, one CPU device each.

The parent picks a free port for the coordinator, starts P children (child i pinned to its own
share of this machine's cores, ``cores_for``, so the processes do not fight over cores: each
trains its own runs) with
``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` set (each child's
``parallel.initialize_distributed`` joins them, with gloo collectives on CPU) and waits. When
one child fails, the others get ``GRACE_S`` seconds (``$DISTILL_LAUNCH_GRACE_S``) to finish and
are then stopped, so a lost
peer never leaves a run hanging; the exit status is the first failure's (0 if all succeed).
This is the test path and serves a multi-socket CPU host; a real cluster starts one process per
host itself (README, "Scaling").
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from absl import flags

from distill_jax import parallel

NUM_PROCESSES = flags.DEFINE_integer(
  "num_processes",
  1,
  "Run as this many local JAX processes (jax.distributed, gloo on CPU, one device each): the "
  "test path of multi-host runs; a cluster starts its processes itself (README, Scaling).",
)
DISTRIBUTED = flags.DEFINE_bool(
  "distributed",
  False,
  "Join a jax.distributed job found by auto-detection (SLURM, Open MPI, Kubernetes, Cloud "
  "TPU): one process per host or GPU, started by the cluster (README, Scaling). Not needed "
  "when JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID are set.",
)

GRACE_ENV = "DISTILL_LAUNCH_GRACE_S"
GRACE_S = 60.0  # default; $DISTILL_LAUNCH_GRACE_S overrides


def launch_or_join(module: str) -> None:
  """Before any work, in a command line's ``main``: with ``--num_processes=P > 1`` (and not
  already one of its processes) runs ``module`` as P local processes and exits with their
  status; otherwise joins the ``jax.distributed`` job there is (``--distributed``, the
  ``JAX_*`` variables) or none. Bad values end the program with one ``error:`` line."""
  if NUM_PROCESSES.value < 1:
    raise SystemExit(f"error: --num_processes must be >= 1, got {NUM_PROCESSES.value}.")
  if NUM_PROCESSES.value > 1 and DISTRIBUTED.value:
    raise SystemExit(
      "error: --num_processes starts local processes, --distributed joins a cluster's; "
      "give one of them."
    )
  if NUM_PROCESSES.value > 1 and "JAX_PROCESS_ID" not in os.environ:
    sys.exit(run(module, sys.argv[1:], NUM_PROCESSES.value))
  try:
    parallel.initialize_distributed(auto=DISTRIBUTED.value)
  except ValueError as error:
    raise SystemExit(f"error: {error}") from None


def child_argv(argv: list[str]) -> list[str]:
  """``argv`` without ``--num_processes`` (the children are single processes of the job)."""
  out, skip = [], False
  for arg in argv:
    if skip:
      skip = False
      continue
    if arg == "--num_processes":
      skip = True
      continue
    if arg.startswith("--num_processes="):
      continue
    out.append(arg)
  return out


def run(module: str, argv: list[str], num_processes: int, devices_per_process: int = 1) -> int:
  """Runs ``python -m <module> <argv>`` as ``num_processes`` processes; their exit status."""
  command = [sys.executable, "-m", module, *child_argv(argv)]
  return run_command(command, num_processes, devices_per_process)


def run_command(command: list[str], num_processes: int, devices_per_process: int = 1) -> int:
  """Runs ``command`` as ``num_processes`` processes of one JAX job; their exit status."""
  grace = float(os.environ.get(GRACE_ENV, GRACE_S))
  coordinator = f"127.0.0.1:{parallel.free_port()}"
  children = []
  for index in range(num_processes):
    env = dict(
      os.environ,
      JAX_COORDINATOR_ADDRESS=coordinator,
      JAX_NUM_PROCESSES=str(num_processes),
      JAX_PROCESS_ID=str(index),
      XLA_FLAGS=f"--xla_force_host_platform_device_count={devices_per_process}",
    )
    child = subprocess.Popen(command, env=env)
    cores = cores_for(index, num_processes)
    if cores:  # before JAX starts in the child (its imports take far longer than this)
      try:
        os.sched_setaffinity(child.pid, cores)
      except OSError:  # the child already ended; its status says why
        pass
    children.append(child)
  failed_at, status = None, 0
  while any(child.poll() is None for child in children):
    codes = [child.poll() for child in children]
    failures = [code for code in codes if code not in (None, 0)]
    if failures and failed_at is None:
      failed_at, status = time.monotonic(), failures[0]
      print(
        f"launch: a process exited with status {status}; stopping the others in "
        f"{grace:.0f} s unless they finish (rerun the same command to resume)",
        file=sys.stderr,
      )
    if failed_at is not None and time.monotonic() - failed_at > grace:
      _stop([child for child in children if child.poll() is None])
      break
    time.sleep(0.2)
  for child in children:
    child.wait()
  if status == 0:
    status = next((child.returncode for child in children if child.returncode), 0)
  return status


def cores_for(index: int, num_processes: int) -> set[int]:
  """The cores process ``index`` of ``num_processes`` runs on: an even, contiguous share of the
  cores this process may use; empty (no pinning) where there are fewer cores than processes or
  the platform cannot pin (not Linux)."""
  if not hasattr(os, "sched_getaffinity"):
    return set()
  cores = sorted(os.sched_getaffinity(0))
  if len(cores) < num_processes:
    return set()
  share = len(cores) // num_processes
  return set(cores[index * share : (index + 1) * share])


def _stop(children: list[subprocess.Popen], patience_s: float = 5.0) -> None:
  """SIGTERM, then SIGKILL after ``patience_s``: a process blocked in a collective with a dead
  peer may not act on SIGTERM (JAX's runtime can hold it)."""
  for child in children:
    child.terminate()
  deadline = time.monotonic() + patience_s
  for child in children:
    try:
      child.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      child.kill()
