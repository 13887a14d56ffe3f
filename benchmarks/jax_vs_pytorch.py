"""distill-jax vs PyTorch on the real workload: the default conv experiment, end to end.

  pip install -e '.[test]'                                         # includes torch==2.13.0 (CPU)
  python benchmarks/jax_vs_pytorch.py --data_dir=../shared/data           # ~6 minutes on 2 cores
  python benchmarks/jax_vs_pytorch.py --data_dir=../shared/data --smoke   # seconds (the tests)

In one run, on the same Fashion-MNIST arrays (read from the IDX files):

1. **Peak**: this machine's float32 matmul rate through JAX (a jitted 2048² ``jnp.dot``).
2. **The whole default conv experiment** (``configs/default.py``, ``--mapping=conv``): K = 5
   teachers (MLP 576-256-128-64-64-10 on φ(Big), batch 64, 10 epochs) × S = 5 student seeds
   each × 2 arms (``no_teacher``: K·S seeds; ``teacher_phi``: seed k·S + s under teacher k),
   linear students on Small for 100 epochs, test accuracy and cross-entropy after every student
   epoch. distill-jax through the library (``teacher.fit_teacher`` / ``students.fit_students``:
   the K teachers vmapped, all K·S runs of an arm vmapped, one jitted ``lax.scan`` per epoch,
   checkpoints) from a *cold* persistent compilation cache set up as the CLI sets it (its
   compile time is printed apart), and against two PyTorch versions:

   - **eager** as ``torch_reference.run`` writes it: ``nn.Sequential``, ``torch.optim.Adam``,
     a Python loop over teachers, seeds, arms and shuffled mini-batches;
   - **batched** as ``torch_batched.run`` writes it, the strongest PyTorch written here: the K
     teachers as one network of stacked ``[K, in, out]`` weights (``torch.baddbmm``), each
     arm's runs as one batched layer, one fused Adam over each stack (= independent Adams),
     φ precomputed once, the runs' test evaluation one GEMM; ``torch.compile`` measured
     slower there (its docstring), so eager kernels.

   Per phase too: the teachers (φ included) and the students (both arms). Data loading is
   outside every timing; every side must reach the same accuracies (printed).
3. **The teacher's training step alone** (no evaluation): JAX for one teacher and for K vmapped
   teachers (the library's scanned epoch), eager PyTorch for one (K teachers cost K times
   that), batched PyTorch for 1 and K; achieved GFLOP/s from XLA's cost analysis of one step,
   as a fraction of the peak.
4. **Students**: run-epochs/s (10 steps + a test evaluation each), JAX for an arm's K·S runs
   vmapped, eager PyTorch one run after another, batched PyTorch K·S runs at once.

Steps/s exclude the first epoch (JAX compiles there). Prints a table of JAX, eager and batched
PyTorch and the ratios (> 1: JAX is faster), then one ``JSON {...}`` line (``ratios``: against
eager, ``ratios_batched``: against batched). Not a test: no assertions.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time

import jax

# As the CLI (experiments/cli_setup.py): a persistent compilation cache that keeps every
# program; a fresh folder, so the whole experiment below starts cold.
jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="jax_vs_pytorch_xla_"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import torch  # noqa: E402
from absl import logging as absl_logging  # noqa: E402

import conv_experiment  # noqa: E402  benchmarks/conv_experiment.py, next to this script
import sizes  # noqa: E402  benchmarks/sizes.py: --max_big, --max_test, --smoke
import torch_batched  # noqa: E402  benchmarks/torch_batched.py: PyTorch batched, fused Adam
import torch_reference  # noqa: E402  benchmarks/torch_reference.py: plain PyTorch
from distill_jax import losses  # noqa: E402
from distill_jax import models  # noqa: E402
from distill_jax import parallel  # noqa: E402
from experiments.configs import default as default_config  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPILE_EVENTS = collections.Counter()  # jax.monitoring: seconds and counts of compile events


def _on_duration(event, duration, **kwargs):
  COMPILE_EVENTS[event + " seconds"] += duration
  COMPILE_EVENTS[event + " count"] += 1


jax.monitoring.register_event_duration_secs_listener(_on_duration)
jax.monitoring.register_event_listener(lambda event, **kwargs: COMPILE_EVENTS.update([event]))
BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
CACHE_HITS = "/jax/compilation_cache/cache_hits"


def as_torch(data: dict) -> dict:
  """The same arrays as NCHW float / int64 tensors (what ``torch_reference`` reads)."""
  return {
    split: (torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(y).long())
    for split, (x, y) in data.items()
  }


def jax_config(args, teachers: int):
  config = default_config.get_config()
  config.mapping = "conv"
  config.teacher.epochs, config.student.epochs = args.teacher_epochs, args.student_epochs
  config.seeds, config.teacher.count = args.seeds, teachers
  return config


# ----------------------------------------------------------------------------- measurements


def matmul_peak_gflops(size: int = 2048, repeats: int = 30) -> float:
  """This machine's float32 matmul rate through JAX (GFLOP/s): a jitted ``size × size`` product,
  best of ``repeats`` calls after a warm-up. The reference the teacher step is measured against.
  """
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


def whole_experiment_jax(config, data, mesh) -> dict:
  """The default experiment through the library, compile and checkpoints included."""
  before = COMPILE_EVENTS.copy()
  with tempfile.TemporaryDirectory() as workdir:
    started = time.perf_counter()
    teacher = conv_experiment.fit_teacher(config, data, mesh, workdir)
    teachers_done = time.perf_counter()
    arms = conv_experiment.fit_students(config, data, teacher, mesh, workdir)
    seconds = time.perf_counter() - started
  compiled = COMPILE_EVENTS - before
  return {
    "seconds": seconds,
    "phases": {"teachers": teachers_done - started, "students": started + seconds - teachers_done},
    "compile_seconds": compiled[BACKEND_COMPILE + " seconds"],
    "programs": compiled[BACKEND_COMPILE + " count"],
    "cache_hits": compiled[CACHE_HITS],
    "teacher_accuracy": teacher.info["test_accuracy_mean"],
    "accuracy": {arm: float(r.history["test_accuracy"][:, -1].mean()) for arm, r in arms.items()},
    "teacher": teacher,
  }


def whole_experiment_torch(config, torch_data) -> dict:
  """The same experiment as ``torch_reference.run`` writes it (the last partial batch dropped,
  as distill-jax does; the teacher is scored after its last epoch only)."""
  started = time.perf_counter()
  out = torch_reference.run(
    "conv",
    torch_data,
    teachers=config.teacher.count,
    seeds=config.seeds,
    teacher_epochs=config.teacher.epochs,
    student_epochs=config.student.epochs,
    drop_last=True,
    log=lambda *a: None,
  )
  return {"seconds": time.perf_counter() - started, **_accuracies(out)}


def _accuracies(out: dict) -> dict:
  """The mean teacher accuracy and each arm's mean final student accuracy of a PyTorch run
  (``torch_reference.run`` / ``torch_batched.run``)."""
  final = lambda runs: float(np.mean([run["test_accuracy"][-1] for run in runs]))  # noqa: E731
  return {
    "teacher_accuracy": float(np.mean([t["test_accuracy"] for t in out["teachers"]])),
    "accuracy": {
      "no_teacher": final(out["arms"]["no_teacher"]),
      "teacher_phi": final([run for runs in out["arms"]["teacher_phi"] for run in runs]),
    },
  }


def whole_experiment_torch_batched(config, torch_data, compile: bool = False) -> dict:
  """The same experiment as ``torch_batched.run`` writes it: the K teachers as one batched
  network and each arm's runs as one batched layer, fused Adam, φ precomputed."""
  started = time.perf_counter()
  out = torch_batched.run(
    torch_data,
    teachers=config.teacher.count,
    seeds=config.seeds,
    teacher_epochs=config.teacher.epochs,
    student_epochs=config.student.epochs,
    batch_size=config.teacher.batch_size,
    student_batch_size=config.student.batch_size,
    compile=compile,
    log=lambda *a: None,
  )
  seconds = time.perf_counter() - started
  phases = out["seconds"]
  return {
    "seconds": seconds,
    # φ of the sets counts with the teachers, as in the library (φ(Big) before they train).
    "phases": {"teachers": phases["fixed"] + phases["teachers"], "students": phases["students"]},
    "fixed_seconds": phases["fixed"],
    **_accuracies(out),
  }


