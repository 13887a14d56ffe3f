"""``--num_processes=P``: the same command as P local JAX processes, one CPU device each.

The command itself becomes process 0. Before its heavy imports (``start_early``, the first
lines of ``experiments/distill.py``) it picks a free port for the coordinator and starts
processes 1 … P − 1 with ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
``JAX_PROCESS_ID`` set (each one's ``parallel.initialize_distributed`` joins them, with gloo
collectives on CPU), each pinned to its own share of this machine's cores (``cores_for``, so
the processes do not fight over cores: each trains its own runs). They import while process 0
does, then wait (``wait_for_go``) until process 0 has read its flags (``release``): a bad flag
is reported once, by process 0, and the others end quietly. At the end process 0 waits for them (``finish``). When one process fails, the others
get ``GRACE_S`` seconds (``$DISTILL_LAUNCH_GRACE_S``) to finish and are then stopped, so a lost
peer never leaves a run hanging; the exit status is the first failure's (0 if all succeed).
Where the command was not started that way (``main`` called from Python), ``launch_or_join``
starts P child processes and waits for them instead (``run``).
This is the test path and serves a multi-socket CPU host; a real cluster starts one process per
host itself (docs/scaling.md, "A cluster").
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import traceback

from absl import flags

NUM_PROCESSES = flags.DEFINE_integer(
  "num_processes",
  1,
  "Run as this many local JAX processes (jax.distributed, gloo on CPU, one device each): the "
  "test path of multi-host runs; a cluster starts its processes itself (docs/scaling.md).",
)
DISTRIBUTED = flags.DEFINE_bool(
  "distributed",
  False,
  "Join a jax.distributed job found by auto-detection (SLURM, Open MPI, Kubernetes, Cloud "
  "TPU): one process per host or GPU, started by the cluster (docs/scaling.md). Not needed "
  "when JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID are set.",
)

GRACE_ENV = "DISTILL_LAUNCH_GRACE_S"
WAIT_ENV = "DISTILL_LAUNCH_WAIT_FOR_GO"  # set in processes 1 … P − 1 started by ``start_early``
GO = "go\n"
GRACE_S = 60.0  # default; $DISTILL_LAUNCH_GRACE_S overrides
QUIET_S = 5.0  # after a failure, the others usually end within this: no line about them


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
  launcher = foreign_launcher(os.environ)
  if launcher and not DISTRIBUTED.value and "JAX_PROCESS_ID" not in os.environ:
    name, tasks = launcher
    raise SystemExit(
      f"error: started as {tasks} tasks by {name} without --distributed: each would run the "
      "whole experiment into the same workdir. Add --distributed to run them as one job, or "
      "start one task."
    )
  from distill_jax import parallel

  release()  # processes 1 … P − 1 of ``start_early``: their flags are good too; join with them
  try:
    parallel.initialize_distributed(auto=DISTRIBUTED.value)
  except ValueError as error:
    raise SystemExit(f"error: {error}") from None


# Variables a launcher sets in each of its tasks: the number of tasks, and the launcher's name.
TASK_COUNT_VARIABLES = (
  ("OMPI_COMM_WORLD_SIZE", "Open MPI (mpirun)"),
  ("PMI_SIZE", "MPICH / Intel MPI (mpirun)"),
  ("SLURM_STEP_NUM_TASKS", "SLURM (srun)"),
)


def foreign_launcher(environ) -> tuple[str, int] | None:
  """``(launcher, tasks)`` when ``environ`` is one task of several started by mpirun or srun;
  None otherwise (one task, or no launcher)."""
  for variable, name in TASK_COUNT_VARIABLES:
    try:
      tasks = int(environ.get(variable, "1"))
    except ValueError:
      continue
    if tasks > 1:
      return name, tasks
  return None


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
  coordinator = f"127.0.0.1:{_free_port()}"
  children = [
    _start(command, _job_env(coordinator, num_processes, index, devices_per_process), index)
    for index in range(num_processes)
  ]
  return _wait(children)


def _job_env(coordinator: str, num_processes: int, index: int, devices_per_process: int) -> dict:
  """What process ``index`` of the job adds to this environment."""
  return {
    "JAX_COORDINATOR_ADDRESS": coordinator,
    "JAX_NUM_PROCESSES": str(num_processes),
    "JAX_PROCESS_ID": str(index),
    "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices_per_process}",
  }


def _start(command: list[str], job_env: dict, index: int, **popen) -> subprocess.Popen:
  """Starts process ``index`` of the job, pinned to its cores."""
  child = subprocess.Popen(command, env=dict(os.environ, **job_env), **popen)
  cores = cores_for(index, int(job_env["JAX_NUM_PROCESSES"]))
  if cores:  # before JAX starts in the child (its imports take far longer than this)
    try:
      os.sched_setaffinity(child.pid, cores)
    except OSError:  # the child already ended; its status says why
      pass
  return child


def _wait(children: list[subprocess.Popen], status: int = 0) -> int:
  """Waits for ``children`` (stopping them ``GRACE_S`` after a failure, this process's
  ``status`` included); the first failure's status, else 0."""
  grace = float(os.environ.get(GRACE_ENV, GRACE_S))
  failed_at = time.monotonic() if status else None
  told = False
  while any(child.poll() is None for child in children):
    failures = [code for code in (child.poll() for child in children) if code not in (None, 0)]
    if failures and failed_at is None:
      failed_at, status = time.monotonic(), failures[0]
    waited = 0.0 if failed_at is None else time.monotonic() - failed_at
    if waited > QUIET_S and not told:  # the others usually end at once; say so if they do not
      told = True
      print(
        f"launch: a process exited with status {status}; stopping the others in "
        f"{grace - waited:.0f} s unless they finish (rerun the same command to resume)",
        file=sys.stderr,
      )
    if failed_at is not None and waited > grace:
      _stop([child for child in children if child.poll() is None])
      break
    time.sleep(0.2)
  for child in children:
    child.wait()
  if status == 0:
    status = next((child.returncode for child in children if child.returncode), 0)
  return status


