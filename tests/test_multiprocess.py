"""Several JAX processes (``jax.distributed`` on this CPU, gloo collectives) train as one."""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from distill_jax import parallel
from tests.conftest import REPO_ROOT

# ``train.fit`` on a 2-device mesh; prints its history as JSON. $DEVICES_PER_RUN=2: one run,
# its batch split over both devices; as one of two processes it passes only its own rows of the
# training and test sets (``ProcessRows``). $DEVICES_PER_RUN=1: 3 runs on 2 run groups (padded
# to 4), each process trains its own runs on all the rows. On one device: the same runs alone.
_FIT = """
import json, os, sys
import jax
from distill_jax import losses, parallel, train
parallel.initialize_distributed(auto="SLURM_JOB_ID" in os.environ)
import flax.linen as nn
import numpy as np
import optax

class Model(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(3)(x.reshape(x.shape[0], -1))

model = Model()
rng = np.random.default_rng(0)
images = rng.random((205, 4, 4, 1), np.float32)  # 205, 151: padding on the last device
labels = rng.integers(0, 3, 205).astype(np.int32)
test_images, test_labels = images[:151] * 0.9, labels[:151]
probe_images = images[:7]

def loss_fn(params, batch, key, hparams, context):
  return losses.cross_entropy(model.apply(params, batch["image"]), batch["label"]).mean()

devices_per_run = min(int(os.environ["DEVICES_PER_RUN"]), jax.device_count())
mesh = parallel.make_mesh(0, devices_per_run=devices_per_run)
num_runs = 3 if devices_per_run == 1 else 1
train_data = {"image": images, "label": labels}
test_data = {"image": test_images, "label": test_labels}
if jax.process_count() > 1 and devices_per_run == 2:  # only this process's rows are ever seen
  def own_rows(data):
    rows = parallel.local_rows(len(data["label"]), mesh)
    assert rows.stop - rows.start < len(data["label"]), rows
    return parallel.ProcessRows({k: v[rows].copy() for k, v in data.items()}, len(data["label"]))
  train_data, test_data = own_rows(train_data), own_rows(test_data)
  del images, labels, test_images, test_labels
result = train.fit(
  name="probe", init_fn=lambda key: model.init(key, np.zeros((1, 4, 4, 1))), loss_fn=loss_fn,
  metrics_fn=losses.classification_metrics(model.apply),
  train_data=train_data, test_data=test_data, eval_batch_size=50,
  run_keys=jax.vmap(jax.random.key)(np.arange(num_runs)), hparams={}, epochs=2, batch_size=20,
  tx=optax.adam(1e-2), mesh=mesh)
# fit's gathered parameters (host arrays) as context and as predict's params.
again = train.fit(
  name="probe", init_fn=lambda key: model.init(key, np.zeros((1, 4, 4, 1))), loss_fn=loss_fn,
  metrics_fn=losses.classification_metrics(model.apply), context=result.params,
  train_data=train_data, test_data=test_data, eval_batch_size=50,
  run_keys=jax.random.key(1)[None], hparams={}, epochs=1, batch_size=20,
  tx=optax.adam(1e-2), mesh=mesh)
first_run = jax.tree.map(lambda leaf: leaf[0], result.params)
logits = train.predict(model.apply, first_run, probe_images, mesh, batch_size=4)
history = {k: np.asarray(v).tolist() for k, v in result.history.items()}
history["again_test_accuracy"] = again.history["test_accuracy"].tolist()
history["predict"] = logits.tolist()
placement = parallel.place_runs(mesh, num_runs)
print("PLACEMENT " + json.dumps([placement.start, placement.stop, placement.local]))
print("HISTORY " + json.dumps(history))
"""


# Process 0 arrives 35 s late (longer than gloo's 30 s wait for a first collective), then 3 s
# late at a barrier of the same name, then process 1 waits at a barrier process 0 never
# reaches with a 1 s timeout.
_BARRIERS = """
import os, time
import jax
from distill_jax import parallel
parallel.initialize_distributed()
if jax.process_index() == 0:
  time.sleep(35)
parallel.barrier("late")
print("PASSED late", flush=True)
if jax.process_index() == 0:  # a barrier's name is used again (as the pipeline does): it waits
  time.sleep(3)
started = time.monotonic()
parallel.barrier("late")
print(f"WAITED {time.monotonic() - started:.1f}", flush=True)
if jax.process_index() == 1:
  try:
    parallel.barrier("never", timeout_s=1)
  except parallel.BarrierTimeout as error:
    print("TIMEOUT " + str(error), flush=True)
else:
  time.sleep(5)
"""


