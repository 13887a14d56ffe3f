"""The benchmarks run (smoke sizes) and their PyTorch reference computes what the library does."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from distill_jax import maps
from distill_jax.data import read_idx_pair
from experiments.configs import default as default_config
from tests.conftest import REPO_ROOT

torch = pytest.importorskip("torch")  # the test / bench extras install torch==2.13.0 (CPU)
sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import parity_pytorch  # noqa: E402
import torch_reference  # noqa: E402


def test_reference_reads_the_same_data(shared_data_dir):
  data = torch_reference.load_fashion_mnist(shared_data_dir)
  folder = os.path.join(shared_data_dir, "fashion_mnist")
  images, labels = read_idx_pair(
    os.path.join(folder, "t10k-images-idx3-ubyte.gz"),
    os.path.join(folder, "t10k-labels-idx1-ubyte.gz"),
  )
  test_x, test_y = data["test"]
  np.testing.assert_array_equal(test_x[:, 0].numpy(), images.astype(np.float32) / 255.0)
  np.testing.assert_array_equal(test_y.numpy(), labels)
  assert [len(data[s][1]) for s in ("big", "small", "test")] == [59000, 1000, 10000]


def test_reference_maps_match_the_library():
  images = np.random.default_rng(0).random((3, 28, 28, 1), np.float32)
  nchw = torch.from_numpy(images).permute(0, 3, 1, 2)
  want = maps.get_map("conv").map_array(images, jax.random.key(0))
  got = torch_reference.phi("conv", nchw).permute(0, 2, 3, 1).numpy()
  np.testing.assert_allclose(got, want, atol=1e-5)
  np.testing.assert_array_equal(torch_reference.phi("identity", nchw), nchw)
  torch.manual_seed(0)
  noise = torch_reference.phi("noise", torch.zeros(200, 1, 28, 28))
  assert float(noise.var()) == pytest.approx(torch_reference.NOISE_VARIANCE, rel=0.02)
  assert torch_reference.NOISE_VARIANCE == default_config.get_config().maps.noise.variance


def test_reference_batches_keep_or_drop_the_partial_batch():
  generator = torch.Generator().manual_seed(0)
  kept = torch_reference.batches(10, 4, generator, drop_last=False)
  assert [len(b) for b in kept] == [4, 4, 2]
  assert sorted(torch.cat(kept).tolist()) == list(range(10))
  dropped = torch_reference.batches(10, 4, generator, drop_last=True)
  assert [len(b) for b in dropped] == [4, 4]


def test_reference_student_without_teacher_is_the_lambda_zero_student():
  rng = np.random.default_rng(0)
  data = {
    "small": (torch.from_numpy(rng.random((40, 1, 4, 4), np.float32)), torch.arange(40) % 10),
    "test": (torch.from_numpy(rng.random((20, 1, 4, 4), np.float32)), torch.arange(20) % 10),
  }
  soft = torch.from_numpy(rng.normal(size=(40, 10)).astype(np.float32))
  alone = torch_reference.train_student(data, 3, epochs=2, batch_size=8)
  zero = torch_reference.train_student(data, 3, soft_logits=soft, lam=0.0, epochs=2, batch_size=8)
  taught = torch_reference.train_student(data, 3, soft_logits=soft, epochs=2, batch_size=8)
  assert alone == zero  # same seed: same init and batches; λ = 0 removes the soft term
  assert alone != taught


def test_gains_and_summary_from_known_runs():
  """Per-teacher gains of a hand-made run: d[k, s] = taught(k, s) − alone(s), last-n means."""

  def history(seed, acc):
    return {"seed": seed, "test_accuracy": acc, "test_cross_entropy": [1 - a for a in acc]}

  run = {
    "teachers": [{"test_accuracy": a} for a in (0.8, 0.9, 0.85)],
    "arms": {  # no_teacher listed in another order: pairing goes by seed
      "no_teacher": [history(1, [0.5, 0.7]), history(0, [0.5, 0.6])],
      "teacher_phi": [
        [history(0, [0.6, 0.7]), history(1, [0.6, 0.8])],  # +0.1, +0.1
        [history(0, [0.5, 0.8]), history(1, [0.5, 0.7])],  # +0.2, 0.0
        [history(0, [0.5, 0.65]), history(1, [0.5, 0.75])],  # +0.05, +0.05
      ],
    },
  }
  np.testing.assert_allclose(
    parity_pytorch.gains(run, "test_accuracy", 1), [[0.1, 0.1], [0.2, 0.0], [0.05, 0.05]]
  )
  np.testing.assert_allclose(parity_pytorch.gains(run, "test_accuracy", 2)[1], [0.1, 0.0])
  summary = parity_pytorch.summarize(run)
  final = summary["test_accuracy/final"]
  assert final["per_teacher"] == pytest.approx([0.1, 0.1, 0.05])
  assert final["sd"] == pytest.approx(np.std([0.1, 0.1, 0.05], ddof=1))
  # seed part: √(mean_k var_s(d_ks) / S) = √(((0 + 0.02 + 0) / 3) / 2)
  assert final["seed_part_sd"] == pytest.approx(np.sqrt(0.02 / 3 / 2))
  assert summary["test_cross_entropy/final"]["per_teacher"] == pytest.approx([-0.1, -0.1, -0.05])
  # Seeds 0 and 1 under every teacher: the seed means (0.35/3, 0.15/3) give the common part.
  assert summary["shared_seeds"]
  assert final["shared_seed_se"] == pytest.approx(np.std([0.35 / 3, 0.15 / 3], ddof=1) / np.sqrt(2))


def test_parity_smoke(shared_data_dir, tmp_path):
  """The documented command in smoke mode: both frameworks, intervals, overlaps, JSON."""
  out = tmp_path / "parity.json"
  summaries = parity_pytorch.main(
    [
      f"--data_dir={shared_data_dir}",
      "--smoke",
      "--maps=conv",
      "--jax_inits=torch",
      f"--workdir={tmp_path}",
      f"--json={out}",
    ]
  )
  saved = json.loads(out.read_text())
  assert saved["provenance"]["command"].startswith("python benchmarks/parity_pytorch.py --data")
  assert set(summaries["conv"]) == {"jax-torch", "pytorch"}
  for framework, summary in summaries["conv"].items():
    assert len(summary["teacher_accuracy"]) == 2  # smoke: K = 2
    assert all(0.0 <= a <= 1.0 for a in summary["teacher_accuracy"])
    effect = summary["test_accuracy/final"]
    assert len(effect["per_teacher"]) == 2 and np.isfinite(effect["mean"])
  runs = saved["runs"]["conv"]
  for framework in ("jax-torch", "pytorch"):
    taught = runs[framework]["arms"]["teacher_phi"]
    # Each teacher its own student seeds (both frameworks), each paired with a no_teacher run.
    assert [[r["seed"] for r in per_teacher] for per_teacher in taught] == [[0, 1], [2, 3]]
    assert [r["seed"] for r in runs[framework]["arms"]["no_teacher"]] == [0, 1, 2, 3]
    assert len(runs[framework]["arms"]["no_teacher"][0]["test_accuracy"]) == 3  # epochs
  assert set(saved["overlap_with_pytorch"]["conv"]["jax-torch"]) == {
    f"{m}/{e}" for m in parity_pytorch.METRICS for e in parity_pytorch.ESTIMATORS
  }
  # The tables again from the saved runs, and the file the docs quote: no raw runs, the run's
  # own provenance, the same summaries.
  public = tmp_path / "public.json"
  again = parity_pytorch.main([f"--from_json={out}", f"--json={public}"])
  kept = json.loads(public.read_text())
  assert "runs" not in kept and kept["provenance"] == saved["provenance"]
  assert kept["summaries"] == json.loads(json.dumps(again)) == json.loads(json.dumps(summaries))


def test_levene_compares_the_spread_of_the_gains():
  def summary(per_teacher):
    return {f"test_accuracy/{e}": {"per_teacher": per_teacher} for e in parity_pytorch.ESTIMATORS}

  alike = {"conv": {"jax-torch": summary([1, 2, 3, 4]), "pytorch": summary([2, 3, 4, 5])}}
  spread = {"conv": {"jax-torch": summary([0, 5, 10, 15]), "pytorch": summary([2, 3, 4, 5])}}
  (p_alike,) = set(parity_pytorch.levene(alike)["conv"]["jax-torch"].values())
  (p_spread,) = set(parity_pytorch.levene(spread)["conv"]["jax-torch"].values())
  assert p_alike == pytest.approx(1.0) and p_spread < 0.05
  few = {"conv": {"jax-torch": summary([1, 2]), "pytorch": summary([2, 3])}}
  assert parity_pytorch.levene(few) == {"conv": {"jax-torch": {}}}  # 2 teachers: no test


def _json_line(stdout: str) -> dict:
  (line,) = [line for line in stdout.splitlines() if line.startswith("JSON ")]
  return json.loads(line[len("JSON ") :])


def test_jax_vs_pytorch_smoke(shared_data_dir, tmp_path):
  """The documented command at smoke sizes: the whole experiment, step rates, peak fraction."""
  result = subprocess.run(
    [
      sys.executable, os.path.join(REPO_ROOT, "benchmarks", "jax_vs_pytorch.py"),
      f"--data_dir={shared_data_dir}", "--smoke", f"--json={tmp_path / 'out' / 'j.json'}",
    ],
    env=dict(os.environ, PYTHONPATH=str(REPO_ROOT), XLA_FLAGS=""),
    capture_output=True, text=True, timeout=400, cwd=tmp_path,
  )  # fmt: skip
  assert result.returncode == 0, result.stderr[-3000:]
  summary = _json_line(result.stdout)
  written = json.loads((tmp_path / "out" / "j.json").read_text())  # what the docs quote
  assert written.pop("provenance")["command"].startswith("python ")
  assert written == summary
  assert summary["benchmark"] == "jax_vs_pytorch"
  names = list(summary["ratios_batched"])  # every row has JAX and the batched PyTorch
  assert len(names) == 6 and names[0].startswith("default conv experiment (K=2 x S=1 x 2 arms)")
  assert [name for name in names if name in summary["ratios"]] == [names[0], *names[3:]]
  for name in names:  # ratio = JAX / PyTorch, both measured
    assert summary["jax"][name] > 0 and summary["pytorch_batched"][name] > 0
    assert summary["ratios_batched"][name] == pytest.approx(
      summary["jax"][name] / summary["pytorch_batched"][name]
    )
    if name in summary["ratios"]:  # the eager PyTorch has no phase rows
      assert summary["ratios"][name] == pytest.approx(
        summary["jax"][name] / summary["pytorch"][name]
      )
  whole = summary["whole"]
  for side in ("jax", "pytorch", "pytorch_batched"):
    assert set(whole[side]["accuracy"]) == {"no_teacher", "teacher_phi"}
    assert 0 < whole[side]["teacher_accuracy"] <= 1
  for side in ("jax", "pytorch_batched"):  # the phases add up to the whole
    assert sum(whole[side]["phases"].values()) == pytest.approx(whole[side]["seconds"], rel=0.05)
  # The same experiment: the batched PyTorch as accurate as the eager one, at these tiny sizes
  # within the spread of 2 teachers.
  assert whole["pytorch_batched"]["teacher_accuracy"] == pytest.approx(
    whole["pytorch"]["teacher_accuracy"], abs=0.02
  )
  # Compiled from a cold cache; the second arm reads its init program from the persistent cache
  # (its epoch program is the first arm's, shared in memory: tests/test_train.py).
  assert whole["jax"]["compile_seconds"] > 0 and whole["jax"]["cache_hits"] >= 1
  step = summary["teacher_step"]  # achieved FLOP/s against a peak measured in the same run
  # forward + backward of the 576-256-128-64-64-10 MLP on 64 images: ~6 × 64 × 190k MAC-FLOP
  assert 40e-3 < step["gflop"] < 200e-3
  assert step["matmul_peak_gflops"] > 0 and step["k"] == 2
  assert step["jax_fraction_of_peak"] == pytest.approx(
    step["jax_gflops"] / step["matmul_peak_gflops"]
  )
  assert step["jax_fraction_of_peak_k2"] == pytest.approx(
    step["jax_gflops_k2"] / step["matmul_peak_gflops"]
  )
  assert step["k_teachers_cost_over_one"] > 0
