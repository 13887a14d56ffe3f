"""The default conv experiment in PyTorch as a performance-minded user writes it: batched.

``torch_reference.py`` is the eager baseline (``nn.Sequential``, one teacher after another, one
student run after another). Here the same experiment, with the same losses, optimizer (Adam,
lr 1e-3, PyTorch's defaults otherwise), initialization, batch orders and ``drop_last=True``:

* **Teachers**: the K MLPs (576-256-128-64-64-10, ReLU) as ONE network with stacked weights
  ``[K, in, out]`` and biases ``[K, 1, out]``, forward by ``torch.baddbmm`` on ``[K, B, in]``.
  Teacher k keeps its own batch order (its own ``torch.randperm`` per epoch, the K orders
  gathered as one ``[K, B]`` index tensor per step). The loss is the SUM over teachers of each
  teacher's mean cross-entropy, so teacher k's gradient is its own; ONE ``torch.optim.Adam``
  (``fused=True``) over the stacked tensors is then exactly K independent Adams (Adam is
  elementwise and every teacher takes the same number of steps).
* Cross-entropy as logsumexp − logit[label] (the same number as ``F.cross_entropy``): on CPU
  ATen's log_softmax over a 10-wide last axis is slow (560 µs vs 150 µs forward + backward for
  the students' ``[25, 100, 10]``, 1 thread).
* **Students**: all R runs of an arm (R = K·S) as one batched linear layer ``[R, 784, 10]``,
  one Adam over the stack; the soft targets softmax(f_k(φ(x_small)) / T) computed once; the
  test evaluation of the R runs after every epoch as one ``[N_test, 784] @ [784, R·10]`` GEMM.
* φ (the fixed conv map) applied once to Big, Small and Test, not per step.
* Run r of seed s draws its initialization from ``torch.Generator().manual_seed(s)`` exactly as
  ``nn.Linear`` draws its own under ``torch.manual_seed(s)`` (kaiming-uniform weights, uniform
  biases) and its batch order from another generator seeded s, as ``torch_reference`` does: a
  teacher or student here starts from the same weights and sees the same batches as the
  reference's of the same seed, so the two agree up to float rounding (the tests check it).
* ``torch.set_num_threads(os.cpu_count())`` (``threads=`` overrides); ``compile=True`` puts
  the training losses (forward + loss; AOTAutograd derives the backward) of the teachers and
  the students under ``torch.compile`` (inductor, mode default). It pays nowhere here (below),
  so ``compile=False`` is the default; the flag stays so that both can be timed.

``run(data, ...)`` returns ``torch_reference.run``'s structure plus the wall seconds of each
phase; ``teacher_epoch_seconds(...)`` times one training epoch of K batched teachers and
``student_rate(...)`` the students' run-epochs/s (the benchmark's step-rate rows);
``reference_teacher_epoch_seconds`` / ``reference_student_rate`` time the eager baseline the
same way. ``python benchmarks/torch_batched.py`` prints both at a small size.

Measured
--------
On this 2-core machine (torch 2.13.0 CPU) while another job kept it busy (load average 3-5),
so the numbers are noisy; the ratios held across repeats. Command (a fresh
``TORCHINDUCTOR_CACHE_DIR`` for the cold compile):

  nice -n 10 python benchmarks/torch_batched.py --data_dir=../shared/data --max_big=5000 \
    --threads=1          # and without --threads: os.cpu_count() = 2

One epoch of K = 5 teachers, 78 steps each (best of epochs 2-3), and students' run-epochs/s
(epochs 2-5, 25 runs per arm batched; eager: ``torch_reference.train_student`` one by one):

  ====================================  ===================  ===================
  1 thread                              teachers s/epoch     students run-ep/s
  ====================================  ===================  ===================
  eager ``torch_reference`` style       0.63, 0.64           86, 90
  batched, compile=False                0.26, 0.27           291, 339
  batched, compile=True                 0.29, 0.29           276, 298
  ====================================  ===================  ===================

* Batching: teachers 2.4x, students ~3.5x faster than eager. Fused Adam beats foreach Adam by
  ~1.6x on the teacher step (3.3 vs 5.5 ms per 5-teacher step, 1 thread).
* ``torch.compile``: no gain after the first epoch (teachers 10 % slower, students within
  noise), and the first epoch costs 18 s (cold inductor cache) or 3 s (warm) more. Compiling
  the optimizer step as well (``torch.compile(optimizer.step)``, foreach) was slower than fused
  eager Adam (4.2-4.8 vs 3.3 ms per step).
* 2 threads on the busy machine: everything 4-8x slower than 1 thread (eager teachers 4.2 s
  per epoch, batched 2.2 s; students 11.5 eager, 78 batched run-epochs/s): OpenMP's threads wait
  for each other when another process holds a core. On an idle machine 2 threads should beat
  1; on a shared one, pass ``threads=1``.
"""

