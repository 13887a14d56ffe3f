"""TensorBoard served on written event files: every run listed, the HParams sessions equal to
results.json, and the headless screenshots of the time series and HParams views."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from distill_jax import summaries
from experiments import tensorboard_screenshot
from tests.conftest import REPO_ROOT
from tests.test_summaries import _results

pytest.importorskip("tensorboard")


@pytest.fixture(scope="module")
def board(tmp_path_factory):
  """A finished run's tensorboard/ folder (two arms, two teachers, means, a figure)."""
  workdir = tmp_path_factory.mktemp("run")
  figure = workdir / "test_accuracy.png"
  Image.new("RGB", (8, 6), (255, 0, 0)).save(figure)
  return summaries.write(_results(), str(workdir), [str(figure)])


def test_run_folders_are_the_folders_with_event_files(board):
  runs = tensorboard_screenshot.run_folders(board)
  assert "teacher/k1" in runs and "no_teacher/mean" in runs and "figures" in runs
  assert "teacher_phi_lam=1,T=2_/t1_s3" in runs and "teacher" not in runs
  assert len(runs) == 2 + 2 * (4 + 1) + 2  # teachers, arms' runs and means, vae, figures


def test_a_logdir_without_event_files_says_what_to_give(tmp_path):
  with pytest.raises(FileNotFoundError, match="no TensorBoard event files.*experiments.distill"):
    with tensorboard_screenshot.serve(str(tmp_path)):
      pass


def test_hparams_sessions_are_the_student_runs_with_their_last_values(board):
  results = _results()
  with tensorboard_screenshot.serve(board) as url:
    sessions = tensorboard_screenshot.hparams_sessions(url)
  want = {}
  for label, arm in results["arms"].items():
    for row, (seed, k) in enumerate(zip(arm["seeds"], arm["teachers"])):
      want[summaries.student_folder(label, seed, k)] = (arm, row, seed, k)
  assert set(sessions) == set(want)  # no teacher, mean or figures session
  for run, (arm, row, seed, k) in want.items():
    session = sessions[run]
    assert session["hparams"]["arm"] == arm["arm"]
    assert session["hparams"]["mapping"] == "conv"
    assert [session["hparams"][h] for h in ("lam", "temperature", "seed", "teacher")] == [
      arm["lam"],
      arm["temperature"],
      seed,
      k,
    ]
    for metric, tag in summaries.SCALARS.items():
      last = [v for v in arm[metric][row] if v is not None][-1]
      np.testing.assert_allclose(session["metrics"][tag], last, rtol=1e-6)


def test_the_command_draws_both_views_showing_every_arm(board, tmp_path):
  """The screenshot command (headless Chromium via Qt WebEngine): it waits until each page shows
  every arm (time series: the arms' means; HParams: the arms) and the accuracy, else fails."""
  out_dir = tmp_path / "shots"
  command = [sys.executable, "-m", "experiments.tensorboard_screenshot", f"--logdir={board}"]
  command += [f"--out_dir={out_dir}", "--width=900", "--height=500", "--timeout_seconds=90"]
  result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
  assert "TensorBoard lists all 14 runs; HParams has 8 sessions" in result.stdout
  for view in ("time_series", "hparams"):
    with Image.open(io.BytesIO((out_dir / f"tensorboard_{view}.png").read_bytes())) as image:
      pixels = np.asarray(image.convert("RGB"), np.int16)
    assert pixels.shape == (500, 900, 3)
    orange = np.abs(pixels[:40] - np.array([245, 124, 0])).sum(axis=-1) < 60
    assert orange.mean() > 0.5  # TensorBoard's header bar, so the app was drawn
    assert len(np.unique(pixels[60:].reshape(-1, 3), axis=0)) > 50  # more than a blank page


def test_a_run_filter_matching_no_run_is_an_error(board, tmp_path):
  command = [sys.executable, "-m", "experiments.tensorboard_screenshot", f"--logdir={board}"]
  command += ["--run_filter=^nothing$", f"--out_dir={tmp_path}"]
  result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert "--run_filter='^nothing$' matches none of the 14 runs" in result.stderr
