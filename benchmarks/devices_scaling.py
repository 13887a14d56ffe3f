"""distill-jax on N devices vs 1: the conv experiment's teacher and students, data parallel.

  python benchmarks/devices_scaling.py --data_dir=../shared/data                      # all devices
  python benchmarks/devices_scaling.py --data_dir=../shared/data --fake_cpu_devices=2  # CPU

Trains the same teacher (MLP on φ_conv(Fashion-MNIST-Big), batch 64) and students (linear,
Fashion-MNIST-Small, 2 arms × seeds vmapped, batch 100) through ``teacher.fit_teacher`` /
``students.fit_students`` on a one-device mesh and on a mesh of N devices (each batch split
over them, ``NamedSharding``), and prints throughput for each and the ratio N / 1 (> 1: N
devices are faster). Throughput excludes the first epoch (compilation). The final accuracies are
printed too. Both do the same work, but the batch sums run in another order, and Adam amplifies
such rounding differences over training (measured here, MLP teacher: max |Δparam| 1e-4 after 100
steps, 0.3 after 921), so the teachers end about as far apart as two seeds would; the linear
students on one teacher agree to the printed digits.

On a CPU, ``--fake_cpu_devices`` splits the host into N XLA devices that share the same cores,
so there the ratio is the cost of sharding, not a speedup; on a multi-GPU host it is the
data-parallel scaling. Not a test: no assertions.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=os.path.join(REPO_ROOT, "..", "shared", "data"))
  parser.add_argument("--tfds_dir", default=os.path.expanduser("~/tensorflow_datasets"))
  parser.add_argument("--fake_cpu_devices", type=int, default=0, help="N fake CPU devices")
  parser.add_argument("--devices", type=int, default=0, help="N (default: all visible)")
  parser.add_argument("--teacher_epochs", type=int, default=3, help="timed: all but the first")
  parser.add_argument("--student_epochs", type=int, default=20, help="timed: all but the first")
  parser.add_argument("--seeds", type=int, default=5)
  return parser.parse_args()


def main():
  args = parse_args()
  if args.fake_cpu_devices:  # must be set before jax is imported
    os.environ["XLA_FLAGS"] = (
      os.environ.get("XLA_FLAGS", "")
      + f" --xla_force_host_platform_device_count={args.fake_cpu_devices}"
    )
    os.environ["JAX_PLATFORMS"] = "cpu"
  import jax
  from absl import logging as absl_logging

  from distill_jax import data as data_lib
  import conv_experiment  # benchmarks/conv_experiment.py, next to this script
  from distill_jax import parallel
  from experiments.configs import default as default_config

  absl_logging.set_verbosity(absl_logging.WARNING)  # no progress logs inside the timings
  num_devices = args.devices or len(jax.devices())
  if num_devices < 2:
    raise SystemExit(
      f"only {len(jax.devices())} {jax.devices()[0].platform} device(s) visible: nothing to "
      "compare; on a CPU pass --fake_cpu_devices=2 (or more)."
    )
  data = data_lib.load_splits(
    "fashion_mnist", data_dir=data_lib.resolve_data_dir(args.data_dir), tfds_dir=args.tfds_dir
  )
  config = default_config.get_config()
  config.mapping = "conv"
  config.teacher.epochs, config.student.epochs = args.teacher_epochs, args.student_epochs
  config.seeds = args.seeds
  config.teacher.count = 1  # one teacher: N devices vs 1 on the same work
  config.checkpoint_every = 10**9  # checkpoint only at the end
  print(
    f"jax {jax.__version__}, {len(jax.devices())} {jax.devices()[0].platform} devices visible "
    f"({os.cpu_count()} CPU cores); comparing 1 vs {num_devices} devices"
  )

  def run(mesh):
    """(teacher steps/s, student run-epochs/s, teacher accuracy, students' mean accuracies)."""
    stamps = [time.perf_counter()]
    on_epoch = lambda *_: stamps.append(time.perf_counter())  # noqa: E731
    with tempfile.TemporaryDirectory() as workdir:
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
      accuracies = {
        arm: float(r.history["test_accuracy"][:, -1].mean()) for arm, r in results.items()
      }
    return teacher_rate, run_epochs / seconds, teacher.info["test_accuracy_mean"], accuracies

  one = run(parallel.make_mesh(1))
  many = run(parallel.make_mesh(num_devices))
  print(
    f"\nteacher test accuracy on φ(test): 1 device {one[2]:.4f}, {num_devices} devices "
    f"{many[2]:.4f}; students (mean over seeds): "
    + ", ".join(f"{arm} {one[3][arm]:.4f} / {many[3][arm]:.4f}" for arm in one[3])
  )
  rows = [
    ("teacher: steps/s (batch 64 + test eval per epoch)", one[0], many[0]),
    (f"students: run-epochs/s ({2 * config.seeds} runs, batch 100)", one[1], many[1]),
  ]
  print(f"\n{'measure':<52}{'1 device':>10}{f'{num_devices} devices':>12}{'ratio':>9}")
  for name, single, multiple in rows:
    print(f"{name:<52}{single:>10.1f}{multiple:>12.1f}{multiple / single:>8.2f}x")


if __name__ == "__main__":
  main()
