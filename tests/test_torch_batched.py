"""benchmarks/torch_batched.py: the batched PyTorch baseline computes what separate eager models
(``torch_reference``) compute, from the same initialization and batches."""

import math
import os
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

torch = pytest.importorskip("torch")  # the test / bench extras install torch==2.13.0 (CPU)
sys.path.insert(0, os.path.join(REPO_ROOT, "benchmarks"))
import torch_batched  # noqa: E402
import torch_reference  # noqa: E402

WIDTHS = [576, *torch_batched.HIDDEN, 10]


@pytest.fixture(autouse=True)
def one_thread():
  """One intra-op thread (the test workers share the cores), restored afterwards."""
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


def random_data(big=64, small=40, test=30, seed=0):
  """Images in [0, 1] and labels, in ``torch_reference.load_fashion_mnist``'s layout."""
  generator = torch.Generator().manual_seed(seed)

  def split(n):
    images = torch.rand(n, 1, 28, 28, generator=generator)
    return images, torch.randint(0, 10, (n,), generator=generator)

  return {"big": split(big), "small": split(small), "test": split(test)}


def separate_mlps(seeds, in_features=576, hidden=torch_batched.HIDDEN):
  models = []
  for seed in seeds:
    torch.manual_seed(seed)
    models.append(torch_reference.mlp(in_features, hidden=hidden))
  return models


def assert_same_weights(layers, models, atol=0.0):
  linears = [[m for m in model if isinstance(m, torch.nn.Linear)] for model in models]
  for i, (weight, bias) in enumerate(layers):
    for k, model_layers in enumerate(linears):
      np.testing.assert_allclose(weight[k].detach().T, model_layers[i].weight.detach(), atol=atol)
      np.testing.assert_allclose(bias[k, 0].detach(), model_layers[i].bias.detach(), atol=atol)


def test_init_is_nn_linear_default_under_each_seed():
  layers = torch_batched.init_layers([3, 7], WIDTHS)
  assert [tuple(w.shape) for w, _ in layers] == [(2, a, b) for a, b in zip(WIDTHS, WIDTHS[1:])]
  assert [tuple(b.shape) for _, b in layers] == [(2, 1, b) for b in WIDTHS[1:]]
  assert all(w.requires_grad and b.requires_grad and w.is_leaf for w, b in layers)
  assert_same_weights(layers, separate_mlps([3, 7]))  # exactly: the same draws
  # kaiming-uniform with a = √5 is U(±1/√fan_in): the bound is reached, not exceeded
  first = layers[0][0].detach()
  assert float(first.abs().max()) <= 1 / math.sqrt(576)
  assert float(first.abs().max()) > 0.99 / math.sqrt(576)
  assert not torch.equal(layers[0][0][0], layers[0][0][1])  # teachers differ


def test_forward_equals_separate_mlps():
  seeds, generator = [0, 1, 2], torch.Generator().manual_seed(5)
  layers, models = torch_batched.init_layers(seeds, WIDTHS), separate_mlps(seeds)
  own = torch.rand(3, 16, 576, generator=generator)  # each teacher its own batch
  shared = torch.rand(20, 576, generator=generator)  # one batch for all (the test set)
  with torch.no_grad():
    batched_own = torch_batched.forward(layers, own)
    batched_shared = torch_batched.forward(layers, shared)
    for k, model in enumerate(models):
      np.testing.assert_allclose(batched_own[k], model(own[k]), atol=1e-5)
      np.testing.assert_allclose(batched_shared[k], model(shared), atol=1e-5)


def test_metrics_equal_torch_reference_evaluate():
  seeds, data = [0, 1], random_data(test=50)
  layers, models = torch_batched.init_layers(seeds, WIDTHS), separate_mlps(seeds)
  test_x = torch_reference.phi("conv", data["test"][0]).flatten(1)
  with torch.no_grad():
    accuracy, cross_entropy = torch_batched.evaluate(layers, test_x, data["test"][1])
  for k, model in enumerate(models):
    ref_accuracy, ref_ce = torch_reference.evaluate(model, test_x, data["test"][1])
    assert float(accuracy[k]) == pytest.approx(ref_accuracy, abs=1e-6)
    assert float(cross_entropy[k]) == pytest.approx(ref_ce, abs=1e-5)


