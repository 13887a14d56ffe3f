"""The Fashion-MNIST experiments (φ = identity, noise, conv) in plain PyTorch, as a user writes them.

Shares nothing with distill-jax but the data files: its own IDX reader, ``nn.Sequential``
models with PyTorch's default initialization, ``torch.optim.Adam(lr=1e-3)``, a Python loop over
shuffled mini-batches (``torch.randperm``; the last partial batch kept, as ``DataLoader`` does
by default), evaluation on the whole test set after every epoch under ``torch.no_grad()``.

* Teacher k (seed ``teacher_seed + k``): MLP 784-256-128-64-64-10 (576 inputs for conv) on
  φ(Big) (Big = train[:59000]), batch 64, 10 epochs; a noise φ draws fresh noise every batch.
  Scored on φ(test) (noise: one fixed draw).
* Students (seed s): linear 784 → 10 on Small (train[59000:]), batch 100, 100 epochs. Arm
  ``no_teacher``: cross-entropy; arm ``teacher_phi``: cross-entropy − λ Σ_r f_r(φ(x)) log g_r(x)
  at temperature T (λ = 1, T = 1), the teacher's logits on φ(x) precomputed for a fixed φ and
  computed on a fresh φ(x) every batch for noise. A seed fixes the student's initialization and
  batch order, so a ``teacher_phi`` run pairs with the ``no_teacher`` run of its seed. Teacher
  k's students use seeds k·S … k·S + S − 1 (``shared_seeds=False``, as distill-jax's default
  ``student_seeds = "per_teacher"``) or 0 … S − 1 under every teacher (``shared_seeds=True``).

``run(map_name, data, ...)`` returns every teacher's test metrics and every student run's
per-epoch test accuracy and cross-entropy.
"""

from __future__ import annotations

import gzip
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NOISE_VARIANCE = 0.1
DILATED_KERNEL = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]


def read_idx(path: str) -> np.ndarray:
  """An IDX file (``.gz``) as a uint8 array: the magic number's last byte is the rank."""
  with gzip.open(path, "rb") as f:
    raw = f.read()
  rank = raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
  return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(shape)