def jax_teacher_epoch_seconds(config, data, mesh, count: int, epochs: int) -> float:
  """Seconds of one training epoch (no evaluation) of ``count`` vmapped teachers: the library's
  scanned epoch (``conv_experiment.epoch_program``, the program ``train.fit`` runs), best of
  epochs 2..n."""
  model = models.from_config(config.teacher)
  images = conv_experiment.PHI.map_array(data["big"][0], jax.random.key(0))
  loss_fn = conv_experiment.teacher_loss(model)
  batch_size = config.teacher.batch_size
  compiled, (states, *args) = conv_experiment.epoch_program(
    loss_fn, model, images, data["big"][1], count, batch_size, mesh
  )
  train_data, keys, _, hparams, context, test = args
  seconds = []
  for epoch in range(epochs):
    started = time.perf_counter()
    states, metrics = compiled(states, train_data, keys, epoch, hparams, context, test)
    jax.block_until_ready(metrics)
    seconds.append(time.perf_counter() - started)
  return min(seconds[1:])


def torch_teacher_epoch_seconds(torch_data, batch_size: int, epochs: int):
  """Seconds of one PyTorch training epoch of one teacher (no evaluation), best of ``epochs``;
  and the trained model (it teaches the PyTorch students below)."""
  torch.manual_seed(0)
  big_x, big_y = torch_reference.phi("conv", torch_data["big"][0]), torch_data["big"][1]
  model = torch_reference.mlp(big_x[0].numel())
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  generator = torch.Generator().manual_seed(0)
  seconds = []
  for _ in range(epochs):
    started = time.perf_counter()
    torch_batched.eager_epoch(model, optimizer, big_x, big_y, batch_size, generator)
    seconds.append(time.perf_counter() - started)
  return min(seconds), model.eval()