# The processes 1 … P − 1 this command started in ``start_early`` (process 0 is this one).
_early_children: list[subprocess.Popen] = []


def start_early(argv: list[str], module: str) -> None:
  """With ``--num_processes=P > 1`` in ``argv`` (and not already a process of a job): makes this
  process process 0 of a P-process job and starts the others (``python -m module``, the same
  flags). Call it before importing JAX (it sets this process's ``JAX_*`` and ``XLA_FLAGS``);
  anything else in ``argv`` is left to the flag parser, which reports bad values."""
  count = _num_processes(argv)
  if count is None or count < 2 or "JAX_PROCESS_ID" in os.environ:
    return
  if any(arg in ("--distributed", "--distributed=true") for arg in argv):
    return  # launch_or_join refuses the pair with one line
  coordinator = f"127.0.0.1:{_free_port()}"
  command = [sys.executable, "-m", module, *child_argv(argv[1:])]
  for index in range(1, count):
    job_env = dict(_job_env(coordinator, count, index, 1), **{WAIT_ENV: "1"})
    _early_children.append(_start(command, job_env, index, stdin=subprocess.PIPE, text=True))
  os.environ.update(_job_env(coordinator, count, 0, 1))
  cores = cores_for(0, count)
  if cores:
    os.sched_setaffinity(0, cores)
  threading.Thread(target=_watch, args=(_early_children,), daemon=True).start()


def _watch(children: list[subprocess.Popen]) -> None:
  """Process 0's watch over the others while it works: when one fails, says so and, if this
  process has not ended ``GRACE_S`` seconds later (stuck in a collective with a dead peer),
  stops the others and ends it with that status, so a lost peer never leaves a run hanging."""
  grace = float(os.environ.get(GRACE_ENV, GRACE_S))
  while True:
    failures = [c.returncode for c in children if c.poll() not in (None, 0)]
    if failures:
      break
    if all(c.poll() is not None for c in children):
      return  # all finished well
    time.sleep(0.2)
  print(
    f"launch: a process exited with status {failures[0]}; stopping the others in "
    f"{grace:.0f} s unless they finish (rerun the same command to resume)",
    file=sys.stderr,
    flush=True,
  )
  time.sleep(grace)
  _stop([c for c in children if c.poll() is None])
  sys.stderr.flush()
  os._exit(failures[0] if failures[0] > 0 else 128 - failures[0])  # -9 → 137, as a shell says


def flag_value(argv: list[str], name: str) -> str | None:
  """The value of ``--<name>=v`` or ``--<name> v`` in ``argv`` (the last one, as absl reads it),
  before the flag parser runs; None if absent."""
  value = None
  for index, arg in enumerate(argv[1:], start=1):
    if arg.startswith(f"--{name}="):
      value = arg.split("=", 1)[1]
    elif arg == f"--{name}" and index + 1 < len(argv):
      value = argv[index + 1]
  return value


def _num_processes(argv: list[str]) -> int | None:
  """``--num_processes``'s value in ``argv`` if it is a plain integer (last one wins)."""
  value = flag_value(argv, "num_processes")
  try:
    return None if value is None else int(value)
  except ValueError:
    return None


def wait_for_go() -> None:
  """In a process started by ``start_early`` (after its imports, before it reads its flags):
  waits until process 0 has read its flags (``release``); ends quietly if process 0 ended without
  (it reported why)."""
  if os.environ.pop(WAIT_ENV, None) != "1":  # once: a module imported later does not wait
    return
  if sys.stdin.readline() != GO:
    os._exit(0)  # noqa: SLF001 — nothing of this process's own to report or clean up


def release() -> None:
  """In process 0, once its flags are read (before it joins the job): lets the others go on."""
  for child in _early_children:
    try:
      child.stdin.write(GO)
      child.stdin.flush()
    except OSError:  # the child already ended; finish reports its status
      pass


def finish(run_main) -> None:
  """Runs ``run_main()`` (``app.run(main)``), then, in process 0 of a job ``start_early``
  started, leaves the JAX job (its shutdown barrier waits for the others: waiting for them
  first would deadlock) while watching the others; exits with the first failure's status."""
  if not _early_children:
    run_main()
    return
  try:
    run_main()
    status = 0
  except SystemExit as exit_:
    status = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
  except BaseException as error:  # noqa: BLE001 — reported here, then the others are waited for
    traceback.print_exc()
    status = 130 if isinstance(error, KeyboardInterrupt) else 1
  for child in _early_children:
    try:
      child.stdin.close()  # not released: the others end now
    except OSError:
      pass
  leaving = threading.Thread(target=_leave_job, daemon=True)
  leaving.start()
  status = _wait(_early_children, status)
  leaving.join(timeout=10)  # a lost peer can hold the shutdown barrier: do not wait for it
  sys.stdout.flush()
  sys.stderr.flush()
  if leaving.is_alive():
    os._exit(status)  # noqa: SLF001 — the job's shutdown would wait for a process that is gone
  sys.exit(status)


def _leave_job() -> None:
  """``jax.distributed.shutdown()`` if this process joined a job (nothing otherwise)."""
  if "jax" in sys.modules:
    import jax

    try:
      jax.distributed.shutdown()
    except Exception:  # noqa: BLE001 — a peer already gone: the statuses say what happened
      pass


def _free_port() -> int:
  """A TCP port free on this machine now (the coordinator's)."""
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


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
