"""Interruptions and failures of a whole experiment: SIGKILL at a random moment, Ctrl-C and
SIGTERM from the command line, a failed run's mark on its workdir, one run per workdir.

The kill-at-a-random-moment probe itself is ``tests/interruptions_probe.py`` (20 kills measured:
CHANGELOG.md, 2026-12-03); here it runs with one kill.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from distill_jax import experiment
from distill_jax import locks
from distill_jax import students as students_lib
from tests import interruptions_probe

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_sigkill_at_a_random_moment_loses_no_saved_epoch(tmp_path, capsys):
  status = interruptions_probe.main(
    [f"--workdir={tmp_path}", "--kills=1", "--window=0.5", "--teacher_epochs=6",
     "--student_epochs=6", "--seed=3"]
  )  # fmt: skip
  printed = capsys.readouterr().out
  assert status == 0, printed
  assert "1 kills in 1 workdir(s), 0 problems" in printed


def _run(workdir, epochs="2,2"):
  config = interruptions_probe.get_config(epochs)
  return experiment.run_experiment(config, str(workdir), data_dir=None, tfds_dir=str(workdir))


def test_a_failed_run_marks_its_workdir_and_a_finished_one_clears_it(tmp_path, monkeypatch):
  _run(tmp_path)
  assert not (tmp_path / experiment.FAILED).exists()

  def broken(*args, **kwargs):
    raise RuntimeError("the students' machine caught fire")

  monkeypatch.setattr(students_lib, "fit_students", broken)
  with pytest.raises(RuntimeError, match="caught fire"):
    _run(tmp_path, epochs="2,3")  # another config: the students would be retrained
  note = (tmp_path / experiment.FAILED).read_text()
  assert "did not finish" in note and "RuntimeError: the students' machine caught fire" in note
  assert (
    "results.json, results.md, the figures and tensorboard/ here are from an earlier run" in note
  )
  monkeypatch.undo()
  results = _run(tmp_path, epochs="2,3")
  assert not (tmp_path / experiment.FAILED).exists()
  assert (
    len(json.loads((tmp_path / "results.json").read_text())["arms"]["no_teacher"]["train_loss"][0])
    == 3
  )
  assert results["config"]["student"]["epochs"] == 3


def test_a_second_run_in_the_same_workdir_waits_for_the_first(tmp_path, monkeypatch):
  monkeypatch.setenv(locks.TIMEOUT_ENV, "0.2")
  lock = os.path.join(tmp_path, ".locks", "outputs.lock")
  os.makedirs(os.path.dirname(lock))
  # Another process holds the workdir (a lock is re-entrant within one process).
  script = (
    "import filelock, time, sys; lock = filelock.FileLock(sys.argv[1]); lock.acquire(); "
    "print('held', flush=True); time.sleep(60)"
  )
  holder = subprocess.Popen([sys.executable, "-c", script, lock], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(locks.LockTimeout, match="workdir: .* is still locked"):
      _run(tmp_path)
  finally:
    holder.kill()
    holder.wait()
  assert not (tmp_path / "results.json").exists()


# `python -m experiments.distill` with Ctrl-C as in a terminal: a suite started in the background
# (`cmd &` in a script) passes SIGINT on as ignored, and Python then installs no
# KeyboardInterrupt handler (a preexec_fn resetting it would fork a multithreaded process).
_WITH_CTRL_C_AT_ITS_DEFAULT = (
  "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
  "runpy.run_module('experiments.distill', run_name='__main__', alter_sys=True)"
)


@pytest.mark.parametrize("sent, status, name", [(signal.SIGINT, 130, "Ctrl-C (SIGINT)"),
                                                 (signal.SIGTERM, 143, "SIGTERM")])  # fmt: skip
def test_the_command_line_reports_an_interruption_in_one_line(tmp_path, sent, status, name):
  command = [
    sys.executable, "-c", _WITH_CTRL_C_AT_ITS_DEFAULT, "--config=tests/interruptions_probe.py:4,400",
    f"--workdir={tmp_path}", f"--tfds_dir={tmp_path / 'tfds'}",
  ]  # fmt: skip
  env = dict(os.environ, XLA_FLAGS="", DISTILL_DATA_DIR="")
  process = subprocess.Popen(
    command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )
  deadline = time.monotonic() + 120
  saved = os.path.join(tmp_path, "students")
  while not _has_manifest(saved) and process.poll() is None and time.monotonic() < deadline:
    time.sleep(0.05)
  process.send_signal(sent)
  _, stderr = process.communicate(timeout=60)
  assert process.returncode == status, stderr
  lines = stderr.strip().splitlines()
  # The line itself; after it, at most orbax's one-line records of the save it abandoned.
  ours = [i for i, line in enumerate(lines) if line.startswith("interrupted by")]
  assert ours and all("orbax" in rest or "future.py" in rest for rest in lines[ours[-1] + 1 :]), (
    stderr
  )
  last = lines[ours[-1]]
  assert re.match(
    rf"interrupted by {re.escape(name)} during students\[no_teacher\] epoch \d+/400 \(epoch \d+ saved\)",
    last,
  ), last
  assert (
    "saved); finished work is kept (checkpoints): run the same command again to resume." in last
  )
  assert "Traceback" not in stderr
  assert "interrupted" in (tmp_path / experiment.FAILED).read_text()


def _has_manifest(folder):
  """Whether an epoch's manifest is in place (not only the temporary file it is written to)."""
  for root, _, names in os.walk(folder):
    if os.path.basename(root) == "manifests" and any(not n.startswith(".") for n in names):
      return True
  return False


def test_the_command_line_reports_a_nan_loss_in_one_line(tmp_path):
  result = subprocess.run(
    [sys.executable, "-m", "experiments.distill", "--config=tests/interruptions_probe.py:2,2",
     "--config.student.optimizer.learning_rate=1e38", f"--workdir={tmp_path}",
     f"--tfds_dir={tmp_path / 'tfds'}"],
    cwd=REPO_ROOT, env=dict(os.environ, XLA_FLAGS="", DISTILL_DATA_DIR=""),
    capture_output=True, text=True, timeout=120,
  )  # fmt: skip
  assert result.returncode == 1 and "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert re.match(r"error: students\[no_teacher\]: .*train_loss.* became NaN/inf at epoch 1 ", last)
  assert "lower the learning rate" in last
  assert not (tmp_path / "results.json").exists()
  assert "FloatingPointError" in (tmp_path / experiment.FAILED).read_text()
