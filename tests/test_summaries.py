"""TensorBoard event files: read back with TensorBoard's own reader, equal to results.json."""

import os

import numpy as np
import pytest
from PIL import Image

from distill_jax import summaries

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _results():
  rng = np.random.default_rng(0)
  curve = lambda runs, epochs: rng.random((runs, epochs)).round(4).tolist()  # noqa: E731
  teacher_phi = {"arm": "teacher_phi", "lam": 1.0, "temperature": 2.0}
  teacher_phi.update(seeds=[0, 1, 2, 3], teachers=[0, 0, 1, 1])
  no_teacher = {"arm": "no_teacher", "lam": 0.0, "temperature": 1.0}
  no_teacher.update(seeds=[0, 1, 2, 3], teachers=[-1] * 4)
  for arm in (teacher_phi, no_teacher):
    for metric in summaries.SCALARS:
      arm[metric] = curve(4, 3)
  no_teacher["test_accuracy"][0][1] = None  # an epoch not evaluated
  teacher = {"seeds": [0, 1], "trained_on": "phi(x)"}
  teacher["history"] = {metric: curve(2, 2) for metric in summaries.SCALARS}
  return {
    "config": {"mapping": "conv"},
    "teacher": teacher,
    "arms": {"no_teacher": no_teacher, "teacher_phi[lam=1,T=2]": teacher_phi},
    "phi": {"history": {"test_neg_elbo": [300.5, 250.25]}},
  }


def _scalars(folder):
  accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={"scalars": 0})
  accumulator.Reload()
  return accumulator, {
    tag: [(e.step, e.value) for e in accumulator.Scalars(tag)]
    for tag in accumulator.Tags()["scalars"]
  }


def test_every_run_reads_back_as_in_results(tmp_path):
  results = _results()
  figure = tmp_path / "test_accuracy.png"
  Image.new("RGB", (8, 6), (255, 0, 0)).save(figure)
  root = summaries.write(results, str(tmp_path), [str(figure)])
  assert root == str(tmp_path / "tensorboard")
  for label, arm in results["arms"].items():
    folder = tmp_path / "tensorboard" / summaries._safe(label)
    runs = sorted(os.listdir(folder))
    assert len(runs) == len(arm["seeds"]) + 1 and "mean" in runs
    for row, (seed, k) in enumerate(zip(arm["seeds"], arm["teachers"])):
      _, scalars = _scalars(folder / f"t{k}_s{seed}")
      for metric, tag in summaries.SCALARS.items():
        want = [(e + 1, v) for e, v in enumerate(arm[metric][row]) if v is not None]
        got = scalars[tag]
        assert [s for s, _ in got] == [s for s, _ in want]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=1e-6)
      assert not [tag for tag in scalars if tag.startswith("hparams")]  # HParams reads test/…
    _, mean = _scalars(folder / "mean")
    np.testing.assert_allclose(
      [v for _, v in mean["test/cross_entropy"]],
      np.mean(np.asarray(arm["test_cross_entropy"]), axis=0),
      rtol=1e-6,
    )
  _, mean = _scalars(tmp_path / "tensorboard" / "no_teacher" / "mean")
  no_teacher = np.asarray(results["arms"]["no_teacher"]["test_accuracy"], np.float64)
  assert [v for _, v in mean["test/accuracy"]][1] == pytest.approx(np.nanmean(no_teacher[:, 1]))
  for k in range(2):
    _, scalars = _scalars(tmp_path / "tensorboard" / "teacher" / f"k{k}")
    want = results["teacher"]["history"]["test_accuracy"][k]
    np.testing.assert_allclose([v for _, v in scalars["test/accuracy"]], want, rtol=1e-6)
  _, vae = _scalars(tmp_path / "tensorboard" / "vae")
  assert vae["vae/test_neg_elbo"] == [(1, pytest.approx(300.5)), (2, pytest.approx(250.25))]
  accumulator, _ = _scalars(tmp_path / "tensorboard" / "figures")
  assert accumulator.Tags()["images"] == ["test_accuracy"]


def test_hparams_name_the_run(tmp_path):
  summaries.write(_results(), str(tmp_path))
  folder = tmp_path / "tensorboard" / "teacher_phi_lam=1,T=2_" / "t1_s2"
  accumulator = event_accumulator.EventAccumulator(str(folder))
  accumulator.Reload()
  content = accumulator.PluginTagToContent("hparams")
  assert set(content) == {"_hparams_/session_start_info", "_hparams_/session_end_info"}
  start = content["_hparams_/session_start_info"]
  for text in (b"teacher_phi", b"conv"):
    assert text in start


