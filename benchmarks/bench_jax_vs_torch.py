"""Speed of distill-jax vs the same distillation written as a plain PyTorch user would.

  python benchmarks/bench_jax_vs_torch.py                  # default: ~1-2 minutes on 2 CPU cores
  python benchmarks/bench_jax_vs_torch.py --full           # + the whole experiment, both sides

The conv experiment on Fashion-MNIST, both sides fed the same float32 arrays read from the IDX
files (Big = train[:59000], Small = train[59000:], Test = t10k):

* teacher: MLP 576-256-128-64-64-10 (ReLU) on φ(Big) -- φ = the 3×3 kernel [[1,0,1],[0,1,0],
  [1,0,1]], dilation 2, VALID: 28×28 → 24×24 -- Adam 1e-3, batch 64, test accuracy and
  cross-entropy on φ(Test) after every epoch;
* students: linear 784→10 on Small, Adam 1e-3, batch 100, loss = CE(labels) + λ·CE(softmax(
  teacher(φ(x))/T), softmax(student(x)/T)), T = 1, soft targets precomputed once; arms
  ``no_teacher`` (λ = 0) and ``teacher_phi`` (λ = 1), ``--seeds`` seeds each; test accuracy and
  cross-entropy on the 10,000 test images after every epoch.

JAX goes through the library: ``distill_jax.train.fit`` (each epoch one jitted ``lax.scan``
program, the runs of an arm ``vmap``-ed into it), ``models``, ``maps``, ``losses``,
``train.predict``; ``--full`` also times ``experiment.fit_teacher`` / ``fit_students`` (the
path ``experiments/distill.py`` runs, orbax checkpoints included). PyTorch: CPU, eager mode,
``nn.Sequential``, ``torch.optim.Adam``, a Python loop over shuffled mini-batches indexed from
in-memory tensors, runs one after another, evaluation under ``torch.no_grad()``, and as many
intra-op threads as XLA's CPU client uses (one per schedulable core).

Throughput rows exclude epoch 1 on both sides (for JAX it holds tracing + XLA compilation, which
is measured exactly through ``jax.monitoring`` and printed apart); wall-time rows include
everything except reading the IDX files (compilation, φ, soft targets, evaluation). Every
``train.fit`` epoch ends with ``jax.device_get`` of that epoch's metrics, which are outputs of
the same XLA program as the new parameters, so each epoch stamp is taken after the program has
finished; ``jax.block_until_ready`` is applied to the returned parameters before a run's end
stamp. Not a test: nothing is asserted about speed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run from anywhere without installing the package
  sys.path.insert(0, REPO_ROOT)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from absl import logging as absl_logging  # noqa: E402
from torch import nn  # noqa: E402

from distill_jax import experiment, losses, maps, models, parallel, train  # noqa: E402
from distill_jax.data import idx  # noqa: E402

TEACHER_HIDDEN = (256, 128, 64, 64)
TEACHER_BATCH = 64
STUDENT_BATCH = 100
LEARNING_RATE = 1e-3
EVAL_BATCH = 1000
NUM_BIG = 59000
ARMS = (("no_teacher", 0.0), ("teacher_phi", 1.0))  # (name, λ); T = 1 for both
TEMPERATURE = 1.0


# ------------------------------------------------------------------------------------- data


def load_fashion(data_dir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Big / Small / Test straight from the IDX files: float32 NHWC in [0, 1], int32 labels."""
  folder = os.path.join(data_dir, "fashion_mnist")

  def pair(prefix):
    images, labels = idx.read_idx_pair(
      os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"),
      os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"),
    )
    return (images.astype(np.float32) / 255.0)[..., None], labels.astype(np.int32)

  (train_x, train_y), (test_x, test_y) = pair("train"), pair("t10k")
  return {
    "big": (train_x[:NUM_BIG], train_y[:NUM_BIG]),
    "small": (train_x[NUM_BIG:], train_y[NUM_BIG:]),
    "test": (test_x, test_y),
  }


# -------------------------------------------------------------------------------- JAX side


