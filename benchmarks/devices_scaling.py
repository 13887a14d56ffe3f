"""The experiment command on N devices and on P processes vs 1 device: the runs axis and the
data-parallel layout, end to end, and the per-device work of the epoch programs.

  python benchmarks/devices_scaling.py --data_dir=../shared/data          # main command + sweep
  python benchmarks/devices_scaling.py --data_dir=../shared/data --workloads=main
  python benchmarks/devices_scaling.py --smoke    # tiny sizes, ~1-2 minutes (the tests run it)

Runs ``python -m experiments.distill --mapping=conv`` (the README's main command: 5 teachers,
2 arms × 25 students) and a larger sweep (``--teachers=10 --seeds=10 --lam=0.5,1,2``) in
each layout, each from a fresh workdir, teacher cache and XLA compilation cache (tfds data
prepared once beforehand, untimed), and prints the wall time of each and its ratio to one
device (> 1: faster), and one JSON line. Layouts (N = ``--devices``, default the visible GPUs,
or on a CPU its cores as fake devices; P = ``--num_processes``, default N on a CPU):

- ``1 device``: one process, one device (on a CPU it uses every core inside each op).
- ``N devices, runs``: every device on the runs axis (``devices_per_run=1``, the default):
  each device trains its own runs, no communication per step.
- ``N devices, data``: each run's batch split over all N devices (``devices_per_run=N``, the
  layout of earlier versions): an all-reduce per step.
- ``P processes, runs`` (CPU only): ``--num_processes=P``, one device each, each process pinned
  to its share of the cores (``experiments/launch.py``) and training its own runs.

Every layout must reach the same results up to float rounding: the table prints each one's mean
teacher accuracy and the teacher_phi effect (Δ test accuracy vs no_teacher).

Then, as the evidence for more devices than this machine has: the FLOPs per device of the
teachers' compiled epoch program (XLA cost analysis of the SPMD-partitioned program) with
1, 2, 4 and 8 devices on the runs axis, for the sweep's 10 teachers (padded to a multiple of N):
it falls as ⌈10/N⌉/10, so on N GPUs each device does 1/N of the work with no collective.

On a CPU, fake devices (``--xla_force_host_platform_device_count``) and local processes share
this machine's cores: the ratio measures how well the runs axis uses them (each core busy with
other runs instead of helping each small matmul), not more hardware. Not a test: no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import sizes  # benchmarks/sizes.py: no JAX import

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKLOADS = {
  "main": [],  # the README's main command
  "sweep": ["--teachers=10", "--seeds=10", "--lam=0.5,1,2"],
}
SMOKE = [
  "--teachers=3", "--seeds=2", "--epochs=2", "--teacher_epochs=1",
  "--config.data.max_big=640", "--config.data.max_small=100", "--config.data.max_test=200",
  "--config.student.batch_size=50",
]  # fmt: skip
COST_DEVICES = (1, 2, 4, 8)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=os.path.join(REPO_ROOT, "..", "shared", "data"))
  parser.add_argument("--tfds_dir", default=None, help="prepared datasets (default: a temp dir)")
  parser.add_argument("--workloads", default="main,sweep", help="main, sweep or both")
  parser.add_argument("--devices", type=int, default=0, help="N (default: GPUs, or CPU cores)")
  parser.add_argument("--num_processes", type=int, default=None, help="P (CPU; default N)")
  parser.add_argument("--layouts", default="1,runs,data,processes", help="which layouts")
  parser.add_argument("--smoke", action="store_true", help="tiny sizes: the tests run this")
  parser.add_argument(
    "--cost", default=",".join(map(str, COST_DEVICES)),
    help="device counts of the per-device FLOPs rows (fake CPU devices); empty: none",
  )  # fmt: skip
  parser.add_argument("--cost_devices", default="", help=argparse.SUPPRESS)
  sizes.add_json_flag(parser)
  args = parser.parse_args(argv)
  args.workloads = [w for w in args.workloads.split(",") if w]
  for workload in args.workloads:
    if workload not in WORKLOADS:
      parser.error(f"--workloads: unknown {workload!r}; choose from {', '.join(WORKLOADS)}")
  try:
    args.cost = [int(n) for n in args.cost.split(",") if n]
  except ValueError:
    parser.error(f"--cost takes device counts such as 1,2,4,8; got {args.cost!r}")
  if any(n < 1 for n in args.cost):
    parser.error(f"--cost: device counts must be >= 1, got {args.cost}")
  args.layouts = [layout for layout in args.layouts.split(",") if layout]
  for layout in args.layouts:
    if layout not in ("1", "runs", "data", "processes"):
      parser.error(f"--layouts: unknown {layout!r}; choose from 1, runs, data, processes")
  return args


def main(argv=None):
  args = parse_args(argv)
  if args.cost_devices:  # a child: the cost analysis on these many of its fake CPU devices
    for devices in map(int, args.cost_devices.split(",")):
      print("COST " + json.dumps(per_device_flops(devices, smoke=args.smoke)), flush=True)
    return
  platform, visible = _platform()
  devices = args.devices or (visible if platform != "cpu" else os.cpu_count())
  processes = args.num_processes or (devices if platform == "cpu" else 0)
  print(
    f"{platform}: {visible} device(s) visible, {os.cpu_count()} CPU cores; N = {devices} "
    f"devices" + (f", P = {processes} processes" if processes else "")
  )
  scratch = tempfile.mkdtemp(prefix="devices_scaling_")
  try:
    tfds_dir = args.tfds_dir or os.path.join(scratch, "tfds")
    if not args.smoke:  # in smoke mode the first layout prepares the data (no timing claims)
      _prepare(args, tfds_dir, scratch, platform)
    columns = {}
    for workload in args.workloads:
      for name, layout in _layouts(args, platform, devices, processes).items():
        columns[f"{workload}: {name}"] = run_layout(args, workload, layout, tfds_dir, scratch)
    cost = _cost_rows(args)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  report(columns, cost, args.json)


def _platform() -> tuple[str, int]:
  """(the default JAX platform, its device count), asked of a fresh process (no JAX here)."""
  probe = "import jax; print(jax.default_backend(), jax.device_count())"
  out = subprocess.run(
    [sys.executable, "-c", probe], capture_output=True, text=True, env=_clean_env(), check=True
  ).stdout.split()
  return out[-2], int(out[-1])


def _clean_env(**extra) -> dict:
  """This environment without another job's JAX variables or fake-device flags."""
  env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COORD", "JAX_NUM_P"))}
  env.pop("JAX_PROCESS_ID", None)
  env["XLA_FLAGS"] = ""
  env["PYTHONPATH"] = REPO_ROOT
  env.update(extra)
  return env


