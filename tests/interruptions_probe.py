"""SIGKILL at random moments of an experiment, then reruns until it finishes: no kill may cost
more than the epochs since the last saved checkpoint, and the final numbers must be those of a
run never interrupted.

  python -m tests.interruptions_probe --kills=20 --workdir=/tmp/kill_probe

runs a small experiment (a registered synthetic dataset, 2 teachers × 2 seeds, a checkpoint
every epoch) once uninterrupted, then again in a fresh workdir as a child process that is
killed (SIGKILL) at a uniformly random moment between its first save and ``--window`` seconds
later, restarted, killed again, ... until the run finishes; then again in another fresh workdir,
until ``--kills`` kills have landed.
The child prints ``OPEN <directory> <epoch>`` when a checkpoint folder is opened (the epoch it
resumes from) and ``SAVED <directory> <epoch>`` when a save has finished (its manifest
written). Checks: every ``OPEN`` resumes from at least the last ``SAVED`` epoch of its folder
before the kill, and each workdir's final results.json equals the uninterrupted one. Prints one line per
kill (where it landed) and the summary; exits 1 if a check fails. ``tests/test_interruptions.py``
runs it with one kill.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _config(teacher_epochs: int, student_epochs: int):
  from experiments.configs import default

  config = default.get_config()
  config.mapping = "identity"
  config.source_dataset = config.target_dataset = "probe_patterns"
  config.seeds = 2
  config.teacher.count = 2
  config.teacher.epochs = teacher_epochs
  config.teacher.hidden = (16,)
  config.teacher.batch_size = 32
  config.teacher.eval_size = 256
  config.student.epochs = student_epochs
  config.student.batch_size = 32
  config.eval_batch_size = 128
  config.checkpoint_every = 1
  config.effect_epochs = 2
  return config


def _patterns(context):
  """Four classes of 8×8 images: a fixed pattern per class plus noise (seeded)."""
  import numpy as np

  del context
  rng = np.random.default_rng(0)
  means = rng.random((4, 8, 8)).astype(np.float32)

  def split(n):
    labels = rng.integers(0, 4, n)
    images = np.clip(means[labels] + 0.6 * rng.standard_normal((n, 8, 8)), 0, 1)
    return images.astype(np.float32), labels.astype(np.int32)

  return {"big": split(512), "small": split(128), "test": split(256)}


def get_config(epochs: str = "30,30"):
  """The probe's experiment as a ``--config`` file for the command line
  (``--config=tests/interruptions_probe.py:<teacher epochs>,<student epochs>``)."""
  from distill_jax import data

  data.register_dataset("probe_patterns", data.from_arrays(_patterns, description="probe"))
  teacher_epochs, student_epochs = (int(n) for n in epochs.split(","))
  return _config(teacher_epochs, student_epochs)


def child(workdir: str, teacher_epochs: int, student_epochs: int) -> None:
  """The experiment, with ``OPEN`` / ``SAVED`` lines on stdout (see the module docstring)."""
  from distill_jax import checkpoints
  from distill_jax import experiment

  opened, saved = checkpoints.Checkpointer.__init__, checkpoints.Checkpointer.save

  def open_and_say(self, directory, *args, **kwargs):
    opened(self, directory, *args, **kwargs)
    print(f"OPEN {self.directory} {self.latest_epoch() or 0}", flush=True)

  def save_and_say(self, epoch, *args, **kwargs):
    saved(self, epoch, *args, **kwargs)
    print(f"SAVED {self.directory} {epoch}", flush=True)

  checkpoints.Checkpointer.__init__ = open_and_say
  checkpoints.Checkpointer.save = save_and_say
  config = get_config(f"{teacher_epochs},{student_epochs}")
  experiment.run_experiment(config, workdir, data_dir=None, tfds_dir=workdir + "/tfds")


def _start(workdir: str, args) -> subprocess.Popen:
  command = [
    sys.executable, "-m", "tests.interruptions_probe", "child", f"--workdir={workdir}",
    f"--teacher_epochs={args.teacher_epochs}", f"--student_epochs={args.student_epochs}",
  ]  # fmt: skip
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  return subprocess.Popen(
    command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
  )


def _run_to_end(workdir: str, args) -> list[str]:
  process = _start(workdir, args)
  lines = process.stdout.read().splitlines()
  if process.wait() != 0:
    raise SystemExit(f"the experiment in {workdir} failed (exit {process.returncode})")
  return lines


def _killed_attempt(workdir: str, args, rng: random.Random) -> tuple[list[str], str | None]:
  """One child killed at a random moment after its first save: its lines and where the kill
  landed (None: the run finished first)."""
  process = _start(workdir, args)
  lines, deadline = [], None
  reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
  reader.start()
  while process.poll() is None:
    if deadline is None and any(line.startswith("SAVED") for line in lines):
      deadline = time.monotonic() + rng.uniform(0, args.window)
    if deadline is not None and time.monotonic() >= deadline:
      process.kill()
      break
    time.sleep(0.002)
  process.wait()
  reader.join()
  lines = [line.rstrip("\n") for line in lines]
  if process.returncode == 0:
    return lines, None
  last = [line for line in lines if line.startswith("SAVED")][-1:]
  return lines, f"after {last[0].split()[1].split('/')[-2]} epoch {last[0].split()[2]} saved"


def _check_resumes(attempts: list[list[str]]) -> list[str]:
  """Every OPEN resumes from at least the last SAVED epoch of its folder in earlier attempts."""
  problems, saved = [], {}
  for number, lines in enumerate(attempts):
    for line in lines:
      match = re.match(r"(OPEN|SAVED) (\S+) (\d+)$", line)
      if not match:
        continue
      kind, directory, epoch = match.group(1), match.group(2), int(match.group(3))
      if kind == "SAVED":
        saved[directory] = epoch
      elif epoch < saved.get(directory, 0):
        problems.append(
          f"attempt {number}: {directory} resumed from epoch {epoch}, "
          f"but epoch {saved[directory]} had been saved"
        )
  return problems


def _numbers(workdir: str) -> dict:
  with open(os.path.join(workdir, "results.json")) as file:
    results = json.load(file)
  numbers = {"teacher": results["teacher"]["test_accuracy"]}
  for label, arm in results["arms"].items():
    numbers[label] = [arm["test_accuracy"], arm["test_cross_entropy"], arm["train_loss"]]
  return numbers


def _same(a, b, tolerance: float = 1e-5) -> bool:
  if isinstance(a, dict):
    return a.keys() == b.keys() and all(_same(a[k], b[k], tolerance) for k in a)
  if isinstance(a, list):
    return len(a) == len(b) and all(_same(x, y, tolerance) for x, y in zip(a, b))
  if a is None or b is None:
    return a is b
  return abs(a - b) <= tolerance * max(1.0, abs(a))


def probe(args) -> int:
  rng = random.Random(args.seed)
  started = time.perf_counter()
  reference = os.path.join(args.workdir, "reference")
  _run_to_end(reference, args)
  problems, kills, cycle = [], 0, 0
  while kills < args.kills:  # a cycle: one fresh workdir killed until its run finishes
    cycle += 1
    workdir, attempts = os.path.join(args.workdir, f"killed_{cycle}"), []
    while kills < args.kills:
      lines, where = _killed_attempt(workdir, args, rng)
      attempts.append(lines)
      if where is None:  # the run finished before the kill: the cycle is complete
        break
      kills += 1
      print(f"kill {kills}/{args.kills} (workdir {cycle}): {where}", flush=True)
    else:
      attempts.append(_run_to_end(workdir, args))
    problems += [f"workdir {cycle}, {problem}" for problem in _check_resumes(attempts)]
    if not _same(_numbers(reference), _numbers(workdir)):
      problems.append(f"workdir {cycle}: the final results differ from the uninterrupted run's")
  print(
    f"{kills} kills in {cycle} workdir(s), {len(problems)} problems, "
    f"{time.perf_counter() - started:.0f} s: " + ("; ".join(problems) or "every resume kept "
    "the last saved epoch and the final numbers equal the uninterrupted run's")
  )  # fmt: skip
  return 1 if problems else 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("mode", nargs="?", default="probe", choices=("probe", "child"))
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--kills", type=int, default=20)
  parser.add_argument("--window", type=float, default=3.0, help="seconds after the first save")
  parser.add_argument("--teacher_epochs", type=int, default=30)
  parser.add_argument("--student_epochs", type=int, default=30)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  if args.mode == "child":
    child(args.workdir, args.teacher_epochs, args.student_epochs)
    return 0
  return probe(args)


if __name__ == "__main__":
  sys.exit(main())
