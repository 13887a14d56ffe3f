"""distill-jax vs PyTorch on the conv experiment: same data, same models, same optimizer.

  pip install -e '.[bench]'          # torch==2.13.0 (CPU)
  python benchmarks/jax_vs_pytorch.py --data_dir=../shared/data          # ~2 minutes on 2 cores
  python benchmarks/jax_vs_pytorch.py --data_dir=../shared/data --full   # + whole experiment
  python benchmarks/jax_vs_pytorch.py --data_dir=../shared/data --smoke  # seconds (the tests)

PyTorch is written as a user would: eager mode, ``nn.Sequential``, ``torch.optim.Adam``, a Python
loop over shuffled mini-batches, one run after another, evaluation under ``torch.no_grad()``.
distill-jax runs through the library (``train.fit``: vmapped runs, one jitted ``lax.scan`` per
epoch). Throughput excludes the first epoch (JAX compiles there; compile time is printed apart);
``--full`` wall times include everything but data loading, which both share.

Prints ratios (JAX speed / PyTorch speed: > 1 means JAX is faster), then one ``JSON {...}`` line
with them and both sides' numbers. Not a test: no assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import jax
import numpy as np
import torch
import torch.nn.functional as F
from absl import logging as absl_logging

import conv_experiment  # benchmarks/conv_experiment.py, next to this script
import sizes  # benchmarks/sizes.py: --max_big, --max_test, --smoke
import torch_reference  # benchmarks/torch_reference.py: the plain PyTorch implementation
from distill_jax import parallel
from distill_jax.data import read_idx_pair
from experiments.configs import default as default_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_fashion(data_dir):
  """Big / Small / Test as float32 NHWC in [0, 1], straight from the IDX files."""
  folder = os.path.join(data_dir, "fashion_mnist")
  train_x, train_y = read_idx_pair(
    os.path.join(folder, "train-images-idx3-ubyte.gz"),
    os.path.join(folder, "train-labels-idx1-ubyte.gz"),
  )
  test_x, test_y = read_idx_pair(
    os.path.join(folder, "t10k-images-idx3-ubyte.gz"),
    os.path.join(folder, "t10k-labels-idx1-ubyte.gz"),
  )
  as_float = lambda x: (x.astype(np.float32) / 255.0)[..., None]  # noqa: E731
  train_x, test_x = as_float(train_x), as_float(test_x)
  train_y, test_y = train_y.astype(np.int32), test_y.astype(np.int32)
  return {
    "big": (train_x[:59000], train_y[:59000]),
    "small": (train_x[59000:], train_y[59000:]),
    "test": (test_x, test_y),
  }


# ----------------------------------------------------------------------------- PyTorch side


def torch_phi(images_nhwc: np.ndarray) -> torch.Tensor:
  """The dilated conv φ in PyTorch (NCHW)."""
  return torch_reference.phi("conv", torch.from_numpy(images_nhwc).permute(0, 3, 1, 2))


torch_mlp = torch_reference.mlp
torch_evaluate = torch_reference.evaluate


def torch_fit(
  model,
  x,
  y,
  test_x,
  test_y,
  *,
  epochs,
  batch_size,
  seed,
  soft=None,
  lam=0.0,
  temperature=1.0,
  on_epoch=None,
):
  """Adam 1e-3, shuffled mini-batches (last partial batch dropped), eval every epoch."""
  generator = torch.Generator().manual_seed(seed)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  steps = len(y) // batch_size
  metrics = None
  for epoch in range(epochs):
    order = torch.randperm(len(y), generator=generator)
    for step in range(steps):
      idx = order[step * batch_size : (step + 1) * batch_size]
      logits = model(x[idx])
      loss = F.cross_entropy(logits, y[idx])
      if soft is not None and lam > 0:
        targets = F.softmax(soft[idx] / temperature, dim=1)
        loss = loss - lam * (targets * F.log_softmax(logits / temperature, dim=1)).sum(1).mean()
      optimizer.zero_grad()
      loss.backward()
      optimizer.step()
    metrics = torch_evaluate(model, test_x, test_y)
    if on_epoch is not None:
      on_epoch(epoch + 1)
  return metrics


def torch_teacher(data, epochs, on_epoch=None):
  torch.manual_seed(0)
  big_x, big_y = torch_phi(data["big"][0]), torch.from_numpy(data["big"][1]).long()
  test_x = torch_phi(data["test"][0])
  test_y = torch.from_numpy(data["test"][1]).long()
  model = torch_mlp(576, (256, 128, 64, 64))
  metrics = torch_fit(
    model, big_x, big_y, test_x, test_y, epochs=epochs, batch_size=64, seed=0, on_epoch=on_epoch
  )
  return model, metrics


def torch_students(data, teacher, epochs, seeds, on_epoch=None):
  """Arms no_teacher and teacher_phi (precomputed soft targets), seeds one after another."""
  small_x = torch.from_numpy(data["small"][0]).permute(0, 3, 1, 2)
  small_y = torch.from_numpy(data["small"][1]).long()
  test_x = torch.from_numpy(data["test"][0]).permute(0, 3, 1, 2)
  test_y = torch.from_numpy(data["test"][1]).long()
  with torch.no_grad():
    soft = teacher(torch_phi(data["small"][0]))
  results = {}
  for arm, lam in (("no_teacher", 0.0), ("teacher_phi", 1.0)):
    accs = []
    for seed in range(seeds):
      torch.manual_seed(seed)
      student = torch_mlp(784, ())
      acc, _ = torch_fit(
        student,
        small_x,
        small_y,
        test_x,
        test_y,
        epochs=epochs,
        batch_size=100,
        seed=seed,
        soft=soft,
        lam=lam,
        on_epoch=on_epoch,
      )
      accs.append(acc)
    results[arm] = float(np.mean(accs))
  return results


# ----------------------------------------------------------------------------- JAX side


def jax_config(teacher_epochs, student_epochs, seeds):
  config = default_config.get_config()
  config.mapping = "conv"
  config.teacher.epochs = teacher_epochs
  config.student.epochs = student_epochs
  config.seeds = seeds
  config.teacher.count = 1  # PyTorch trains one teacher: compare like with like
  return config


def jax_students(config, data, teacher, workdir, mesh, on_epoch=None):
  """Both arms' mean final test accuracy (all seeds of an arm in one vmapped program)."""
  results = conv_experiment.fit_students(config, data, teacher, mesh, workdir, on_epoch)
  return {arm: float(r.history["test_accuracy"][:, -1].mean()) for arm, r in results.items()}


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
  """This machine's float32 matmul rate through JAX (GFLOP/s): a jitted ``size × size`` product,
  best of ``repeats`` calls after a warm-up. The reference the teacher step is measured against.
  """
  import jax.numpy as jnp

  a = jnp.ones((size, size), jnp.float32)
  product = jax.jit(jnp.dot)
  product(a, a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    started = time.perf_counter()
    product(a, a).block_until_ready()
    best = min(best, time.perf_counter() - started)
  return 2 * size**3 / best / 1e9


def teacher_step_gflop(config, input_shape=(24, 24, 1)) -> float:
  """XLA's FLOP count (``cost_analysis``) of one teacher training step: forward, backward and
  the Adam update of the conv experiment's MLP on a batch of ``config.teacher.batch_size``."""
  import jax.numpy as jnp
  import optax

  from distill_jax import losses, models

  model = models.from_config(config.teacher)
  params = models.init_fn(model, input_shape)(jax.random.key(0))
  tx = optax.adam(1e-3)
  images = jnp.zeros((config.teacher.batch_size, *input_shape), jnp.float32)
  labels = jnp.zeros((config.teacher.batch_size,), jnp.int32)

  def step(params, opt_state):
    grads = jax.grad(lambda p: losses.cross_entropy(model.apply(p, images), labels).mean())(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  cost = jax.jit(step).lower(params, tx.init(params)).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost  # older jax: one dict per program
  return float(cost["flops"]) / 1e9


def timed_epochs():
  """``(stamps, callback)``: the callback appends the time of each epoch end to ``stamps``."""
  stamps = [time.perf_counter()]
  return stamps, lambda *args: stamps.append(time.perf_counter())


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=os.path.join(REPO_ROOT, "..", "shared", "data"))
  parser.add_argument("--teacher_epochs", type=int, default=3, help="timed: all but the first")
  parser.add_argument("--student_epochs", type=int, default=20, help="timed: all but the first")
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--full", action="store_true", help="also time the whole experiment")
  sizes.add_size_flags(parser, "with --full, the whole experiment at those sizes (2 + 3 epochs)")
  args = parser.parse_args()
  sizes.apply_smoke(args)
  whole_epochs = (2, 3) if args.smoke else (10, 100)
  absl_logging.set_verbosity(absl_logging.WARNING)  # no progress logs inside the timings

  data = sizes.subset(load_fashion(args.data_dir), args.max_big, args.max_test)
  mesh = parallel.make_mesh()
  print(
    f"jax {jax.__version__} on {jax.devices()[0].platform} x{len(jax.devices())}; "
    f"torch {torch.__version__} with {torch.get_num_threads()} threads; "
    f"{os.cpu_count()} CPU cores"
  )
  rows = []

  def rate(stamps, work_per_epoch):
    """Work per second over epochs 2..n (epoch 1 holds JAX's compilation)."""
    return work_per_epoch * (len(stamps) - 2) / (stamps[-1] - stamps[1])

  # 1. Teacher: MLP 576-256-128-64-64-10 on φ(Big), batch 64: 921 steps + test eval per epoch.
  steps = len(data["big"][1]) // 64
  with tempfile.TemporaryDirectory() as workdir:
    jax_stamps, callback = timed_epochs()
    config = jax_config(args.teacher_epochs, args.student_epochs, args.seeds)
    jax_trained_teacher = conv_experiment.fit_teacher(config, data, mesh, workdir, callback)
  torch_stamps, callback = timed_epochs()
  torch_teacher_model, (torch_teacher_acc, _) = torch_teacher(data, args.teacher_epochs, callback)
  rows.append(
    (
      f"teacher: steps/s ({steps} steps + test eval per epoch)",
      rate(jax_stamps, steps),
      rate(torch_stamps, steps),
    )
  )
  peak = matmul_peak_gflops()
  step_gflop = teacher_step_gflop(config)
  achieved = step_gflop * rate(jax_stamps, steps)
  torch_achieved = step_gflop * rate(torch_stamps, steps)
  print(
    f"\nteacher step: {step_gflop * 1e3:.1f} MFLOP (XLA cost analysis); JAX achieves "
    f"{achieved:.1f} GFLOP/s = {achieved / peak:.0%} of this machine's matmul peak "
    f"({peak:.1f} GFLOP/s, jitted 2048² jnp.dot, measured now); PyTorch "
    f"{torch_achieved:.1f} GFLOP/s (both from steps/s that include the test evaluation after "
    "each epoch: lower bounds for the step alone)"
  )
  print(
    f"teacher: first epoch (JAX: incl. compile) JAX {jax_stamps[1] - jax_stamps[0]:.1f} s, "
    f"PyTorch {torch_stamps[1] - torch_stamps[0]:.1f} s; test accuracy on φ(test) after "
    f"{args.teacher_epochs} epochs: JAX {jax_trained_teacher.info['test_accuracy_mean']:.4f}, "
    f"PyTorch {torch_teacher_acc:.4f}"
  )

  # 2. Students: 2 arms x seeds, linear 784-10 on Small: 10 steps + test eval per epoch.
  with tempfile.TemporaryDirectory() as workdir:
    jax_stamps, callback = timed_epochs()
    config = jax_config(args.teacher_epochs, args.student_epochs, args.seeds)
    config.checkpoint_every = 10**9  # checkpoint only at the end
    jax_acc = jax_students(config, data, jax_trained_teacher, workdir, mesh, callback)
  # The JAX stamps cover two arms back to back; time each arm's epochs 2..n.
  arms = [jax_stamps[: args.student_epochs + 1], jax_stamps[args.student_epochs :]]
  jax_seconds = sum(s[-1] - s[1] for s in arms)
  jax_run_epochs = args.seeds * (args.student_epochs - 1) * 2
  torch_stamps, callback = timed_epochs()
  torch_acc = torch_students(data, torch_teacher_model, args.student_epochs, args.seeds, callback)
  torch_run_epochs = 2 * args.seeds * args.student_epochs
  rows.append(
    (
      f"students: run-epochs/s ({2 * args.seeds} runs; 10 steps + eval)",
      jax_run_epochs / jax_seconds,
      torch_run_epochs / (torch_stamps[-1] - torch_stamps[0]),
    )
  )
  print(
    f"students: final test accuracy after {args.student_epochs} epochs (mean over seeds): "
    + ", ".join(f"{arm} JAX {jax_acc[arm]:.4f} / PyTorch {torch_acc[arm]:.4f}" for arm in jax_acc)
  )

  # 3. Whole experiment (teacher 10 epochs + 2 arms x seeds x 100 epochs), compile included.
  if args.full:
    teacher_epochs, student_epochs = whole_epochs
    with tempfile.TemporaryDirectory() as workdir:
      config = jax_config(teacher_epochs, student_epochs, args.seeds)
      start = time.perf_counter()
      jax_students(
        config, data, conv_experiment.fit_teacher(config, data, mesh, workdir), workdir, mesh
      )
      jax_wall = time.perf_counter() - start
    start = time.perf_counter()
    teacher, _ = torch_teacher(data, teacher_epochs)
    torch_students(data, teacher, student_epochs, args.seeds)
    torch_wall = time.perf_counter() - start
    rows.append(("whole experiment: experiments per hour", 3600 / jax_wall, 3600 / torch_wall))
    print(f"whole experiment wall time: JAX {jax_wall:.1f} s, PyTorch {torch_wall:.1f} s")

  print(f"\n{'measure':<58}{'JAX':>10}{'PyTorch':>10}{'JAX/PyTorch':>13}")
  for name, jax_value, torch_value in rows:
    print(f"{name:<58}{jax_value:>10.1f}{torch_value:>10.1f}{jax_value / torch_value:>12.2f}x")
  summary = {
    "benchmark": "jax_vs_pytorch",
    "ratios": {name: jax_value / torch_value for name, jax_value, torch_value in rows},
    "jax": {name: jax_value for name, jax_value, _ in rows},
    "pytorch": {name: torch_value for name, _, torch_value in rows},
    "accuracy": {"jax": jax_acc, "pytorch": torch_acc},
    "teacher_step": {
      "gflop": step_gflop,
      "matmul_peak_gflops": peak,
      "jax_gflops": achieved,
      "jax_fraction_of_peak": achieved / peak,
      "pytorch_gflops": torch_achieved,
    },
    "args": vars(args),
  }
  print("JSON " + json.dumps(summary))


if __name__ == "__main__":
  main()