def _layouts(args, platform: str, devices: int, processes: int) -> dict:
  """name -> (extra CLI flags, environment) of each layout asked for."""
  fake = lambda n: {"XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}  # noqa: E731
  cpu = platform == "cpu"
  layouts = {}
  if "1" in args.layouts:
    layouts["1 device"] = (["--config.num_devices=1"], fake(1) if cpu else {})
  if "runs" in args.layouts and devices > 1:
    layouts[f"{devices} devices, runs"] = (
      [f"--config.num_devices={devices}"], fake(devices) if cpu else {}
    )  # fmt: skip
  if "data" in args.layouts and devices > 1:
    layouts[f"{devices} devices, data"] = (
      [f"--config.num_devices={devices}", f"--config.devices_per_run={devices}"],
      fake(devices) if cpu else {},
    )
  if "processes" in args.layouts and cpu and processes > 1:
    layouts[f"{processes} processes, runs"] = ([f"--num_processes={processes}"], {})
  return layouts


def _command(args, workload: str, tfds_dir: str, workdir: str) -> list[str]:
  return [
    sys.executable, "-m", "experiments.distill", "--mapping=conv", f"--data_dir={args.data_dir}",
    f"--tfds_dir={tfds_dir}", f"--workdir={workdir}", *WORKLOADS[workload],
    *(SMOKE if args.smoke else []),
  ]  # fmt: skip


def _prepare(args, tfds_dir: str, scratch: str, platform: str) -> None:
  """tfds preparation (and imports warmed) once, untimed: a one-epoch tiny run."""
  workdir = os.path.join(scratch, "prepare")
  command = _command(args, "main", tfds_dir, workdir) + SMOKE + ["--epochs=1", "--teachers=1"]
  env = _clean_env(JAX_PLATFORMS=platform)
  done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
  if done.returncode != 0:
    raise SystemExit(f"preparing the data failed:\n{done.stderr[-3000:]}")
  shutil.rmtree(workdir)


def run_layout(args, workload: str, layout, tfds_dir: str, scratch: str) -> dict:
  """One timed run of the experiment command in ``layout``; its wall time and results."""
  flags, env_extra = layout
  workdir = tempfile.mkdtemp(dir=scratch)
  env = _clean_env(
    JAX_COMPILATION_CACHE_DIR=os.path.join(workdir, "xla"),  # cold compilation, every layout
    **env_extra,
  )
  command = _command(args, workload, tfds_dir, os.path.join(workdir, "run")) + flags
  started = time.perf_counter()
  done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
  seconds = time.perf_counter() - started
  if done.returncode != 0:
    raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
  with open(os.path.join(workdir, "run", "results.json")) as file:
    results = json.load(file)
  label = next(label for label in results["effects"] if label.startswith("teacher_phi"))
  effect = results["effects"][label]  # the first λ of a grid
  stages = {
    stage: float(value)
    for stage, value in re.findall(r"(teacher): trained in ([\d.]+) s", done.stderr)
  }
  shutil.rmtree(workdir)
  return {
    "seconds": seconds,
    "teacher_seconds": stages.get("teacher"),
    "devices": len(results["devices"]),
    "teacher_accuracy": results["teacher"]["test_accuracy_mean"],
    "delta_accuracy": effect["test_accuracy"]["mean"],
    "delta_cross_entropy": effect["test_cross_entropy"]["mean"],
  }


def per_device_flops(devices: int, smoke: bool) -> dict:
  """FLOPs per device of the teachers' scanned epoch (XLA cost analysis) for 10 teachers on the
  first ``devices`` fake CPU devices, all on the runs axis."""
  import jax
  import numpy as np

  import conv_experiment
  from distill_jax import models, parallel

  mesh = parallel.make_mesh(devices)
  model = models.get_model("mlp", hidden=(256, 128, 64, 64))
  rows = 640 if smoke else 59_000
  images = np.zeros((rows, 24, 24, 1), np.float32)  # φ_conv(x): 28 - 2·2 pixels a side
  labels = np.zeros(rows, np.int32)
  runs = parallel.padded_runs(10, mesh)
  compiled, _ = conv_experiment.epoch_program(
    conv_experiment.teacher_loss(model), model, images, labels, runs, 64, mesh
  )
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  text = compiled.as_text()
  collectives = sorted(set(re.findall(r"\b(all-reduce|all-gather|all-to-all)\(", text)))
  return {"devices": devices, "runs": runs, "flops": float(cost["flops"]), "collectives": collectives,
          "platform": jax.default_backend()}  # fmt: skip


def _cost_rows(args) -> list[dict]:
  """The cost rows of every count in ``--cost``, from one child process holding the largest
  count of fake CPU devices (each row's mesh is its first N devices)."""
  if not args.cost:
    return []
  env = _clean_env(
    JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={max(args.cost)}"
  )
  env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT, os.path.join(REPO_ROOT, "benchmarks")])
  command = [
    sys.executable,
    os.path.abspath(__file__),
    "--cost_devices=" + ",".join(map(str, args.cost)),
  ]
  done = subprocess.run(
    command + (["--smoke"] if args.smoke else []), env=env, capture_output=True, text=True
  )
  if done.returncode != 0:
    raise SystemExit(f"cost analysis on {args.cost} devices failed:\n{done.stderr[-3000:]}")
  rows = [
    json.loads(line[len("COST ") :])
    for line in done.stdout.splitlines()
    if line.startswith("COST ")
  ]
  if [row["devices"] for row in rows] != args.cost:
    raise SystemExit(
      f"cost analysis gave rows for {[row['devices'] for row in rows]}, not {args.cost}"
    )
  return rows