class CompileClock:
  """Sums JAX's own tracing, lowering and XLA-compile durations (``jax.monitoring`` events)."""

  EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
  )

  def __init__(self):
    self.events: list[tuple[float, str, float]] = []  # (perf_counter at report, event, seconds)
    jax.monitoring.register_event_duration_secs_listener(self._record)

  def _record(self, event, duration, **kwargs):
    if event in self.EVENTS:
      self.events.append((time.perf_counter(), event, float(duration)))

  def between(self, start: float, end: float = float("inf")) -> tuple[float, int]:
    """(seconds spent compiling, number of XLA compilations) reported in ``[start, end)``."""
    inside = [(e, d) for t, e, d in self.events if start <= t < end]
    return sum(d for _, d in inside), sum(e == self.EVENTS[-1] for e, _ in inside)

  def split(self, start: float, end: float = float("inf")) -> str:
    """``trace a, lower b, XLA c`` seconds reported in ``[start, end)``."""
    parts = [
      sum(d for t, e, d in self.events if start <= t < end and e == event) for event in self.EVENTS
    ]
    return "trace {:.2f}, lower {:.2f}, XLA {:.2f}".format(*parts)


@dataclasses.dataclass
class Timing:
  """Stamps of one training program/run: start, then the end of every epoch."""

  stamps: list[float]
  compile_s: float = 0.0  # JAX: trace + lower + XLA compile inside the run
  compile_split: str = ""  # JAX: the same, per phase
  compiles: int = 0  # JAX: XLA compilations inside the run
  late_compiles: int = 0  # JAX: XLA compilations after epoch 1 (should be 0)

  @property
  def first_epoch_s(self) -> float:
    return self.stamps[1] - self.stamps[0]

  @property
  def steady_s(self) -> float:
    """Seconds of epochs 2..n."""
    return self.stamps[-1] - self.stamps[1]

  @property
  def steady_epoch_times(self) -> np.ndarray:
    return np.diff(self.stamps[1:])

  @property
  def median_epoch_s(self) -> float:
    """Median of epochs 2..n: robust to a stray process stealing a core for a moment."""
    return float(np.median(self.steady_epoch_times))

  @property
  def steady_epochs(self) -> int:
    return len(self.stamps) - 2

  @property
  def wall_s(self) -> float:
    return self.stamps[-1] - self.stamps[0]


def jax_fit_timed(clock: CompileClock, **fit_kwargs) -> tuple[train.FitResult, Timing]:
  """``train.fit(**fit_kwargs)`` with a stamp after each epoch and its compile time."""
  stamps = [time.perf_counter()]
  result = train.fit(on_epoch=lambda *_: stamps.append(time.perf_counter()), **fit_kwargs)
  jax.block_until_ready(result.params)
  stamps[-1] = time.perf_counter()  # the last epoch ends when its parameters are ready
  compile_s, compiles = clock.between(stamps[0], stamps[-1] + 1e-9)
  _, late = clock.between(stamps[1], stamps[-1] + 1e-9)
  split = clock.split(stamps[0], stamps[-1] + 1e-9)
  return result, Timing(stamps, compile_s, split, compiles, late)


def jax_map(phi: maps.Map, images: np.ndarray, chunk: int = 2000) -> np.ndarray:
  """φ over a whole array in chunks (one jitted program)."""
  fn = jax.jit(phi.fn)
  key = jax.random.key(0)  # φ = conv is deterministic; the key is unused
  return np.concatenate(
    [np.asarray(fn(images[i : i + chunk], key)) for i in range(0, len(images), chunk)]
  )