def test_one_batched_adam_is_k_independent_adams():
  """Five steps in float64 (rounding out of the way): the batched loss and ONE Adam over the
  stacked tensors move every teacher as its own ``nn.Sequential`` under its own
  ``torch.optim.Adam`` moves on the same batches."""
  seeds, generator = [0, 1, 2], torch.Generator().manual_seed(3)
  layers = [
    (w.detach().double().requires_grad_(), b.detach().double().requires_grad_())
    for w, b in torch_batched.init_layers(seeds, WIDTHS)
  ]
  models = [model.double() for model in separate_mlps(seeds)]
  optimizers = [torch.optim.Adam(model.parameters(), lr=1e-3) for model in models]
  step = torch_batched.make_step(torch_batched.teacher_loss, layers)
  for _ in range(5):
    x = torch.rand(3, 16, 576, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 10, (3, 16), generator=generator)
    step(x, y)
    for k, (model, optimizer) in enumerate(zip(models, optimizers)):
      loss = torch.nn.functional.cross_entropy(model(x[k]), y[k])
      optimizer.zero_grad()
      loss.backward()
      optimizer.step()
  assert_same_weights(layers, models, atol=1e-10)
  untrained = torch_batched.init_layers(seeds, WIDTHS)
  assert (
    float((layers[0][0].detach().float() - untrained[0][0].detach()).abs().max()) > 1e-3
  )  # the steps moved it


def test_batched_teachers_equal_torch_reference_teachers():
  """Two epochs of 4 steps in float32: ``train_teachers`` (own batch order per teacher) =
  ``torch_reference.train_teacher`` of the same seeds, one by one. Bmm and mm round apart;
  Adam divides a near-zero gradient by its near-zero RMS, so a few in 10⁵ weights differ by
  up to ~3e-5; the rest agree to 1e-6."""
  data, seeds = random_data(big=64), [0, 1, 2]
  big_x = torch_reference.phi("conv", data["big"][0]).flatten(1)
  layers = torch_batched.train_teachers(big_x, data["big"][1], seeds, epochs=2, batch_size=16)
  models = [
    torch_reference.train_teacher("conv", data, s, epochs=2, batch_size=16, drop_last=True)[0]
    for s in seeds
  ]
  assert_same_weights(layers, models, atol=1e-4)
  differences = torch.cat([
    (weight[k].detach().T - model_layers[i].weight.detach()).abs().flatten()
    for i, (weight, _) in enumerate(layers)
    for k, model_layers in enumerate(
      [[m for m in model if isinstance(m, torch.nn.Linear)] for model in models]
    )
  ])  # fmt: skip
  assert float((differences > 1e-6).float().mean()) < 1e-3


def test_batched_students_equal_separate_runs():
  """Both arms, λ = 1 at T = 1 and λ = 0.5 at T = 2: the R batched runs' per-epoch test curves
  are ``torch_reference.train_student``'s of the same seeds."""
  data, seeds = random_data(small=40, test=30), [4, 5, 6]
  small_x, small_y = data["small"][0].flatten(1), data["small"][1]
  test_x, test_y = data["test"][0].flatten(1), data["test"][1]
  soft = torch.randn(len(seeds), 40, 10, generator=torch.Generator().manual_seed(1))
  for teaching, lam, temperature in ((False, 1.0, 1.0), (True, 1.0, 1.0), (True, 0.5, 2.0)):
    targets = torch.softmax(soft / temperature, -1) if teaching else None
    accuracy, cross_entropy = torch_batched.train_students(
      small_x, small_y, test_x, test_y, seeds, targets=targets, lam=lam,
      temperature=temperature, epochs=3, batch_size=10,
    )  # fmt: skip
    assert accuracy.shape == cross_entropy.shape == (3, len(seeds))
    for r, seed in enumerate(seeds):
      history = torch_reference.train_student(
        data, seed, soft_logits=soft[r] if teaching else None, lam=lam,
        temperature=temperature, epochs=3, batch_size=10, drop_last=True,
      )  # fmt: skip
      np.testing.assert_allclose(cross_entropy[:, r], history["test_cross_entropy"], atol=1e-5)
      np.testing.assert_allclose(accuracy[:, r], history["test_accuracy"], atol=1e-6)