def report(columns: dict, cost: list[dict], json_path: str | None = None) -> None:
  """The table (ratios to the workload's one-device layout), the cost rows and a JSON line
  (also written to ``json_path`` with its provenance)."""
  print(
    f"\n{'workload: layout':<32}{'wall s':>9}{'teacher s':>11}{'vs 1 device':>13}"
    f"{'teacher acc':>13}{'Δ acc':>10}{'Δ CE':>10}"
  )
  ratios = {}
  for name, column in columns.items():
    workload = name.split(":")[0]
    base = columns.get(f"{workload}: 1 device")
    ratio = base["seconds"] / column["seconds"] if base else float("nan")
    ratios[name] = round(ratio, 4)
    teacher = column["teacher_seconds"]
    print(
      f"{name:<32}{column['seconds']:>9.1f}{teacher if teacher else float('nan'):>11.1f}"
      f"{ratio:>12.2f}x{column['teacher_accuracy']:>13.4f}{column['delta_accuracy']:>+10.4f}"
      f"{column['delta_cross_entropy']:>+10.4f}"
    )
  if cost:
    print("\nteachers' scanned epoch (10 teachers, padded to a multiple of N), XLA cost analysis")
    print("(a loop's body counted once: the FLOPs of one step and the evaluation):")
  first = cost[0]["flops"] if cost else None
  for row in cost:
    print(
      f"  {row['devices']} device(s): {row['runs']} runs, {row['flops'] / 1e9:.2f} GFLOP per "
      f"device ({row['flops'] / first:.3f} of 1 device), collectives: "
      f"{', '.join(row['collectives']) or 'none'}"
    )
  sizes.emit(
    {"benchmark": "devices_scaling", "ratios": ratios, "columns": columns, "cost": cost},
    json_path,
  )


if __name__ == "__main__":
  sys.path.insert(0, REPO_ROOT)
  sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
  main()