from __future__ import annotations

import math
import os
import time

import torch
import torch.nn.functional as F
from torch.nn import init

import torch_reference  # benchmarks/torch_reference.py: the data reader and φ

HIDDEN = (256, 128, 64, 64)
NUM_CLASSES = 10
LEARNING_RATE = 1e-3

Layers = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (W [R, in, out], b [R, 1, out])


# ----------------------------------------------------------------------------- the models


def init_layers(seeds, widths) -> Layers:
  """``len(seeds)`` networks of the given widths (``[in, hidden..., out]``) as stacked layers;
  network r holds exactly the weights ``nn.Linear`` layers of those widths draw one after
  another under ``torch.manual_seed(seeds[r])``: kaiming-uniform (a = √5) weights and
  U(±1/√fan_in) biases."""
  weights = [[] for _ in widths[1:]]
  biases = [[] for _ in widths[1:]]
  for seed in seeds:
    generator = torch.Generator().manual_seed(int(seed))
    for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
      weight = torch.empty(fan_out, fan_in)  # nn.Linear's layout, drawn in its order
      init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
      bias = torch.empty(fan_out)
      bound = 1 / math.sqrt(fan_in)
      init.uniform_(bias, -bound, bound, generator=generator)
      weights[layer].append(weight.t())
      biases[layer].append(bias[None])
  return [
    (torch.stack(w).contiguous().requires_grad_(), torch.stack(b).contiguous().requires_grad_())
    for w, b in zip(weights, biases)
  ]


def forward(layers: Layers, x: torch.Tensor) -> torch.Tensor:
  """Logits ``[R, B, out]`` of R networks; ``x``: ``[R, B, in]`` (network r's own batch) or
  ``[B, in]`` (one batch for all R: the first layer is then one ``[B, in] @ [in, R·out]``)."""
  for i, (weight, bias) in enumerate(layers):
    if x.dim() == 2:
      runs, fan_in, fan_out = weight.shape
      flat = weight.permute(1, 0, 2).reshape(fan_in, runs * fan_out)
      x = torch.addmm(bias.reshape(1, runs * fan_out), x, flat).view(-1, runs, fan_out)
      x = x.transpose(0, 1)
    else:
      x = torch.baddbmm(bias, x, weight)
    if i < len(layers) - 1:
      x = torch.relu(x)
  return x


def cross_entropy_sum(logits: torch.Tensor, labels: torch.Tensor, lse=None) -> torch.Tensor:
  """Σ over all leading axes of −log softmax(logits)[label], as logsumexp − logit[label]: the
  same number as ``F.cross_entropy(..., reduction="sum")``, and in eager PyTorch on CPU several
  times faster for 10 classes (its log_softmax kernel is slow on a short last axis)."""
  lse = torch.logsumexp(logits, -1) if lse is None else lse
  return lse.sum() - logits.gather(-1, labels[..., None]).sum()