def jax_teacher(clock, mesh, phi_big, big_y, phi_test, test_y, epochs):
  teacher = models.get_model("mlp", hidden=TEACHER_HIDDEN)

  def loss_fn(params, batch, key, hparams, context):
    return jnp.mean(losses.cross_entropy(teacher.apply(params, batch["image"]), batch["label"]))

  result, timing = jax_fit_timed(
    clock,
    name="teacher",
    init_fn=lambda key: teacher.init(key, jnp.zeros((1, *phi_big.shape[1:]), jnp.float32)),
    loss_fn=loss_fn,
    metrics_fn=train.classification_metrics(teacher.apply),
    train_data={"image": phi_big, "label": big_y},
    test_data={"image": phi_test, "label": test_y},
    run_keys=jax.random.key(0)[None],
    hparams={},
    epochs=epochs,
    batch_size=TEACHER_BATCH,
    learning_rate=LEARNING_RATE,
    mesh=mesh,
    eval_batch_size=EVAL_BATCH,
  )
  params = jax.tree.map(lambda leaf: leaf[0], result.params)
  return (teacher, params), result, timing


def jax_students(clock, mesh, teacher, phi, small, test, epochs, seeds):
  """Both arms; each arm = all seeds in one ``train.fit`` (one vmapped program per epoch)."""
  teacher_model, teacher_params = teacher
  student = models.get_model("linear")
  small_x, small_y = small
  # Soft targets f(φ(x)) of Small, once for all runs and epochs (timed in the wall time).
  teacher_logits = train.predict(teacher_model.apply, teacher_params, jax_map(phi, small_x), mesh)
  out = {}
  for arm, lam in ARMS:
    uses_teacher = lam > 0
    train_data = {"image": small_x, "label": small_y}
    if uses_teacher:
      train_data["teacher_logits"] = teacher_logits

    def loss_fn(params, batch, key, hparams, context, uses_teacher=uses_teacher):
      logits = student.apply(params, batch["image"])
      if not uses_teacher:
        return losses.distillation_loss(logits, None, batch["label"], lam=0)
      return losses.distillation_loss(
        logits,
        batch["teacher_logits"],
        batch["label"],
        lam=hparams["lam"],
        temperature=hparams["temperature"],
      )

    out[arm] = jax_fit_timed(
      clock,
      name=f"students[{arm}]",
      init_fn=lambda key: student.init(key, jnp.zeros((1, *small_x.shape[1:]), jnp.float32)),
      loss_fn=loss_fn,
      metrics_fn=train.classification_metrics(student.apply),
      train_data=train_data,
      test_data={"image": test[0], "label": test[1]},
      run_keys=jax.vmap(jax.random.key)(jnp.arange(seeds)),
      hparams={"lam": np.full(seeds, lam), "temperature": np.full(seeds, TEMPERATURE)},
      epochs=epochs,
      batch_size=STUDENT_BATCH,
      learning_rate=LEARNING_RATE,
      mesh=mesh,
      eval_batch_size=EVAL_BATCH,
    )
  return out


def jax_experiment_path(data, mesh, seeds, teacher_epochs, student_epochs):
  """``experiment.fit_teacher`` + ``fit_students`` per arm, as ``run_experiment`` calls them
  (minus data loading and the report), in a fresh workdir: orbax checkpoints included."""
  from experiments.configs import default as default_config  # noqa: PLC0415

  config = default_config.get_config()
  config.mapping = "conv"
  config.seeds = seeds
  config.teacher.epochs = teacher_epochs
  config.student.epochs = student_epochs
  phi = maps.get_map("conv", **config.maps.conv.to_dict())
  accuracies = {}
  with tempfile.TemporaryDirectory() as workdir:
    start = time.perf_counter()
    teacher, info = experiment.fit_teacher(config, phi, data["big"], data["test"], mesh, workdir)
    # The key was renamed during development; accept both spellings.
    accuracies["teacher"] = info.get("test_accuracy", info.get("test_accuracy_on_phi_test"))
    teacher_key = os.path.basename(info["checkpoint"])
    for arm in experiment.arms_for(phi, data["small"][0].shape[1:]):
      _, result = experiment.fit_students(
        config, arm, phi, teacher, data["small"], data["test"], mesh, workdir, teacher_key
      )
      jax.block_until_ready(result.params)
      accuracies[arm.name] = result.history["test_accuracy"][:, -1]
    return time.perf_counter() - start, accuracies