def test_barriers_wait_for_a_busy_process_and_time_out_for_a_missing_one():
  outputs = _run_job(_BARRIERS)
  for _, output, error in outputs:
    assert "PASSED late" in output, error[-2000:]
  (waited,) = [line for line in outputs[1][1].splitlines() if line.startswith("WAITED ")]
  assert float(waited.split()[1]) > 2
  (line,) = [line for line in outputs[1][1].splitlines() if line.startswith("TIMEOUT ")]
  assert re.search(r"process 1 waited \d+ s at barrier 'never'", line), line
  assert "$DISTILL_BARRIER_TIMEOUT_S" in line


def _tiny(mapping, data_dir, tfds_dir) -> list[str]:
  """CLI flags of a tiny experiment (subsets, one student seed, one teacher epoch)."""
  return [
    f"--mapping={mapping}",
    "--seeds=1",
    "--teacher_epochs=1",
    "--config.data.max_big=500",
    "--config.data.max_small=100",
    "--config.data.max_test=200",
    "--config.student.batch_size=50",
    f"--data_dir={data_dir}",
    f"--tfds_dir={tfds_dir}",
  ]


def _line(output: str, prefix: str):
  (line,) = [line for line in output.splitlines() if line.startswith(prefix)]
  return json.loads(line[len(prefix) :])


def _history(output: str) -> dict:
  return _line(output, "HISTORY ")


def _job_env(how: str, index: int, port: int) -> dict:
  """Process ``index`` of a 2-process job: JAX's variables, or a (faked) SLURM step that
  ``jax.distributed.initialize()`` detects by itself."""
  if how == "env":
    return {
      "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
      "JAX_NUM_PROCESSES": "2",
      "JAX_PROCESS_ID": str(index),
    }
  # JAX's SLURM detection: coordinator = first node : 61440 + job id mod 4096.
  return {
    "SLURM_JOB_ID": str(port - 61440 + 4096 * 7),
    "SLURM_STEP_NODELIST": "localhost",
    "SLURM_NTASKS": "2",
    "SLURM_PROCID": str(index),
    "SLURM_LOCALID": str(index),
    "SLURM_STEP_NUM_NODES": "1",
  }


def _free_slurm_port() -> int:
  """A free port in the range JAX's SLURM detection derives from the job id."""
  for port in range(61440 + os.getpid() % 4000, 65536):
    with socket.socket() as probe:
      try:
        probe.bind(("127.0.0.1", port))
      except OSError:
        continue
      return port
  raise RuntimeError("no free port in 61440-65535")


def _job_base_env() -> dict:
  """This environment without any job of its own (JAX_* or SLURM_* variables), CPU only."""
  base = dict(os.environ, PYTHONPATH=str(REPO_ROOT), JAX_PLATFORMS="cpu")
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
    base.pop(name, None)
  return {k: v for k, v in base.items() if not k.startswith("SLURM_")}