def load_fashion_mnist(data_dir: str, max_sizes: dict | None = None) -> dict:
  """``{"big" | "small" | "test": (images [N, 1, 28, 28] float32 in [0, 1], labels int64)}``;
  ``max_sizes`` keeps the first N of a split (smoke runs)."""
  folder = os.path.join(data_dir, "fashion_mnist")

  def pair(prefix):
    images = read_idx(os.path.join(folder, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(folder, f"{prefix}-labels-idx1-ubyte.gz"))
    return torch.from_numpy(images.astype(np.float32) / 255.0)[:, None], torch.from_numpy(
      labels.astype(np.int64)
    )

  train_x, train_y = pair("train")
  test_x, test_y = pair("t10k")
  splits = {
    "big": (train_x[:59000], train_y[:59000]),
    "small": (train_x[59000:], train_y[59000:]),
    "test": (test_x, test_y),
  }
  for name, size in (max_sizes or {}).items():
    if size is not None:
      splits[name] = tuple(t[:size] for t in splits[name])
  return splits


def phi(map_name: str, images: torch.Tensor) -> torch.Tensor:
  """φ of a batch of NCHW images (noise: a fresh draw from torch's global generator)."""
  if map_name == "identity":
    return images
  if map_name == "noise":
    return images + NOISE_VARIANCE**0.5 * torch.randn_like(images)
  if map_name == "conv":
    kernel = torch.tensor(DILATED_KERNEL)[None, None]
    return F.conv2d(images, kernel, dilation=2)
  raise ValueError(f"unknown map {map_name!r}; choose identity, noise or conv.")


def mlp(in_features: int, hidden=(256, 128, 64, 64), num_classes: int = 10) -> nn.Sequential:
  layers, width = [nn.Flatten()], in_features
  for h in hidden:
    layers += [nn.Linear(width, h), nn.ReLU()]
    width = h
  return nn.Sequential(*layers, nn.Linear(width, num_classes))


def evaluate(model, images, labels) -> tuple[float, float]:
  """Test accuracy and mean cross-entropy."""
  with torch.no_grad():
    logits = model(images)
  return (logits.argmax(1) == labels).float().mean().item(), F.cross_entropy(logits, labels).item()


def batches(num_examples: int, batch_size: int, generator, drop_last: bool):
  order = torch.randperm(num_examples, generator=generator)
  stop = num_examples - num_examples % batch_size if drop_last else num_examples
  return [order[i : min(i + batch_size, stop)] for i in range(0, stop, batch_size)]


def train_teacher(map_name, data, seed, *, epochs=10, batch_size=64, drop_last=False):
  """One teacher on φ(Big); returns the model and its final (accuracy, CE) on φ(test)."""
  torch.manual_seed(seed)
  big_x, big_y = data["big"]
  fixed_source = None if map_name == "noise" else phi(map_name, big_x)
  test_x = phi(map_name, data["test"][0])  # noise: one draw, after the seed is set
  model = mlp(test_x[0].numel())
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  generator = torch.Generator().manual_seed(seed)
  for _ in range(epochs):
    for idx in batches(len(big_y), batch_size, generator, drop_last):
      source = phi(map_name, big_x[idx]) if fixed_source is None else fixed_source[idx]
      loss = F.cross_entropy(model(source), big_y[idx])
      optimizer.zero_grad()
      loss.backward()
      optimizer.step()
  return model, evaluate(model, test_x, data["test"][1])


def train_student(
  data,
  seed,
  *,
  soft_logits=None,
  teacher_fn=None,
  lam=1.0,
  temperature=1.0,
  epochs=100,
  batch_size=100,
  drop_last=False,
):
  """A linear student on Small; ``soft_logits[i]`` (precomputed) or ``teacher_fn(x_batch)``
  (computed per batch) gives the teacher's logits, neither: no teacher. Returns the per-epoch
  test accuracy and cross-entropy."""
  small_x, small_y = data["small"]
  test_x, test_y = data["test"]
  torch.manual_seed(seed)
  model = mlp(small_x[0].numel(), hidden=())
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  generator = torch.Generator().manual_seed(seed)
  history = {"test_accuracy": [], "test_cross_entropy": []}
  for _ in range(epochs):
    for idx in batches(len(small_y), batch_size, generator, drop_last):
      logits = model(small_x[idx])
      loss = F.cross_entropy(logits, small_y[idx])
      if soft_logits is not None or teacher_fn is not None:
        with torch.no_grad():
          teacher_logits = soft_logits[idx] if soft_logits is not None else teacher_fn(small_x[idx])
        targets = F.softmax(teacher_logits / temperature, dim=1)
        log_probs = F.log_softmax(logits / temperature, dim=1)
        loss = loss - lam * (targets * log_probs).sum(1).mean()
      optimizer.zero_grad()
      loss.backward()
      optimizer.step()
    accuracy, cross_entropy = evaluate(model, test_x, test_y)
    history["test_accuracy"].append(accuracy)
    history["test_cross_entropy"].append(cross_entropy)
  return history


def run(
  map_name,
  data,
  *,
  teachers=5,
  teacher_seed=0,
  seeds=5,
  teacher_epochs=10,
  student_epochs=100,
  lam=1.0,
  temperature=1.0,
  drop_last=False,
  shared_seeds=False,
  log=print,
) -> dict:
  """K teachers × S students: ``{"teachers": [{"seed", "test_accuracy", "test_cross_entropy"}],
  "arms": {"no_teacher": [run per seed], "teacher_phi": [[run per seed] per teacher]}}``, a run
  being ``{"seed", "test_accuracy": [per epoch], "test_cross_entropy": [per epoch]}``."""
  out = {"teachers": [], "arms": {"no_teacher": [], "teacher_phi": []}}
  student_kw = dict(epochs=student_epochs, lam=lam, temperature=temperature, drop_last=drop_last)
  seeds_of = [
    list(range(seeds)) if shared_seeds else list(range(k * seeds, (k + 1) * seeds))
    for k in range(teachers)
  ]
  for seed in sorted({s for teacher_seeds in seeds_of for s in teacher_seeds}):
    out["arms"]["no_teacher"].append({"seed": seed, **train_student(data, seed, **student_kw)})
  for k in range(teachers):
    model, (accuracy, cross_entropy) = train_teacher(
      map_name, data, teacher_seed + k, epochs=teacher_epochs, drop_last=drop_last
    )
    model.eval()
    out["teachers"].append(
      {"seed": teacher_seed + k, "test_accuracy": accuracy, "test_cross_entropy": cross_entropy}
    )
    if map_name == "noise":
      teaching = {"teacher_fn": lambda x: model(phi("noise", x))}
    else:
      with torch.no_grad():
        teaching = {"soft_logits": model(phi(map_name, data["small"][0]))}
    runs = [{"seed": s, **train_student(data, s, **teaching, **student_kw)} for s in seeds_of[k]]
    out["arms"]["teacher_phi"].append(runs)
    log(f"  pytorch {map_name}: teacher {k} on φ(test) {accuracy:.4f}")
  return out