def test_live_curves_then_write_give_each_point_once_and_a_rerun_adds_nothing(tmp_path):
  results = _results()
  arm = results["arms"]["teacher_phi[lam=1,T=2]"]
  folders = [
    summaries.student_folder("teacher_phi[lam=1,T=2]", seed, k)
    for seed, k in zip(arm["seeds"], arm["teachers"])
  ]
  with summaries.LiveCurves(str(tmp_path), folders) as live:  # as train.fit's on_epoch
    for epoch in range(3):
      live(epoch + 1, {m: np.asarray(arm[m])[:, epoch] for m in summaries.SCALARS})
  _, scalars = _scalars(tmp_path / "tensorboard" / folders[1])
  assert [v for _, v in scalars["test/accuracy"]] == pytest.approx(arm["test_accuracy"][1])

  summaries.write(results, str(tmp_path))
  board = tmp_path / "tensorboard"
  files = {str(p): p.stat().st_mtime_ns for p in board.rglob("events.*")}
  _, scalars = _scalars(board / folders[1])
  assert [s for s, _ in scalars["test/accuracy"]] == [1, 2, 3]  # each epoch once
  accumulator = event_accumulator.EventAccumulator(str(board / folders[1]))
  accumulator.Reload()
  assert "_hparams_/session_start_info" in accumulator.PluginTagToContent("hparams")  # added
  summaries.write(results, str(tmp_path))  # a rerun of the finished experiment
  assert {str(p): p.stat().st_mtime_ns for p in board.rglob("events.*")} == files


def _hparam_lam(folder):
  accumulator = event_accumulator.EventAccumulator(str(folder))
  accumulator.Reload()
  start = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
  from tensorboard.plugins.hparams import plugin_data_pb2

  data = plugin_data_pb2.HParamsPluginData.FromString(start)
  return data.session_start_info.hparams["lam"].number_value


def test_a_rerun_with_other_results_rewrites_what_differs(tmp_path):
  """The same workdir rerun with λ = 2: the runs' curves, HParams and the arm's mean are the
  new run's, not the first one's; what did not change is not rewritten."""
  first = _results()
  summaries.write(first, str(tmp_path))
  board = tmp_path / "tensorboard"
  run = board / "teacher_phi_lam=1,T=2_" / "t0_s0"
  teacher_files = {str(p): p.stat().st_mtime_ns for p in (board / "teacher").rglob("events.*")}
  assert _hparam_lam(run) == 1.0
  second = _results()
  arm = second["arms"]["teacher_phi[lam=1,T=2]"]
  arm["lam"] = 2.0
  arm["test_accuracy"] = [[0.5, 0.6, 0.7]] * 4
  summaries.write(second, str(tmp_path))
  assert _hparam_lam(run) == 2.0
  _, scalars = _scalars(run)
  assert [v for _, v in scalars["test/accuracy"]] == pytest.approx([0.5, 0.6, 0.7])
  _, mean = _scalars(board / "teacher_phi_lam=1,T=2_" / "mean")
  assert [v for _, v in mean["test/accuracy"]] == pytest.approx([0.5, 0.6, 0.7])
  assert len(list(run.glob("events.*"))) == 1  # the first run's file is gone
  unchanged = {str(p): p.stat().st_mtime_ns for p in (board / "teacher").rglob("events.*")}
  assert unchanged == teacher_files


def test_live_curves_write_nothing_when_disabled(tmp_path):
  with summaries.LiveCurves(str(tmp_path), ["a/t0_s0"], enabled=False) as live:
    live(1, {"test_accuracy": np.asarray([0.5])})
  assert not (tmp_path / "tensorboard").exists()


def test_live_curves_reach_the_disk_while_the_run_goes_on(tmp_path):
  """TensorBoard follows a running experiment: with ``flush_seconds=0`` every epoch is on disk
  before the next starts (the files still open), one file per run and no thread per run."""
  import threading

  threads = threading.active_count()
  folders = [f"arm/t0_s{seed}" for seed in range(30)]
  with summaries.LiveCurves(str(tmp_path), folders, flush_seconds=0.0) as live:
    for epoch in (1, 2):
      live(epoch, {"test_accuracy": np.arange(30) / 100 + epoch})
      _, scalars = _scalars(tmp_path / "tensorboard" / folders[7])
      assert scalars["test/accuracy"] == [(e, pytest.approx(0.07 + e)) for e in range(1, epoch + 1)]
    assert threading.active_count() == threads
  assert all(len(list((tmp_path / "tensorboard" / f).iterdir())) == 1 for f in folders)


def test_a_resumed_run_shows_each_epoch_once(tmp_path):
  """An attempt killed after epoch 7 (checkpoint at 5) and the rerun resuming at epoch 6: the
  rerun's file starts with a restart mark, so TensorBoard drops the first attempt's epochs 6-7
  (without it TensorBoard's Python reader shows both)."""
  import time

  folders = ["arm/t0_s0"]
  with summaries.LiveCurves(str(tmp_path), folders) as live:
    for epoch in range(1, 8):
      live(epoch, {"test_accuracy": np.asarray([epoch / 10])})
  time.sleep(1.1)  # event file names carry the second they were opened in
  with summaries.LiveCurves(str(tmp_path), folders) as live:
    for epoch in range(6, 11):
      live(epoch, {"test_accuracy": np.asarray([epoch / 10 + 0.5])})
  _, scalars = _scalars(tmp_path / "tensorboard" / folders[0])
  want = [(e, e / 10) for e in range(1, 6)] + [(e, e / 10 + 0.5) for e in range(6, 11)]
  assert scalars["test/accuracy"] == [(e, pytest.approx(v)) for e, v in want]