def _run_job(script: str, how: str = "env", extra_env=None) -> list[tuple[int, str, str]]:
  """``script`` as the 2 processes of one job (one CPU device each): ``(status, stdout,
  stderr)`` per process."""
  port = parallel.free_port() if how == "env" else _free_slurm_port()
  processes = [
    subprocess.Popen(
      [sys.executable, "-c", script],
      env=dict(
        _job_base_env(),
        XLA_FLAGS="--xla_force_host_platform_device_count=1",
        **_job_env(how, i, port),
        **(extra_env or {}),
      ),
      stdout=subprocess.PIPE,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in range(2)
  ]
  outputs = [process.communicate(timeout=120) for process in processes]
  return [(p.returncode, out, err) for p, (out, err) in zip(processes, outputs)]


@pytest.mark.parametrize(
  "how, devices_per_run, single_devices", [("env", 2, 2), ("slurm", 2, 2), ("env", 1, 1)]
)
def test_two_processes_train_as_one_process(how, devices_per_run, single_devices):
  """Data parallel (each process its rows) equals one process with two devices; runs split over
  processes (each process its runs) equals one device training all runs."""
  per_run = {"DEVICES_PER_RUN": str(devices_per_run)}
  single = subprocess.run(
    [sys.executable, "-c", _FIT],
    env=dict(
      _job_base_env(),
      **per_run,
      XLA_FLAGS=f"--xla_force_host_platform_device_count={single_devices}",
    ),  # fmt: skip
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert single.returncode == 0, single.stderr[-2000:]
  outputs = _run_job(_FIT, how, extra_env=per_run)
  for status, _, error in outputs:
    assert status == 0, error[-2000:]
  expected = _history(single.stdout)
  placements = [_line(output, "PLACEMENT ") for _, output, _ in outputs]
  if devices_per_run == 1:  # each process its own block of the 4 (padded) runs, its own programs
    assert placements == [[0, 2, True], [2, 4, True]]
  else:  # one run over both processes' devices: global arrays
    assert placements == [[0, 1, False], [0, 1, False]]
  for _, output, _ in outputs:  # every process holds the same (gathered) result
    got = _history(output)
    for name, values in expected.items():
      np.testing.assert_allclose(got[name], values, rtol=1e-5, atol=1e-6)


def test_cli_two_processes_equal_one_process_with_two_devices(
  shared_data_dir, shared_tfds_dir, tmp_path
):
  """``--num_processes=2`` (two gloo processes, one device each) gives the students of one
  process with two devices, its teachers read from the cache that run wrote (restored by both
  processes); ``train.fit`` training as 2 processes is the test above."""
  # noise: the most of the pipeline (a teacher inside the student step, its parameters as the
  # shared context, a stochastic φ, both teacher arms); identity and conv were checked by hand
  # (all three bit-identical on the data-parallel layout: CHANGELOG.md, 2026-11-30).
  tiny = [
    *_tiny("noise", shared_data_dir, shared_tfds_dir),
    "--epochs=2",
    "--teachers=2",
    f"--cache_dir={tmp_path / 'cache'}",
  ]
  base = dict(os.environ, JAX_PLATFORMS="cpu", DISTILL_DATA_DIR="")
  base.pop("JAX_PROCESS_ID", None)
  runs = {
    "one": ([f"--workdir={tmp_path / 'one'}"], "--xla_force_host_platform_device_count=2"),
    "two": ([f"--workdir={tmp_path / 'two'}", "--num_processes=2"], ""),
  }
  for name, (args, xla_flags) in runs.items():
    result = subprocess.run(
      [sys.executable, "-m", "experiments.distill", *tiny, *args],
      cwd=REPO_ROOT,
      env=dict(base, XLA_FLAGS=xla_flags),
      capture_output=True,
      text=True,
      timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("(reusing checkpoint)" in result.stderr) == (name == "two")
  one, two = (json.loads((tmp_path / name / "results.json").read_text()) for name in runs)
  assert len(one["devices"]) == len(two["devices"]) == 2
  for arm, entry in one["arms"].items():
    for metric in ("train_loss", "test_accuracy", "test_cross_entropy"):
      np.testing.assert_allclose(two["arms"][arm][metric], entry[metric], atol=1e-4)
  assert sorted(os.listdir(tmp_path / "two")) == sorted(os.listdir(tmp_path / "one"))


def test_a_killed_process_ends_the_run_in_bounded_time_and_a_rerun_resumes(
  shared_data_dir, shared_tfds_dir, tmp_path
):
  import signal
  import time

  import psutil

  command = [
    sys.executable,
    "-m",
    "experiments.distill",
    *_tiny("identity", shared_data_dir, shared_tfds_dir),
    "--epochs=60",  # the kill lands after epoch 5 of the first arm: 115 epochs still to run
    "--teachers=1",
    "--config.checkpoint_every=5",
    f"--workdir={tmp_path / 'run'}",
    "--num_processes=2",
  ]
  env = dict(os.environ, JAX_PLATFORMS="cpu", DISTILL_DATA_DIR="", DISTILL_LAUNCH_GRACE_S="2")
  env.pop("JAX_PROCESS_ID", None)
  launcher = subprocess.Popen(
    command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
  )
  students = tmp_path / "run" / "students"
  deadline = time.monotonic() + 240
  while not list(students.glob("*/manifests/*.json")):  # a student epoch is saved
    assert launcher.poll() is None and time.monotonic() < deadline
    time.sleep(0.1)
  children = psutil.Process(launcher.pid).children()
  assert len(children) == 1  # the command is process 0; process 1 is its child
  os.kill(children[0].pid, signal.SIGKILL)  # process 1 dies mid-run
  killed_at = time.monotonic()
  _, error = launcher.communicate(timeout=120)
  assert launcher.returncode != 0
  assert time.monotonic() - killed_at < 60  # bounded: the grace period, not a hang
  assert "a process exited with status -9" in error

  rerun = subprocess.run(
    command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
  )
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "resumed from epoch" in rerun.stderr  # the students continue from their checkpoint
  # TensorBoard shows every epoch of every student run once, the killed attempt's included.
  from tensorboard.backend.event_processing import event_accumulator

  runs = sorted((tmp_path / "run" / "tensorboard").glob("*/t*_s*"))
  assert len(runs) == 2  # no_teacher, teacher_phi: one seed each
  for run in runs:
    accumulator = event_accumulator.EventAccumulator(str(run), size_guidance={"scalars": 0})
    accumulator.Reload()
    assert [e.step for e in accumulator.Scalars("train/loss")] == list(range(1, 61)), run