# ---------------------------------------------------------------------------- PyTorch side


def torch_phi(images_nhwc: np.ndarray) -> torch.Tensor:
  """φ with ``F.conv2d(dilation=2)``: NHWC numpy [N,28,28,1] → NCHW tensor [N,1,24,24]."""
  kernel = torch.tensor(maps.DILATED_KERNEL)[None, None]  # [out=1, in=1, 3, 3]
  x = torch.from_numpy(images_nhwc).permute(0, 3, 1, 2)
  with torch.no_grad():
    return F.conv2d(x, kernel, dilation=2)


def torch_mlp(in_features: int, hidden: tuple[int, ...]) -> nn.Sequential:
  layers, width = [nn.Flatten()], in_features
  for h in hidden:
    layers += [nn.Linear(width, h), nn.ReLU()]
    width = h
  return nn.Sequential(*layers, nn.Linear(width, 10))


def torch_evaluate(model, x, y) -> tuple[float, float]:
  """Test accuracy and mean cross-entropy, in chunks of EVAL_BATCH like the JAX side."""
  model.eval()
  correct, ce = 0.0, 0.0
  with torch.no_grad():
    for i in range(0, len(y), EVAL_BATCH):
      logits = model(x[i : i + EVAL_BATCH])
      correct += (logits.argmax(1) == y[i : i + EVAL_BATCH]).sum().item()
      ce += F.cross_entropy(logits, y[i : i + EVAL_BATCH], reduction="sum").item()
  model.train()
  return correct / len(y), ce / len(y)


def torch_fit(model, x, y, test_x, test_y, *, epochs, batch_size, seed, soft=None, lam=0.0):
  """Adam, shuffled mini-batches (last partial batch dropped, as in ``train.fit``), evaluation
  after every epoch. Returns ``(history [(train loss, test acc, test CE)], Timing)``."""
  generator = torch.Generator().manual_seed(seed)
  optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
  steps = len(y) // batch_size
  history, stamps = [], [time.perf_counter()]
  for _ in range(epochs):
    order = torch.randperm(len(y), generator=generator)
    total = torch.zeros(())
    for step in range(steps):
      batch = order[step * batch_size : (step + 1) * batch_size]
      logits = model(x[batch])
      loss = F.cross_entropy(logits, y[batch])
      if lam > 0:  # soft cross-entropy against the teacher's softened distribution
        targets = F.softmax(soft[batch] / TEMPERATURE, dim=1)
        loss = loss + lam * F.cross_entropy(logits / TEMPERATURE, targets)
      optimizer.zero_grad()
      loss.backward()
      optimizer.step()
      total += loss.detach()
    history.append((total.item() / steps, *torch_evaluate(model, test_x, test_y)))
    stamps.append(time.perf_counter())
  return history, Timing(stamps)


def torch_teacher(phi_big, big_y, phi_test, test_y, epochs):
  torch.manual_seed(0)
  model = torch_mlp(phi_big[0].numel(), TEACHER_HIDDEN)
  history, timing = torch_fit(
    model, phi_big, big_y, phi_test, test_y, epochs=epochs, batch_size=TEACHER_BATCH, seed=0
  )
  return model, history, timing


def torch_students(teacher, small, test, epochs, seeds):
  """Both arms, the seeds of an arm one after another; soft targets precomputed once."""
  small_x = torch.from_numpy(small[0]).permute(0, 3, 1, 2)
  small_y = torch.from_numpy(small[1]).long()
  test_x = torch.from_numpy(test[0]).permute(0, 3, 1, 2)
  test_y = torch.from_numpy(test[1]).long()
  teacher.eval()
  with torch.no_grad():
    soft = teacher(torch_phi(small[0]))
  out = {}
  for arm, lam in ARMS:
    out[arm] = []
    for seed in range(seeds):
      torch.manual_seed(seed)
      student = torch_mlp(784, ())
      out[arm].append(
        torch_fit(
          student,
          small_x,
          small_y,
          test_x,
          test_y,
          epochs=epochs,
          batch_size=STUDENT_BATCH,
          seed=seed,
          soft=soft,
          lam=lam,
        )
      )
  return out