def test_student_loss_equals_the_reference_formula():
  generator = torch.Generator().manual_seed(2)
  logits = torch.randn(2, 8, 10, generator=generator)
  labels = torch.randint(0, 10, (2, 8), generator=generator)
  targets = torch.softmax(torch.randn(2, 8, 10, generator=generator), -1)
  layers = [(torch.eye(10).expand(2, 10, 10), torch.zeros(2, 1, 10))]  # logits pass through
  for lam, temperature in ((1.0, 1.0), (0.3, 4.0)):
    got = torch_batched.student_loss(layers, logits, labels, targets, lam, temperature)
    want = sum(
      torch.nn.functional.cross_entropy(logits[r], labels[r])
      - lam * (targets[r] * torch.log_softmax(logits[r] / temperature, 1)).sum(1).mean()
      for r in range(2)
    )
    assert float(got) == pytest.approx(float(want), abs=1e-5)


def test_run_reproduces_torch_reference_run(shared_data_dir):
  """At tiny sizes, ``run`` has ``torch_reference.run``'s structure and numbers, plus seconds."""
  data = torch_reference.load_fashion_mnist(shared_data_dir, {"big": 256, "test": 100})
  sizes = dict(teachers=2, seeds=2, teacher_epochs=1, student_epochs=2, log=lambda *a: None)
  out = torch_batched.run(data, threads=1, **sizes)
  ref = torch_reference.run("conv", data, drop_last=True, **sizes)
  assert [t["seed"] for t in out["teachers"]] == [0, 1]
  assert [r["seed"] for r in out["arms"]["no_teacher"]] == [0, 1, 2, 3]
  assert [[r["seed"] for r in runs] for runs in out["arms"]["teacher_phi"]] == [[0, 1], [2, 3]]
  runs = out["arms"]["no_teacher"] + [r for runs in out["arms"]["teacher_phi"] for r in runs]
  for run in runs:
    assert len(run["test_accuracy"]) == len(run["test_cross_entropy"]) == 2
    assert all(0 < a <= 1 for a in run["test_accuracy"])
    assert all(0 < c < 10 for c in run["test_cross_entropy"])
  for teacher, ref_teacher in zip(out["teachers"], ref["teachers"]):
    assert 0 < teacher["test_accuracy"] <= 1
    assert teacher["test_cross_entropy"] == pytest.approx(ref_teacher["test_cross_entropy"], 1e-4)
  ref_runs = ref["arms"]["no_teacher"] + [r for rs in ref["arms"]["teacher_phi"] for r in rs]
  np.testing.assert_allclose(
    [r["test_cross_entropy"] for r in runs], [r["test_cross_entropy"] for r in ref_runs], 1e-4
  )
  seconds = out["seconds"]
  assert set(seconds) == {"fixed", "teachers", "students", "total"}
  assert all(math.isfinite(v) and v >= 0 for v in seconds.values())
  assert seconds["total"] == pytest.approx(
    seconds["fixed"] + seconds["teachers"] + seconds["students"], rel=1e-6
  )


def test_step_rates_are_positive():
  data = random_data(big=128, small=100, test=30)
  seconds = torch_batched.teacher_epoch_seconds(data, 2, 32, 2, threads=1)
  assert 0 < seconds < 60
  rate = torch_batched.student_rate(data, torch.zeros(2, 100, 10), 1, 2, threads=1)
  assert 0 < rate < math.inf
  with pytest.raises(ValueError, match="epochs must be >= 2"):
    torch_batched.teacher_epoch_seconds(data, 2, 32, 1)
