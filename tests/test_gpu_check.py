"""benchmarks/gpu_check.sh in its CPU fallback (``--cpu_smoke``): both parts run end to end and
every ``JSON`` line parses with the numbers the GPU run reports."""

import json
import os
import subprocess
import sys

import jax
import pytest

from tests.conftest import REPO_ROOT
from tests.test_imagenette import write_tree

SCRIPT = REPO_ROOT / "benchmarks" / "gpu_check.sh"


@pytest.fixture
def data_dir(shared_data_dir, tmp_path):
  """The offline Fashion-MNIST next to a fake Imagenette tree of 60 train images (the CPU smoke
  draws Small as 20 of them) and 20 val images: preparing the real 13,394 JPEGs would cost the
  test more than the rest of the style part."""
  root = tmp_path / "data"
  root.mkdir()
  os.symlink(os.path.join(shared_data_dir, "fashion_mnist"), root / "fashion_mnist")
  write_tree(root, per_class={"train": 6, "val": 2})
  return root


def _run(*args, cwd):
  env = dict(
    os.environ,
    PYTHON=sys.executable,
    XLA_FLAGS="",  # one CPU device, as a user's run (conftest's two fake devices are for pytest)
    JAX_PLATFORMS="cpu",
    # The session's XLA cache (conftest), not the script's cold default under --out.
    JAX_COMPILATION_CACHE_DIR=jax.config.jax_compilation_cache_dir or "",
  )
  return subprocess.run(
    ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=420, cwd=cwd
  )


def _json_lines(stdout: str) -> list[dict]:
  return [
    json.loads(line[len("JSON ") :]) for line in stdout.splitlines() if line.startswith("JSON ")
  ]


def test_cpu_smoke_runs_every_part_and_reports_their_numbers(data_dir, tmp_path):
  """conv, style and scaling in one run (the default parts are conv,style)."""
  out = tmp_path / "out"
  result = _run(
    "--cpu_smoke", "--parts=conv,style,scaling", f"--data_dir={data_dir}", f"--out={out}",
    f"--tfds_dir={tmp_path / 'tfds'}", cwd=tmp_path,
  )  # fmt: skip
  assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
  lines = _json_lines(result.stdout)
  assert [line["part"] for line in lines] == ["device", "conv", "style", "scaling", "total"]
  device, conv, style, scaling, total = lines
  assert device["backend"] == "cpu" and device["matmul_peak_gflops"] > 0

  for part in (conv, style):
    assert part["status"] == "ok" and part["exit_code"] == 0 and part["mode"] == "cpu_smoke"
    assert part["wall_seconds"] > 0
    assert part["wall_seconds"] >= part["experiment_seconds"]["total"] > 0
    saved = json.loads(open(part["results_json"]).read())
    assert os.path.dirname(part["results_json"]) == str(out / part["part"])
    accuracies = [*saved["teacher"]["test_accuracy"]]
    for arm in saved["arms"].values():
      accuracies += [row[-1] for row in arm["test_accuracy"]]
    assert accuracies and all(0.0 <= a <= 1.0 for a in accuracies)
    assert all(0.0 <= a <= 1.0 for a in part["test_accuracy"].values())
    teacher, students = part["teacher"], part["students"]
    assert teacher["steps"] > 0 and teacher["steps_per_s"] > 0 and not teacher["reused_checkpoint"]
    assert teacher["gflop_per_step"] > 0 and teacher["gflops"] > 0
    assert teacher["fraction_of_peak"] == pytest.approx(
      teacher["gflops"] / device["matmul_peak_gflops"]
    )
    assert students["run_steps_per_s"] > 0 and students["gflops"] > 0
    assert f"wall {part['wall_seconds']} s (ok)" in result.stdout

  assert conv["num_examples"] == {"big": 500, "small": 100, "test": 200}
  assert conv["students"]["arms"] == ["no_teacher", "teacher_phi"]
  # forward + backward + Adam of the 576-256-128-64-64-10 MLP on 64 images (~58 MFLOP)
  assert 40e-3 < conv["teacher"]["gflop_per_step"] < 200e-3
  assert style["num_examples"] == {"big": 16, "small": 8, "test": 8}
  assert style["students"]["arms"] == ["no_teacher", "teacher", "teacher_phi"]
  transfer = style["style_transfer"]
  assert transfer["images"] == 16 + 8 + 8  # φ_style of Big, Small and the teacher's test images
  assert transfer["transfer_steps"] == 1 and transfer["gflop_per_image_step"] > 0
  assert transfer["vgg_weights"].startswith("random")
  assert "random ranVGG VGG-19 weights" in result.stdout

  assert scaling["status"] == "ok"
  assert "main: 1 device" in result.stdout and "main: 2 devices, runs" in result.stdout
  # The runs axis does the same work as one device (the layout test_devices_scaling leaves out).
  (report,) = _json_lines(open(scaling["log"]).read())
  one, runs = report["columns"]["main: 1 device"], report["columns"]["main: 2 devices, runs"]
  assert runs["devices"] == 2
  for measure in ("teacher_accuracy", "delta_accuracy"):
    assert runs[measure] == pytest.approx(one[measure], abs=0.02), measure

  assert total["parts"] == {"conv": "ok", "style": "ok", "scaling": "ok"}
  walls = conv["wall_seconds"] + style["wall_seconds"] + scaling["wall_seconds"]
  assert total["wall_seconds"] >= walls
  assert f"== total: {total['wall_seconds']} s wall" in result.stdout


def test_refuses_bad_arguments_before_any_work(tmp_path):
  """Each mistake ends in one error line and exit status 2, before jax or any folder is touched."""
  data = tmp_path / "data"
  (data / "fashion_mnist").mkdir(parents=True)
  (tmp_path / "used").mkdir()
  (tmp_path / "used" / "results.json").write_text("{}")
  for args, message in [
    (["--bogus"], "unknown argument '--bogus'"),
    ([f"--out={tmp_path / 'used'}"], "is not empty"),
    ([f"--data_dir={tmp_path}", f"--out={tmp_path / 'new'}"], "no Fashion-MNIST at"),
    (["--parts=conv,blur"], "unknown part 'blur'"),
    (["--budget_s=8min"], "--budget_s must be a whole number"),
    (["--vgg_weights=missing.pth"], "--vgg_weights="),
  ]:
    if not any(arg.startswith("--data_dir=") for arg in args):
      args = [f"--data_dir={data}", *args]
    result = _run(*args, cwd=tmp_path)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert message in result.stderr and "JSON" not in result.stdout
  assert not (tmp_path / "new").exists()