def torch_whole_experiment(data, seeds, teacher_epochs, student_epochs):
  start = time.perf_counter()
  phi_big = torch_phi(data["big"][0])
  phi_test = torch_phi(data["test"][0])
  big_y = torch.from_numpy(data["big"][1]).long()
  test_y = torch.from_numpy(data["test"][1]).long()
  teacher, history, _ = torch_teacher(phi_big, big_y, phi_test, test_y, teacher_epochs)
  students = torch_students(teacher, data["small"], data["test"], student_epochs, seeds)
  wall = time.perf_counter() - start
  accuracies = {"teacher": history[-1][1]}
  for arm, runs in students.items():
    accuracies[arm] = np.array([h[-1][1] for h, _ in runs])
  return wall, accuracies


# ---------------------------------------------------------------------------------- report


def busy_cores(seconds: float = 1.0) -> float:
  """How many cores were busy (all processes) over ``seconds``, from /proc/stat; nan elsewhere."""

  def sample():
    with open("/proc/stat") as f:
      values = [int(v) for v in f.readline().split()[1:]]
    return sum(values), values[3] + values[4]  # total, idle + iowait

  try:
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
  except OSError:
    return float("nan")
  return os.cpu_count() * (1 - (idle1 - idle0) / max(total1 - total0, 1))


@contextlib.contextmanager
def section(title):
  print(f"\n== {title}", flush=True)
  start = time.perf_counter()
  yield
  print(f"   (section took {time.perf_counter() - start:.1f} s)", flush=True)