def metrics(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
  """Per network: test accuracy and mean cross-entropy (``[R]`` each) of logits ``[N, R, C]``
  (fastest contiguous: the reductions run over the last axis) on labels ``[N]``."""
  accuracy = (logits.argmax(-1) == labels[:, None]).float().mean(0)
  picked = logits.gather(-1, labels[:, None, None].expand(-1, logits.shape[1], 1))[..., 0]
  return accuracy, (torch.logsumexp(logits, -1) - picked).mean(0)


def evaluate(layers: Layers, x: torch.Tensor, labels: torch.Tensor):
  """Every network's accuracy and mean cross-entropy (``[R]`` each) on one set ``x`` ``[N, in]``,
  a linear model's logits computed as one ``[N, in] @ [in, R·C]`` GEMM in ``[N, R, C]``."""
  logits = forward(layers, x).transpose(0, 1)  # [N, R, C]: contiguous for one layer
  return metrics(logits.contiguous(), labels)


def make_optimizer(layers: Layers) -> torch.optim.Adam:
  """One Adam (lr 1e-3, PyTorch's defaults otherwise) over all stacked tensors; ``fused=True``:
  one kernel for the whole update (measured faster on CPU than ``foreach=True``)."""
  return torch.optim.Adam([t for layer in layers for t in layer], lr=LEARNING_RATE, fused=True)


def batch_orders(generators, num_examples: int, batch_size: int) -> torch.Tensor:
  """One epoch's batches of every network: ``[steps, R, B]`` indices; network r's order is
  ``torch.randperm`` from its generator, the last partial batch dropped (as distill-jax does)."""
  steps = num_examples // batch_size
  orders = [torch.randperm(num_examples, generator=g)[: steps * batch_size] for g in generators]
  return torch.stack(orders).view(len(generators), steps, batch_size).transpose(0, 1).contiguous()


# ----------------------------------------------------------------------------- losses and steps


def teacher_loss(layers: Layers, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
  """Σ over teachers of each one's mean cross-entropy; ``x`` ``[K, B, in]``, ``y`` ``[K, B]``."""
  return cross_entropy_sum(forward(layers, x), y) / x.shape[1]


def student_loss(layers, x, y, targets, lam: float, temperature: float) -> torch.Tensor:
  """Σ over runs of the batch mean of cross-entropy − λ Σ_c t_c log softmax(g / T)_c, ``t``
  (``targets`` ``[R, B, C]``) the teacher's softmax at T; None: no teacher. As Σ_c t_c = 1, the
  soft term is λ (logsumexp(g / T) − Σ_c t_c g_c / T): one logsumexp serves both terms at T = 1.
  """
  logits = forward(layers, x)
  lse = torch.logsumexp(logits, -1)
  loss = cross_entropy_sum(logits, y, lse)
  if targets is not None:
    soft_lse = lse if temperature == 1 else torch.logsumexp(logits / temperature, -1)
    loss = loss + lam * (soft_lse.sum() - (targets * logits).sum() / temperature)
  return loss / x.shape[1]


def make_step(loss_fn, layers: Layers, *, compile: bool = False):
  """``step(*batch)``: one Adam step of ``loss_fn(layers, *batch)`` over the stacked layers."""
  optimizer = make_optimizer(layers)
  loss_of = torch.compile(loss_fn) if compile else loss_fn

  def step(*batch):
    loss = loss_of(layers, *batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()

  return step


# ----------------------------------------------------------------------------- training


def set_threads(threads: int | None = None) -> int:
  """``torch.set_num_threads``: ``threads`` or, None, ``os.cpu_count()``; returns it."""
  threads = threads or os.cpu_count()
  torch.set_num_threads(threads)
  return threads


def prepare(data: dict, map_name: str = "conv") -> dict:
  """φ once: flattened ``big`` / ``test`` (φ applied, the teachers' inputs), ``small_phi``,
  and ``small`` / ``test_raw`` (x as is, the students' inputs); labels alongside."""
  big_x, big_y = data["big"]
  small_x, small_y = data["small"]
  test_x, test_y = data["test"]
  if map_name not in ("identity", "conv"):
    raise ValueError(f"fixed maps only (identity, conv); got {map_name!r}.")
  flat = lambda images: torch_reference.phi(map_name, images).flatten(1).contiguous()  # noqa: E731
  return {
    "big": (flat(big_x), big_y),
    "test": (flat(test_x), test_y),
    "small_phi": flat(small_x),
    "small": (small_x.flatten(1).contiguous(), small_y),
    "test_raw": (test_x.flatten(1).contiguous(), test_y),
  }


def train_teachers(
  big_x, big_y, seeds, *, epochs: int, batch_size: int = 64, compile: bool = False, on_epoch=None
) -> Layers:
  """K = len(seeds) teachers on ``big_x`` ``[N, in]`` (φ applied), trained at once;
  ``on_epoch(epoch)`` after each epoch."""
  layers = init_layers(seeds, [big_x.shape[1], *HIDDEN, NUM_CLASSES])
  step = make_step(teacher_loss, layers, compile=compile)
  generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
  for epoch in range(epochs):
    for idx in batch_orders(generators, len(big_y), batch_size):
      step(big_x[idx], big_y[idx])
    if on_epoch is not None:
      on_epoch(epoch)
  return layers


def train_students(
  small_x,
  small_y,
  test_x,
  test_y,
  seeds,
  *,
  targets=None,
  lam: float = 1.0,
  temperature: float = 1.0,
  epochs: int = 100,
  batch_size: int = 100,
  compile: bool = False,
  on_epoch=None,
) -> tuple[torch.Tensor, torch.Tensor]:
  """R = len(seeds) linear students on ``small_x`` ``[N, in]`` at once; ``targets``
  ``[R, N, C]``: run r's soft targets (None: no teacher). Returns the test accuracy and
  cross-entropy after every epoch, ``[epochs, R]`` each."""
  runs = len(seeds)
  layers = init_layers(seeds, [small_x.shape[1], NUM_CLASSES])
  step = make_step(student_loss, layers, compile=compile)
  generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
  run_index = torch.arange(runs)[:, None]
  accuracy, cross_entropy = [], []
  for epoch in range(epochs):
    for idx in batch_orders(generators, len(small_y), batch_size):
      soft = None if targets is None else targets[run_index, idx]
      step(small_x[idx], small_y[idx], soft, lam, temperature)
    with torch.no_grad():
      acc, ce = evaluate(layers, test_x, test_y)
    accuracy.append(acc)
    cross_entropy.append(ce)
    if on_epoch is not None:
      on_epoch(epoch)
  return torch.stack(accuracy), torch.stack(cross_entropy)


def _histories(seeds, accuracy, cross_entropy) -> list[dict]:
  accuracy, cross_entropy = accuracy.T.tolist(), cross_entropy.T.tolist()
  return [
    {"seed": int(s), "test_accuracy": a, "test_cross_entropy": c}
    for s, a, c in zip(seeds, accuracy, cross_entropy)
  ]


def run(
  data,
  *,
  teachers: int = 5,
  seeds: int = 5,
  teacher_epochs: int = 10,
  student_epochs: int = 100,
  batch_size: int = 64,
  student_batch_size: int = 100,
  lam: float = 1.0,
  temperature: float = 1.0,
  teacher_seed: int = 0,
  shared_seeds: bool = False,
  map_name: str = "conv",
  compile: bool = False,
  threads: int | None = None,
  log=print,
) -> dict:
  """K teachers × S students, as ``torch_reference.run`` (``drop_last=True``):
  ``{"teachers": [{"seed", "test_accuracy", "test_cross_entropy"}], "arms": {"no_teacher":
  [run per seed], "teacher_phi": [[run per seed] per teacher]}, "seconds": {"fixed",
  "teachers", "students", "total"}}``, a run being ``{"seed", "test_accuracy": [per epoch],
  "test_cross_entropy": [per epoch]}``. Seconds: ``fixed`` φ of Big / Small / Test and
  flattening; ``teachers`` their initialization, training and test scores; ``students`` the
  soft targets and both arms' training with a test evaluation per epoch (``compile=True``:
  compilation included where it happens, in the first step). ``threads``: PyTorch's intra-op
  threads (None: ``os.cpu_count()``)."""
  set_threads(threads)
  started = time.perf_counter()
  with torch.no_grad():
    inputs = prepare(data, map_name)
  fixed_done = time.perf_counter()

  teacher_seeds = [teacher_seed + k for k in range(teachers)]
  layers = train_teachers(
    *inputs["big"], teacher_seeds, epochs=teacher_epochs, batch_size=batch_size, compile=compile
  )
  with torch.no_grad():
    teacher_accuracy, teacher_ce = evaluate(layers, *inputs["test"])
  out = {
    "teachers": [
      {"seed": s, "test_accuracy": a, "test_cross_entropy": c}
      for s, a, c in zip(teacher_seeds, teacher_accuracy.tolist(), teacher_ce.tolist())
    ],
    "arms": {},
  }
  for k, teacher in enumerate(out["teachers"]):
    log(f"  pytorch batched {map_name}: teacher {k} on φ(test) {teacher['test_accuracy']:.4f}")
  teachers_done = time.perf_counter()

  with torch.no_grad():
    soft_targets = F.softmax(forward(layers, inputs["small_phi"]) / temperature, dim=-1)
  seeds_of = [
    list(range(seeds)) if shared_seeds else list(range(k * seeds, (k + 1) * seeds))
    for k in range(teachers)
  ]
  student_kw = dict(
    lam=lam,
    temperature=temperature,
    epochs=student_epochs,
    batch_size=student_batch_size,
    compile=compile,
  )
  data_kw = (*inputs["small"], *inputs["test_raw"])
  alone = sorted({s for teacher_seeds_k in seeds_of for s in teacher_seeds_k})
  out["arms"]["no_teacher"] = _histories(alone, *train_students(*data_kw, alone, **student_kw))
  taught = [s for seeds_k in seeds_of for s in seeds_k]
  teacher_of_run = torch.tensor([k for k, seeds_k in enumerate(seeds_of) for _ in seeds_k])
  histories = _histories(
    taught, *train_students(*data_kw, taught, targets=soft_targets[teacher_of_run], **student_kw)
  )
  out["arms"]["teacher_phi"] = [histories[k * seeds : (k + 1) * seeds] for k in range(teachers)]
  done = time.perf_counter()
  out["seconds"] = {
    "fixed": fixed_done - started,
    "teachers": teachers_done - fixed_done,
    "students": done - teachers_done,
    "total": done - started,
  }
  return out


# ----------------------------------------------------------------------------- step rates


def _epoch_clock():
  stamps = [time.perf_counter()]
  return stamps, lambda epoch: stamps.append(time.perf_counter())


def teacher_epoch_seconds(
  torch_data,
  teachers: int,
  batch_size: int,
  epochs: int,
  *,
  compile: bool = False,
  threads: int | None = None,
) -> float:
  """Seconds of one training epoch (no evaluation) of ``teachers`` batched teachers on φ(Big),
  the best of epochs 2..``epochs`` (the first one pays for warm-up and compilation)."""
  if epochs < 2:
    raise ValueError(f"epochs must be >= 2 (the first is not timed); got {epochs}.")
  set_threads(threads)
  with torch.no_grad():
    big_x = torch_reference.phi("conv", torch_data["big"][0]).flatten(1).contiguous()
  stamps, on_epoch = _epoch_clock()
  train_teachers(
    big_x,
    torch_data["big"][1],
    list(range(teachers)),
    epochs=epochs,
    batch_size=batch_size,
    compile=compile,
    on_epoch=on_epoch,
  )
  return min(b - a for a, b in zip(stamps[1:-1], stamps[2:]))


def student_rate(
  torch_data,
  soft_logits: torch.Tensor,
  seeds: int,
  epochs: int,
  *,
  batch_size: int = 100,
  compile: bool = False,
  threads: int | None = None,
) -> float:
  """Run-epochs/s (training steps + a test evaluation each) of both arms, K·S runs each batched,
  K = ``len(soft_logits)`` (``[K, N_small, C]``: the teachers' logits on φ(Small)); epochs
  2..``epochs`` of each arm."""
  if epochs < 2:
    raise ValueError(f"epochs must be >= 2 (the first is not timed); got {epochs}.")
  set_threads(threads)
  small_x, small_y = torch_data["small"]
  test_x, test_y = torch_data["test"]
  data_kw = (small_x.flatten(1).contiguous(), small_y, test_x.flatten(1).contiguous(), test_y)
  runs = list(range(len(soft_logits) * seeds))
  targets = F.softmax(soft_logits, dim=-1).repeat_interleave(seeds, dim=0)
  seconds = 0.0
  for arm_targets in (None, targets):
    stamps, on_epoch = _epoch_clock()
    train_students(
      *data_kw,
      runs,
      targets=arm_targets,
      epochs=epochs,
      batch_size=batch_size,
      compile=compile,
      on_epoch=on_epoch,
    )
    seconds += stamps[-1] - stamps[1]
  return 2 * len(runs) * (epochs - 1) / seconds


# ----------------------------------------------------------------------------- the eager baseline


def reference_teacher_epoch_seconds(torch_data, teachers: int, batch_size: int, epochs: int):
  """As ``teacher_epoch_seconds``, for ``torch_reference``'s eager teachers trained one after
  another (``nn.Sequential``, one Adam each, φ precomputed): seconds of one epoch of all K."""
  if epochs < 2:
    raise ValueError(f"epochs must be >= 2 (the first is not timed); got {epochs}.")
  big_x = torch_reference.phi("conv", torch_data["big"][0])
  big_y = torch_data["big"][1]
  models = []
  for k in range(teachers):
    torch.manual_seed(k)
    model = torch_reference.mlp(big_x[0].numel())
    models.append((model, torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)))
  generators = [torch.Generator().manual_seed(k) for k in range(teachers)]
  seconds = []
  for _ in range(epochs):
    started = time.perf_counter()
    for (model, optimizer), generator in zip(models, generators):
      eager_epoch(model, optimizer, big_x, big_y, batch_size, generator)
    seconds.append(time.perf_counter() - started)
  return min(seconds[1:])


def eager_epoch(model, optimizer, x, y, batch_size: int, generator) -> None:
  """One training epoch of an eager ``torch_reference`` teacher (shuffled batches, the last
  partial one dropped)."""
  for idx in torch_reference.batches(len(y), batch_size, generator, drop_last=True):
    loss = F.cross_entropy(model(x[idx]), y[idx])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def reference_student_rate(torch_data, runs: int, epochs: int, soft_logits=None) -> float:
  """Run-epochs/s of ``torch_reference.train_student``, ``runs`` runs of each arm one after
  another, every epoch timed; ``soft_logits`` ``[N_small, C]`` teach the second arm (default:
  random logits)."""
  soft = soft_logits
  if soft is None:
    soft = torch.randn(len(torch_data["small"][1]), NUM_CLASSES, generator=torch.Generator())
  started = time.perf_counter()
  for seed in range(runs):
    for teaching in ({}, {"soft_logits": soft}):
      torch_reference.train_student(torch_data, seed, epochs=epochs, drop_last=True, **teaching)
  return 2 * runs * epochs / (time.perf_counter() - started)


def main():
  import argparse

  parser = argparse.ArgumentParser(description="eager vs batched PyTorch step rates (small)")
  here = os.path.dirname(os.path.abspath(__file__))
  parser.add_argument("--data_dir", default=os.path.join(here, "..", "..", "shared", "data"))
  parser.add_argument("--max_big", type=int, default=5000, help="the first images of Big")
  parser.add_argument("--teachers", type=int, default=5)
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--epochs", type=int, default=3, help="teacher epochs, 2..n timed")
  parser.add_argument("--student_epochs", type=int, default=5, help="2..n timed")
  parser.add_argument("--threads", type=int, default=None, help="default: os.cpu_count()")
  args = parser.parse_args()
  data = torch_reference.load_fashion_mnist(args.data_dir, {"big": args.max_big})
  threads = set_threads(args.threads)
  k, s, steps = args.teachers, args.seeds, len(data["big"][1]) // 64
  print(f"torch {torch.__version__}, {threads} threads, {os.cpu_count()} CPUs; K={k}, S={s}")
  eager = reference_teacher_epoch_seconds(data, k, 64, args.epochs)
  rows = [("teachers: eager, one after another", eager)]
  for compile in (False, True):
    started = time.perf_counter()
    seconds = teacher_epoch_seconds(data, k, 64, args.epochs, compile=compile, threads=threads)
    first = time.perf_counter() - started - (args.epochs - 1) * seconds
    rows.append((f"teachers: batched, compile={compile} (first epoch ~{first:.1f} s)", seconds))
  print(f"\none epoch of {k} teachers ({steps} steps each), best of epochs 2..{args.epochs}:")
  for name, seconds in rows:
    print(f"  {name:<56}{seconds:8.3f} s  {k * steps / seconds:8.0f} teacher-steps/s")
  soft = torch.randn(k, len(data["small"][1]), NUM_CLASSES, generator=torch.Generator())
  rates = [("students: eager, one run after another", reference_student_rate(data, 2, 3))]
  for compile in (False, True):
    rate = student_rate(data, soft, s, args.student_epochs, compile=compile, threads=threads)
    rates.append((f"students: batched {k * s} runs per arm, compile={compile}", rate))
  print("\nstudents, run-epochs/s (10 steps + a test evaluation each):")
  for name, rate in rates:
    print(f"  {name:<56}{rate:8.1f}")


if __name__ == "__main__":
  main()