def jax_student_rate(config, data, teacher, mesh) -> float:
  """Run-epochs/s of both arms (K·S runs each, vmapped), epochs 2..n of each arm."""
  stamps = {}

  def start_arm(arm):
    stamps[arm.name] = [time.perf_counter()]

  def on_epoch(*args):
    next(reversed(stamps.values())).append(time.perf_counter())

  config = config.copy_and_resolve_references()
  config.checkpoint_every = 10**9  # checkpoint only at the end
  with tempfile.TemporaryDirectory() as workdir:
    results = conv_experiment.fit_students(
      config, data, teacher, mesh, workdir, on_epoch=on_epoch, before_arm=start_arm
    )
  run_epochs = sum(r.history["train_loss"].shape[0] for r in results.values())
  run_epochs *= config.student.epochs - 1
  return run_epochs / sum(s[-1] - s[1] for s in stamps.values())


def torch_student_rate(torch_data, teacher_model, epochs: int, seeds: int) -> float:
  """Run-epochs/s of both arms, ``seeds`` runs each, one after another."""
  with torch.no_grad():
    soft = teacher_model(torch_reference.phi("conv", torch_data["small"][0]))
  return torch_batched.reference_student_rate(torch_data, seeds, epochs, soft_logits=soft)


# ----------------------------------------------------------------------------- the run


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=os.path.join(REPO_ROOT, "..", "shared", "data"))
  parser.add_argument("--teachers", type=int, default=5, help="K (default: the experiment's)")
  parser.add_argument("--seeds", type=int, default=5, help="S student seeds per teacher")
  parser.add_argument("--teacher_epochs", type=int, default=10)
  parser.add_argument("--student_epochs", type=int, default=100)
  parser.add_argument(
    "--rate_epochs", type=int, default=3, help="epochs per step-rate measurement (>= 2)"
  )
  parser.add_argument("--student_rate_epochs", type=int, default=20)
  sizes.add_size_flags(parser, "2 teachers, 2 rate epochs")
  sizes.add_json_flag(parser)
  args = parser.parse_args()
  sizes.apply_smoke(args)
  if args.smoke:
    args.teachers, args.rate_epochs, args.student_rate_epochs = 2, 2, 3
  absl_logging.set_verbosity(absl_logging.WARNING)  # no progress logs inside the timings

  data = sizes.subset(conv_experiment.load_fashion(args.data_dir), args.max_big, args.max_test)
  torch_data = as_torch(data)
  mesh = parallel.make_mesh()
  config = jax_config(args, teachers=args.teachers)
  steps = len(data["big"][1]) // config.teacher.batch_size
  print(
    f"jax {jax.__version__} on {jax.devices()[0].platform} x{len(jax.devices())}; "
    f"torch {torch.__version__} with {torch.get_num_threads()} threads; "
    f"{os.cpu_count()} CPU cores"
  )
  peak = matmul_peak_gflops()

  # 2. The whole experiment, JAX first (its compilation cache is still cold).
  jax_whole = whole_experiment_jax(config, data, mesh)
  torch_whole = whole_experiment_torch(config, torch_data)
  batched_whole = whole_experiment_torch_batched(config, torch_data)

  # 3. The teacher step alone: 1 and K vmapped teachers.
  rate_epochs = max(2, args.rate_epochs)
  jax_one = jax_teacher_epoch_seconds(config, data, mesh, 1, rate_epochs)
  jax_k = jax_teacher_epoch_seconds(config, data, mesh, args.teachers, rate_epochs)
  torch_one, torch_teacher = torch_teacher_epoch_seconds(
    torch_data, config.teacher.batch_size, rate_epochs
  )
  batched_one, batched_k = (
    torch_batched.teacher_epoch_seconds(torch_data, count, config.teacher.batch_size, rate_epochs)
    for count in (1, args.teachers)
  )
  step_gflop = teacher_step_gflop(config)

  # 4. Students.
  rate_config = jax_config(args, teachers=args.teachers)
  rate_config.student.epochs = args.student_rate_epochs
  jax_students = jax_student_rate(rate_config, data, jax_whole.pop("teacher"), mesh)
  torch_students = torch_student_rate(torch_data, torch_teacher, args.student_rate_epochs, 2)
  with torch.no_grad():  # the eager teacher's logits on φ(Small), K times: the soft targets
    small_logits = torch_teacher(torch_reference.phi("conv", torch_data["small"][0]))
  batched_students = torch_batched.student_rate(
    torch_data, small_logits.expand(args.teachers, -1, -1), args.seeds, args.student_rate_epochs
  )

  k = args.teachers
  whole_name = f"default conv experiment (K={k} x S={args.seeds} x 2 arms): experiments/hour"
  per_hour = lambda whole: 3600 / whole["seconds"]  # noqa: E731
  per_hour_of = lambda whole, phase: 3600 / whole["phases"][phase]  # noqa: E731
  # (measure, JAX, eager PyTorch or None, batched PyTorch)
  rows = [
    (whole_name, per_hour(jax_whole), per_hour(torch_whole), per_hour(batched_whole)),
    (
      "  its teachers phase (φ included): phases/hour",
      per_hour_of(jax_whole, "teachers"), None, per_hour_of(batched_whole, "teachers"),
    ),
    (
      "  its students phase (both arms): phases/hour",
      per_hour_of(jax_whole, "students"), None, per_hour_of(batched_whole, "students"),
    ),
    ("teacher step alone, 1 teacher: steps/s", steps / jax_one, steps / torch_one,
     steps / batched_one),
    (f"teacher step alone, K={k} teachers: teacher-steps/s", k * steps / jax_k, steps / torch_one,
     k * steps / batched_k),
    ("students: run-epochs/s (10 steps + test eval)", jax_students, torch_students,
     batched_students),
  ]  # fmt: skip
  fraction = lambda steps_per_s: step_gflop * steps_per_s / peak  # noqa: E731
  teacher_step = {
    "gflop": step_gflop,
    "matmul_peak_gflops": peak,
    "jax_gflops": step_gflop * steps / jax_one,
    "jax_fraction_of_peak": fraction(steps / jax_one),
    f"jax_gflops_k{k}": step_gflop * k * steps / jax_k,
    f"jax_fraction_of_peak_k{k}": fraction(k * steps / jax_k),
    "pytorch_gflops": step_gflop * steps / torch_one,
    "pytorch_fraction_of_peak": fraction(steps / torch_one),
    f"pytorch_batched_gflops_k{k}": step_gflop * k * steps / batched_k,
    f"pytorch_batched_fraction_of_peak_k{k}": fraction(k * steps / batched_k),
    "k": k,
    "k_teachers_cost_over_one": jax_k / jax_one,
  }
  print(
    f"\nwhole experiment: JAX {jax_whole['seconds']:.1f} s (teachers "
    f"{jax_whole['phases']['teachers']:.1f} s, students {jax_whole['phases']['students']:.1f} s;"
    f" of it XLA compilation {jax_whole['compile_seconds']:.1f} s over "
    f"{jax_whole['programs']} programs, {jax_whole['cache_hits']} of them read from the "
    f"compilation cache), eager PyTorch {torch_whole['seconds']:.1f} s, batched PyTorch "
    f"{batched_whole['seconds']:.1f} s (φ {batched_whole['fixed_seconds']:.1f} s, teachers "
    f"{batched_whole['phases']['teachers']:.1f} s with φ, students "
    f"{batched_whole['phases']['students']:.1f} s). Teachers on φ(test): JAX "
    f"{jax_whole['teacher_accuracy']:.4f}, eager {torch_whole['teacher_accuracy']:.4f}, batched "
    f"{batched_whole['teacher_accuracy']:.4f}; students' final accuracy: "
    + ", ".join(
      f"{arm} JAX {jax_whole['accuracy'][arm]:.4f} / eager {torch_whole['accuracy'][arm]:.4f}"
      f" / batched {batched_whole['accuracy'][arm]:.4f}"
      for arm in jax_whole["accuracy"]
    )
  )
  print(
    f"teacher step: {step_gflop * 1e3:.1f} MFLOP (XLA cost analysis); matmul peak "
    f"{peak:.1f} GFLOP/s (jitted 2048² jnp.dot, measured now); JAX 1 teacher "
    f"{teacher_step['jax_gflops']:.1f} GFLOP/s = {teacher_step['jax_fraction_of_peak']:.0%} of "
    f"peak, {k} vmapped teachers {teacher_step[f'jax_gflops_k{k}']:.1f} GFLOP/s = "
    f"{teacher_step[f'jax_fraction_of_peak_k{k}']:.0%}; {k} teachers cost "
    f"{jax_k / jax_one:.2f}x one; PyTorch {teacher_step['pytorch_gflops']:.1f} GFLOP/s = "
    f"{teacher_step['pytorch_fraction_of_peak']:.0%}"
  )
  print(
    f"\n{'measure':<66}{'JAX':>10}{'eager':>10}{'batched':>10}{'JAX/eager':>11}{'JAX/batched':>13}"
  )
  for name, jax_value, eager, batched in rows:
    eager_text = "-" if eager is None else f"{eager:.1f}"
    eager_ratio = "-" if eager is None else f"{jax_value / eager:.2f}x"
    print(
      f"{name:<66}{jax_value:>10.1f}{eager_text:>10}{batched:>10.1f}{eager_ratio:>11}"
      f"{jax_value / batched:>12.2f}x"
    )
  summary = {
    "benchmark": "jax_vs_pytorch",
    # > 1: JAX is faster. "ratios" against eager PyTorch (rows it has), "ratios_batched" against
    # the batched PyTorch (torch_batched.py), the strongest written here.
    "ratios": {name: jax_value / eager for name, jax_value, eager, _ in rows if eager},
    "ratios_batched": {name: jax_value / batched for name, jax_value, _, batched in rows},
    "jax": {name: jax_value for name, jax_value, _, _ in rows},
    "pytorch": {name: eager for name, _, eager, _ in rows if eager},
    "pytorch_batched": {name: batched for name, _, _, batched in rows},
    "whole": {"jax": jax_whole, "pytorch": torch_whole, "pytorch_batched": batched_whole},
    "teacher_step": teacher_step,
    "args": vars(args),
  }
  sizes.emit(summary, args.json)


if __name__ == "__main__":
  main()
