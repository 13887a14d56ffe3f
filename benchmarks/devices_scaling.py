"""distill-jax on N devices and on P processes vs 1 device: the conv experiment, data parallel.

  python benchmarks/devices_scaling.py --data_dir=../shared/data                      # all devices
  python benchmarks/devices_scaling.py --data_dir=../shared/data --fake_cpu_devices=2  # CPU
  python benchmarks/devices_scaling.py --data_dir=../shared/data --fake_cpu_devices=2 \\
      --num_processes=2                                       # + 2 processes × 1 device (gloo)
  python benchmarks/devices_scaling.py --smoke                # ~1 minute: tiny subsets (the tests)

Trains the same teacher (MLP on φ_conv(Fashion-MNIST-Big), batch 64) and students (linear,
Fashion-MNIST-Small, 2 arms × seeds vmapped, batch 100) through ``teacher.fit_teacher`` /
``students.fit_students`` on a one-device mesh, on a mesh of N devices of this process (each
batch split over them, ``NamedSharding``) and, with ``--num_processes=P``, as P processes of one
``jax.distributed`` job with one device each (``experiments/launch.py``: a local coordinator,
gloo collectives; each process holds only its rows of the data sets on its device). Prints
throughput for each and the ratio to one device (> 1: faster), and one JSON line of the ratios.
Throughput excludes the first epoch (compilation). The final accuracies are printed too. All do
the same work, but the batch sums run in another order, and Adam amplifies such rounding
differences over training (measured here, MLP teacher: max |Δparam| 1e-4 after 100 steps, 0.3
after 921), so the teachers end about as far apart as two seeds would; the linear students on
one teacher agree to the printed digits.

On a CPU, ``--fake_cpu_devices`` splits the host into N XLA devices that share the same cores,
and P local processes share them too, so there the ratio is the cost of sharding and of the
collectives between processes, not a speedup; on a multi-GPU host (devices) or a cluster
(processes) it is the data-parallel scaling. Not a test: no assertions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import sizes  # benchmarks/sizes.py, next to this script (no JAX: flags come first)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_ENV = "DEVICES_SCALING_RESULT"  # where a process of the P-process job writes its numbers


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=os.path.join(REPO_ROOT, "..", "shared", "data"))
  parser.add_argument("--tfds_dir", default=os.path.expanduser("~/tensorflow_datasets"))
  parser.add_argument("--fake_cpu_devices", type=int, default=0, help="N fake CPU devices")
  parser.add_argument("--devices", type=int, default=0, help="N (default: all visible)")
  parser.add_argument("--num_processes", type=int, default=0, help="P processes × 1 device too")
  parser.add_argument("--teacher_epochs", type=int, default=3, help="timed: all but the first")
  parser.add_argument("--student_epochs", type=int, default=20, help="timed: all but the first")
  parser.add_argument("--seeds", type=int, default=5)
  sizes.add_size_flags(parser, "2 fake devices, 2 processes")
  args = parser.parse_args(argv)
  sizes.apply_smoke(args)
  if args.smoke:
    args.fake_cpu_devices = args.fake_cpu_devices or 2
    args.num_processes = args.num_processes or 2
  if args.num_processes == 1 or args.num_processes < 0:
    parser.error(f"--num_processes must be 0 (none) or >= 2, got {args.num_processes}")
  return args


def main(argv=None):
  args = parse_args(argv)
  in_job = "JAX_PROCESS_ID" in os.environ  # one process of the --num_processes job
  if args.fake_cpu_devices and not in_job:  # must be set before jax is imported
    os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "")
      + f" --xla_force_host_platform_device_count={args.fake_cpu_devices}"
    )
    os.environ["JAX_PLATFORMS"] = "cpu"
  if in_job:
    from distill_jax import parallel

    parallel.initialize_distributed()
  import jax
  from absl import logging as absl_logging

  from distill_jax import parallel

  absl_logging.set_verbosity(absl_logging.WARNING)  # no progress logs inside the timings
  if in_job:
    numbers = measure(args, parallel.make_mesh(0))
    if parallel.is_primary():
      with open(os.environ[RESULT_ENV], "w") as out:
        json.dump(numbers, out)
    return
  num_devices = args.devices or len(jax.devices())
  if num_devices < 2 and not args.num_processes:
    raise SystemExit(
      f"only {len(jax.devices())} {jax.devices()[0].platform} device(s) visible: nothing to "
      "compare; on a CPU pass --fake_cpu_devices=2 (or more), or --num_processes=2."
    )
  print(
    f"jax {jax.__version__}, {len(jax.devices())} {jax.devices()[0].platform} devices visible "
    f"({os.cpu_count()} CPU cores); comparing 1 device, {num_devices} devices"
    + (f", {args.num_processes} processes × 1 device" if args.num_processes else "")
  )
  columns = {"1 device": measure(args, parallel.make_mesh(1))}
  if num_devices >= 2:
    columns[f"{num_devices} devices"] = measure(args, parallel.make_mesh(num_devices))
  if args.num_processes:
    columns[f"{args.num_processes} processes"] = measure_processes(args)
  report(args, columns)


def load_data(args):
  """Fashion-MNIST Big / Small / Test (``--max_big`` / ``--max_test``: their first images)."""
  from distill_jax import data as data_lib

  data = data_lib.load_splits(
    "fashion_mnist", data_dir=data_lib.resolve_data_dir(args.data_dir), tfds_dir=args.tfds_dir
  )
  return sizes.subset(data, args.max_big, args.max_test)


def measure(args, mesh) -> dict:
  """Teacher steps/s, student run-epochs/s, the teacher's accuracy and the students' mean final
  accuracy per arm, on ``mesh``."""
  import conv_experiment  # benchmarks/conv_experiment.py (imports JAX: after the XLA flags)
  from experiments.configs import default as default_config

  started = time.perf_counter()
  data = load_data(args)
  config = default_config.get_config()
  config.mapping = "conv"
  config.teacher.epochs, config.student.epochs = args.teacher_epochs, args.student_epochs
  config.seeds = args.seeds
  config.teacher.count = 1  # one teacher: N devices vs 1 on the same work
  config.checkpoint_every = 10**9  # checkpoint only at the end
  stamps = [time.perf_counter()]
  on_epoch = lambda *_: stamps.append(time.perf_counter())  # noqa: E731
  job_workdir = os.environ.get("DEVICES_SCALING_WORKDIR")  # one for all processes of a job
  workdir_context = (
    contextlib.nullcontext(job_workdir) if job_workdir else tempfile.TemporaryDirectory()
  )
  with workdir_context as workdir:
    teacher = conv_experiment.fit_teacher(config, data, mesh, workdir, on_epoch)
    steps = len(data["big"][1]) // config.teacher.batch_size
    teacher_rate = steps * (len(stamps) - 2) / (stamps[-1] - stamps[1])
    seconds, run_epochs = 0.0, 0
    stamps.clear()

    def start_arm(arm):
      nonlocal seconds, run_epochs
      if len(stamps) > 2:  # the previous arm's epochs 2..n
        seconds += stamps[-1] - stamps[1]
        run_epochs += config.seeds * (len(stamps) - 2)
      stamps[:] = [time.perf_counter()]

    results = conv_experiment.fit_students(
      config, data, teacher, mesh, workdir, on_epoch, before_arm=start_arm
    )
    start_arm(None)
  return {
    "teacher_steps_per_s": teacher_rate,
    "student_run_epochs_per_s": run_epochs / seconds,
    "teacher_accuracy": float(teacher.info["test_accuracy_mean"]),
    "student_accuracy": {
      arm: float(r.history["test_accuracy"][:, -1].mean()) for arm, r in results.items()
    },
    "num_devices": int(mesh.devices.size),
    "wall_seconds": time.perf_counter() - started,  # data, compilation and training
  }


def measure_processes(args) -> dict:
  """``measure`` as ``--num_processes`` processes of one job (1 device each); process 0's
  numbers."""
  sys.path.insert(0, REPO_ROOT)
  from experiments import launch

  with tempfile.TemporaryDirectory() as scratch:
    result = os.path.join(scratch, "result.json")
    os.environ[RESULT_ENV] = result
    os.environ["DEVICES_SCALING_WORKDIR"] = scratch
    command = [sys.executable, os.path.abspath(__file__), *_child_argv(args)]
    try:
      status = launch.run_command(command, args.num_processes, devices_per_process=1)
    finally:
      del os.environ[RESULT_ENV], os.environ["DEVICES_SCALING_WORKDIR"]
    if status != 0 or not os.path.exists(result):
      raise SystemExit(f"the {args.num_processes}-process job failed (status {status}).")
    with open(result) as numbers:
      return json.load(numbers)


def _child_argv(args) -> list[str]:
  """The measurement's flags for the processes of the job (no devices / processes flags)."""
  flags = {
    "data_dir": args.data_dir, "tfds_dir": args.tfds_dir, "teacher_epochs": args.teacher_epochs,
    "student_epochs": args.student_epochs, "seeds": args.seeds, "max_big": args.max_big,
    "max_test": args.max_test,
  }  # fmt: skip
  return [f"--{name}={value}" for name, value in flags.items() if value is not None]