def mean_std(values) -> str:
  values = np.asarray(values, np.float64)
  return f"{values.mean():.4f} ± {values.std():.4f}"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--data_dir",
    default=os.path.join(REPO_ROOT, "..", "shared", "data"),
    help="folder holding fashion_mnist/*-idx?-ubyte.gz (default: ../shared/data from the repo root)",
  )
  parser.add_argument(
    "--teacher_steps",
    type=int,
    default=NUM_BIG // TEACHER_BATCH,
    help="steps per timed teacher epoch, on the first steps×64 images of φ(Big) "
    "(default 921 = one full epoch of Big)",
  )
  parser.add_argument(
    "--teacher_epochs", type=int, default=3, help="timed teacher epochs (after 1 warm-up epoch)"
  )
  parser.add_argument(
    "--student_epochs", type=int, default=20, help="student epochs per run; epoch 1 is warm-up"
  )
  parser.add_argument("--seeds", type=int, default=5, help="student seeds per arm")
  parser.add_argument(
    "--full",
    action="store_true",
    help="also time the whole experiment: teacher 10 epochs + 2 arms × seeds × 100 epochs",
  )
  parser.add_argument(
    "--torch_threads",
    type=int,
    default=len(os.sched_getaffinity(0)),
    help="PyTorch intra-op threads (default: the schedulable cores, what XLA:CPU uses)",
  )
  parser.add_argument("--json", help="also write the measurements to this JSON file")
  args = parser.parse_args()
  if not 1 <= args.teacher_steps <= NUM_BIG // TEACHER_BATCH:
    parser.error(f"--teacher_steps must be in 1..{NUM_BIG // TEACHER_BATCH}")
  if args.student_epochs < 2 or args.teacher_epochs < 1 or args.seeds < 1:
    parser.error("need --student_epochs >= 2, --teacher_epochs >= 1, --seeds >= 1")

  absl_logging.set_verbosity(absl_logging.WARNING)  # no progress logs inside the timings
  torch.set_num_threads(args.torch_threads)
  clock = CompileClock()
  mesh = parallel.make_mesh()
  cache_dir = jax.config.jax_compilation_cache_dir
  print(
    f"python {platform.python_version()}, jax {jax.__version__} on "
    f"{len(jax.devices())}x {jax.devices()[0].platform} (XLA:CPU intra-op pool = one thread per "
    f"schedulable core = {len(os.sched_getaffinity(0))}), persistent compile cache: "
    f"{cache_dir or 'off'}; torch {torch.__version__}, torch.get_num_threads() = "
    f"{torch.get_num_threads()}, interop {torch.get_num_interop_threads()}; "
    f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})"
  )

  busy_before = busy_cores()
  load_before = os.getloadavg()
  print(
    f"CPU use by other processes just before starting: {busy_before:.2f} of "
    f"{os.cpu_count()} cores busy; load average {load_before[0]:.2f} {load_before[1]:.2f} "
    f"{load_before[2]:.2f}"
  )
  if busy_before > 0.3:
    print(
      "WARNING: other processes are using the CPUs; both sides' numbers will be noisy and "
      "PyTorch's OpenMP threads suffer most from oversubscription. Rerun on a quiet machine."
    )
  start = time.perf_counter()
  data = load_fashion(args.data_dir)
  print(f"data: IDX files read in {time.perf_counter() - start:.1f} s (excluded from all timings)")
  rows, notes, record = [], [], {"args": vars(args)}

  # --------------------------------------------------------------------------- 1. teacher
  steps = args.teacher_steps
  n_teacher = steps * TEACHER_BATCH
  epochs = 1 + args.teacher_epochs
  big_x, big_y = data["big"][0][:n_teacher], data["big"][1][:n_teacher]
  test_x, test_y = data["test"]
  phi = maps.get_map("conv")
  with section(
    f"teacher: MLP 576-256-128-64-64-10, {steps} steps of batch 64 + φ(test) eval per epoch, "
    f"1 warm-up + {args.teacher_epochs} timed epochs"
  ):
    jax_phi_big, jax_phi_test = jax_map(phi, big_x), jax_map(phi, test_x)
    torch_phi_big, torch_phi_test = torch_phi(big_x), torch_phi(test_x)
    phi_diff = float(np.abs(torch_phi_test.permute(0, 2, 3, 1).numpy() - jax_phi_test).max())
    print(f"   φ: JAX {jax_phi_test.shape[1:]} vs torch.conv2d, max |difference| = {phi_diff:.1e}")

    jax_teacher_model, jax_t_result, jax_t = jax_teacher(
      clock, mesh, jax_phi_big, big_y, jax_phi_test, test_y, epochs
    )
    torch_teacher_model, torch_t_history, torch_t = torch_teacher(
      torch_phi_big,
      torch.from_numpy(big_y).long(),
      torch_phi_test,
      torch.from_numpy(test_y).long(),
      epochs,
    )
    jax_rate = steps / jax_t.median_epoch_s
    torch_rate = steps / torch_t.median_epoch_s
    rows.append(("teacher training, steps/s (incl. per-epoch eval)", jax_rate, torch_rate, "rate"))
    for name, t in (("JAX", jax_t), ("PyTorch", torch_t)):
      per_epoch = t.steady_epoch_times
      extra = (
        f"; compile {t.compile_s:.2f} s ({t.compile_split}) in {t.compiles} XLA programs, "
        f"recompiles after epoch 1: {t.late_compiles}"
        if name == "JAX"
        else ""
      )
      print(
        f"   {name:8s} epoch 1 (warm-up) {t.first_epoch_s:.2f} s; timed epochs "
        + ", ".join(f"{s:.2f}" for s in per_epoch)
        + f" s{extra}"
      )
    jax_t_acc = float(jax_t_result.history["test_accuracy"][0, -1])
    torch_t_acc = torch_t_history[-1][1]
    print(
      f"   test accuracy on φ(test) after {epochs} epochs: JAX {jax_t_acc:.4f}, "
      f"PyTorch {torch_t_acc:.4f}; cross-entropy JAX "
      f"{float(jax_t_result.history['test_cross_entropy'][0, -1]):.4f}, "
      f"PyTorch {torch_t_history[-1][2]:.4f}"
    )
    notes.append(("JAX teacher compile, s (trace+lower+XLA, whole fit)", jax_t.compile_s))
    record["teacher"] = {
      "steps_per_epoch": steps,
      "jax_steps_per_s": jax_rate,
      "torch_steps_per_s": torch_rate,
      "jax_compile_s": jax_t.compile_s,
      "jax_first_epoch_s": jax_t.first_epoch_s,
      "torch_first_epoch_s": torch_t.first_epoch_s,
      "jax_test_accuracy": jax_t_acc,
      "torch_test_accuracy": torch_t_acc,
    }

  # -------------------------------------------------------------------------- 2. students
  runs = 2 * args.seeds
  with section(
    f"students: linear 784-10, {len(ARMS)} arms × {args.seeds} seeds, 10 steps of batch 100 + "
    f"test eval (10,000 images) per run-epoch, {args.student_epochs} epochs (epoch 1 = warm-up)"
  ):
    jax_s = jax_students(
      clock,
      mesh,
      jax_teacher_model,
      phi,
      data["small"],
      data["test"],
      args.student_epochs,
      args.seeds,
    )
    torch_s = torch_students(
      torch_teacher_model, data["small"], data["test"], args.student_epochs, args.seeds
    )
    timed = args.student_epochs - 1
    # One "epoch" here = every one of the 2 × seeds runs advances one epoch.
    # JAX runs the two arm programs one after the other, PyTorch the 2 × seeds runs.
    jax_epoch = sum(t.median_epoch_s for _, t in jax_s.values())
    torch_epoch = sum(t.median_epoch_s for runs_ in torch_s.values() for _, t in runs_)
    jax_rate, torch_rate = 1 / jax_epoch, 1 / torch_epoch
    rows.append(
      (f"students training, epochs/s of all {runs} runs (incl. eval)", jax_rate, torch_rate, "rate")
    )
    rows.append(("  same, as run-epochs/s", jax_rate * runs, torch_rate * runs, "rate"))
    jax_compile = sum(t.compile_s for _, t in jax_s.values())
    for arm, _ in ARMS:
      t = jax_s[arm][1]
      print(
        f"   JAX     {arm:12s} one vmapped program of {args.seeds} runs: epoch 1 "
        f"{t.first_epoch_s:.2f} s (compile {t.compile_s:.2f} s: {t.compile_split}; "
        f"{t.compiles} XLA programs), epochs 2..{args.student_epochs}: median "
        f"{1000 * t.median_epoch_s:.1f} ms/epoch (mean {1000 * t.steady_s / timed:.1f}); "
        f"recompiles after epoch 1: {t.late_compiles}"
      )
    for arm, _ in ARMS:
      ts = [t for _, t in torch_s[arm]]
      print(
        f"   PyTorch {arm:12s} {args.seeds} runs one after another: epoch 1 "
        f"{statistics.mean(t.first_epoch_s for t in ts) * 1000:.1f} ms/run, epochs 2..: median "
        f"{1000 * statistics.mean(t.median_epoch_s for t in ts):.1f} ms/run-epoch (mean "
        f"{1000 * sum(t.steady_s for t in ts) / (timed * len(ts)):.1f})"
      )
    print(f"   final test accuracy after {args.student_epochs} epochs (mean ± std over seeds):")
    student_acc = {}
    for arm, _ in ARMS:
      jax_acc = jax_s[arm][0].history["test_accuracy"][:, -1]
      torch_acc = [h[-1][1] for h, _ in torch_s[arm]]
      jax_ce = jax_s[arm][0].history["test_cross_entropy"][:, -1]
      torch_ce = [h[-1][2] for h, _ in torch_s[arm]]
      student_acc[arm] = {"jax": jax_acc.tolist(), "torch": torch_acc}
      print(
        f"     {arm:12s} JAX {mean_std(jax_acc)} (CE {np.mean(jax_ce):.4f})   "
        f"PyTorch {mean_std(torch_acc)} (CE {np.mean(torch_ce):.4f})"
      )
    notes.append(("JAX students compile, s (2 arms, trace+lower+XLA)", jax_compile))
    record["students"] = {
      "epochs": args.student_epochs,
      "runs": runs,
      "jax_epochs_per_s": jax_rate,
      "torch_epochs_per_s": torch_rate,
      "jax_compile_s": jax_compile,
      "final_test_accuracy": student_acc,
    }

  # ------------------------------------------------------------------ 3. whole experiment
  if args.full:
    with section(
      f"whole experiment: teacher 10 epochs (921 steps each) + 2 arms × {args.seeds} seeds × 100 "
      "student epochs; wall time incl. compile, φ, soft targets, evaluation; excl. reading IDX"
    ):
      jax_wall, jax_acc = jax_experiment_path(data, mesh, args.seeds, 10, 100)
      print(f"   JAX (experiment.fit_teacher/fit_students, orbax checkpoints): {jax_wall:.1f} s")

      start = time.perf_counter()
      full_phi_big, full_phi_test = jax_map(phi, data["big"][0]), jax_map(phi, test_x)
      teacher, _, _ = jax_teacher(
        clock, mesh, full_phi_big, data["big"][1], full_phi_test, test_y, 10
      )
      jax_students(clock, mesh, teacher, phi, data["small"], data["test"], 100, args.seeds)
      jax_trainer_wall = time.perf_counter() - start
      print(
        f"   JAX (train.fit only, no checkpoints):                         {jax_trainer_wall:.1f} s"
      )

      torch_wall, torch_acc = torch_whole_experiment(data, args.seeds, 10, 100)
      print(f"   PyTorch:                                                      {torch_wall:.1f} s")
      print(
        f"   final test accuracy: teacher on φ(test) JAX {jax_acc['teacher']:.4f} / PyTorch "
        f"{torch_acc['teacher']:.4f}; "
        + "; ".join(
          f"{arm} JAX {mean_std(jax_acc[arm])} / PyTorch {mean_std(torch_acc[arm])}"
          for arm, _ in ARMS
        )
      )
      rows.append(
        ("whole experiment, wall s (library path, checkpoints)", jax_wall, torch_wall, "time")
      )
      rows.append(
        (
          "whole experiment, wall s (train.fit, no checkpoints)",
          jax_trainer_wall,
          torch_wall,
          "time",
        )
      )
      record["full"] = {
        "jax_experiment_wall_s": jax_wall,
        "jax_trainer_wall_s": jax_trainer_wall,
        "torch_wall_s": torch_wall,
        "jax_accuracy": {k: np.asarray(v).tolist() for k, v in jax_acc.items()},
        "torch_accuracy": {k: np.asarray(v).tolist() for k, v in torch_acc.items()},
      }

  # ----------------------------------------------------------------------------- table
  print(f"\n{'measure':<58}{'JAX':>10}{'PyTorch':>10}{'JAX speed-up':>14}")
  print("-" * 92)
  for name, jax_value, torch_value, kind in rows:
    speedup = jax_value / torch_value if kind == "rate" else torch_value / jax_value
    print(f"{name:<58}{jax_value:>10.2f}{torch_value:>10.2f}{speedup:>13.2f}x")
  for name, seconds in notes:
    print(f"{name:<58}{seconds:>9.2f}s{'-':>10}")
  print(
    "JAX speed-up > 1: JAX is faster (rates: JAX/PyTorch; wall times: PyTorch s / JAX s).\n"
    "Rates: median epoch of epochs 2..n on both sides (epoch 1 holds JAX's compilation);\n"
    "wall times include compilation."
  )
  busy_after = busy_cores()
  print(
    f"CPU use by other processes just after finishing: {busy_after:.2f} of {os.cpu_count()} "
    "cores busy (measured when idle before and after, not during the run)"
  )
  record["busy_cores"] = {"before": busy_before, "after": busy_after}
  record["rows"] = [dict(zip(("measure", "jax", "torch", "kind"), r)) for r in rows]
  if args.json:
    with open(args.json, "w") as f:
      json.dump(record, f, indent=1, default=float)


if __name__ == "__main__":
  main()
