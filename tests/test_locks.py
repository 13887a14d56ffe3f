"""Tests for distill_jax/locks.py and the locks on shared folders, with real processes."""

import multiprocessing
import os
import time

import numpy as np
import pytest

from distill_jax import locks

SPAWN = multiprocessing.get_context("spawn")  # fresh interpreters: no JAX state is forked


def _hold_for(folder, seconds, started):
  with locks.hold(folder, what="test entry"):
    started.set()
    time.sleep(seconds)


def test_a_held_lock_makes_others_wait_then_gives_up_naming_the_holder(tmp_path):
  folder = str(tmp_path / "entry")
  started = SPAWN.Event()
  holder = SPAWN.Process(target=_hold_for, args=(folder, 30, started))
  holder.start()
  try:
    assert started.wait(60)
    began = time.monotonic()
    with pytest.raises(locks.LockTimeout, match=rf"still locked after 1 s by process {holder.pid}"):
      with locks.hold(folder, what="test entry", timeout=1.0):
        pass
    assert time.monotonic() - began < 10  # bounded: the timeout, not the holder's 30 s
  finally:
    holder.terminate()
    holder.join()
  with locks.hold(folder, what="test entry", timeout=5.0):  # a dead holder's lock is free
    pass


def test_the_same_process_may_enter_twice(tmp_path):
  folder = str(tmp_path / "entry")
  with locks.hold(folder, what="outer", timeout=0):
    with locks.hold(folder, what="inner", timeout=0):
      assert os.path.exists(str(tmp_path / ".locks" / "entry.lock.owner"))
    assert os.path.exists(
      str(tmp_path / ".locks" / "entry.lock.owner")
    )  # the outer hold still owns it
  assert not os.path.exists(str(tmp_path / ".locks" / "entry.lock.owner"))


def test_bad_timeout_environment_is_refused(monkeypatch):
  monkeypatch.setenv(locks.TIMEOUT_ENV, "soon")
  with pytest.raises(
    ValueError, match=r"DISTILL_LOCK_TIMEOUT=.soon.: give a number of seconds >= 0"
  ):
    locks.default_timeout()
  monkeypatch.setenv(locks.TIMEOUT_ENV, "12.5")
  assert locks.default_timeout() == 12.5


def _load_fashion(data_dir, tfds_dir, queue):
  from distill_jax import data

  splits = data.load("fashion_mnist", data_dir=data_dir, tfds_dir=tfds_dir)
  queue.put({split: float(images.sum()) for split, (images, _) in splits.items()})


def test_two_first_time_tfds_preparations_both_succeed(shared_data_dir, tmp_path):
  queue = SPAWN.Queue()
  workers = [
    SPAWN.Process(target=_load_fashion, args=(shared_data_dir, str(tmp_path), queue))
    for _ in range(2)
  ]
  for worker in workers:
    worker.start()
  for worker in workers:
    worker.join(300)
    assert worker.exitcode == 0  # both: neither trips on the other's half-prepared dataset
  sums = [queue.get(timeout=10) for _ in workers]
  assert sums[0] == sums[1] and set(sums[0]) == {"big", "small", "test"}
  assert np.isfinite(list(sums[0].values())).all()


def test_two_runs_sharing_one_cache_both_finish_with_the_same_numbers(shared_data_dir, tmp_path):
  """Two CLI runs at tiny sizes, two workdirs, one --cache_dir and one fresh --tfds_dir, started
  together (before the locks, such a pair failed or hung)."""
  import json
  import subprocess
  import sys

  from tests.conftest import REPO_ROOT

  tiny = [
    "--mapping=conv",
    "--epochs=2",
    "--seeds=1",
    "--teachers=2",
    "--teacher_epochs=1",
    "--config.data.max_big=1000",
    "--config.data.max_small=100",
    "--config.data.max_test=200",
    "--config.student.batch_size=50",
    f"--data_dir={shared_data_dir}",
    f"--cache_dir={tmp_path / 'shared_cache'}",
    f"--tfds_dir={tmp_path / 'tfds'}",
  ]
  env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
  runs = [
    subprocess.Popen(
      [sys.executable, "-m", "experiments.distill", *tiny, f"--workdir={tmp_path / f'w{i}'}"],
      cwd=REPO_ROOT,
      env=env,
      stdout=subprocess.DEVNULL,
      stderr=subprocess.PIPE,
      text=True,
    )
    for i in (1, 2)
  ]
  errors = [run.communicate(timeout=300)[1] for run in runs]
  for run, error in zip(runs, errors):
    assert run.returncode == 0, error[-3000:]
  results = [json.loads((tmp_path / f"w{i}" / "results.json").read_text()) for i in (1, 2)]
  for arm, entry in results[0]["arms"].items():  # every run's every epoch, bit for bit
    for metric in ("train_loss", "test_accuracy", "test_cross_entropy"):
      assert entry[metric] == results[1]["arms"][arm][metric], (arm, metric)
  reused = sorted(result["teacher"]["reused_checkpoint"] for result in results)
  assert reused == [False, True]  # one trained the teachers, the other waited and reused them