def report(args, columns: dict) -> None:
  """The accuracies, the table (ratios to one device) and one JSON line."""
  names = list(columns)
  first = columns[names[0]]
  print(
    "\nteacher test accuracy on φ(test): "
    + ", ".join(f"{name} {c['teacher_accuracy']:.4f}" for name, c in columns.items())
    + "; students (mean over seeds): "
    + "; ".join(
      f"{arm} " + " / ".join(f"{c['student_accuracy'][arm]:.4f}" for c in columns.values())
      for arm in first["student_accuracy"]
    )
  )
  measures = {
    "teacher_steps_per_s": "teacher: steps/s (batch 64 + test eval per epoch)",
    "student_run_epochs_per_s": f"students: run-epochs/s ({2 * args.seeds} runs, batch 100)",
  }
  header = f"{'measure':<52}" + "".join(f"{name:>13}" for name in names)
  header += "".join(f"{name + ' / 1':>18}" for name in names[1:])
  print("\n" + header)
  ratios = {}
  for key, text in measures.items():
    row = f"{text:<52}" + "".join(f"{columns[name][key]:>13.1f}" for name in names)
    for name in names[1:]:
      ratio = columns[name][key] / first[key]
      ratios[f"{key} {name} / 1 device"] = round(ratio, 4)
      row += f"{ratio:>17.2f}x"
    print(row)
  print(
    "JSON " + json.dumps({"benchmark": "devices_scaling", "ratios": ratios, "columns": columns})
  )


if __name__ == "__main__":
  sys.path.insert(0, REPO_ROOT)
  main()
