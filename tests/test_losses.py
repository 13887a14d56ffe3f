"""distillation_loss: values against a hand computation, gradients, jit/vmap, bad λ and T."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import distill_jax
from distill_jax import losses


def _log_softmax(logits):
  logits = np.asarray(logits, np.float64)
  shifted = logits - logits.max(-1, keepdims=True)
  return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _reference(student, teacher, labels, lam, temperature, t_squared=False):
  """The formula written out in NumPy, float64."""
  hard = -_log_softmax(student)[np.arange(len(labels)), labels]
  teacher_probs = np.exp(_log_softmax(np.asarray(teacher) / temperature))
  soft = -(teacher_probs * _log_softmax(np.asarray(student) / temperature)).sum(-1)
  return np.mean(hard + lam * (temperature**2 if t_squared else 1) * soft)


@pytest.fixture
def batch():
  rng = np.random.default_rng(0)
  student = rng.normal(size=(8, 10)).astype(np.float32) * 3
  teacher = rng.normal(size=(8, 10)).astype(np.float32) * 3
  labels = rng.integers(0, 10, 8)
  return jnp.asarray(student), jnp.asarray(teacher), jnp.asarray(labels)


@pytest.mark.parametrize(
  "lam,temperature,t_squared",
  [(0.0, 1.0, False), (1.0, 1.0, False), (0.5, 2.0, False), (2.0, 4.0, True), (1.0, 0.5, True)],
)
def test_value_matches_formula(batch, lam, temperature, t_squared):
  student, teacher, labels = batch
  got = distill_jax.distillation_loss(
    student, teacher, labels, lam=lam, temperature=temperature, t_squared=t_squared
  )
  want = _reference(student, teacher, labels, lam, temperature, t_squared)
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_tiny_hand_computation():
  # Two classes, uniform teacher, student logits (0, log 3): g = (1/4, 3/4).
  student = jnp.array([[0.0, np.log(3.0)]])
  teacher = jnp.array([[5.0, 5.0]])
  loss = distill_jax.distillation_loss(student, teacher, jnp.array([1]), lam=1.0)
  want = -np.log(0.75) - 0.5 * (np.log(0.25) + np.log(0.75))
  np.testing.assert_allclose(loss, want, rtol=1e-6)


def test_no_teacher_is_cross_entropy(batch):
  student, _, labels = batch
  loss = distill_jax.distillation_loss(student, None, labels, lam=0)
  np.testing.assert_allclose(loss, _reference(student, student, labels, 0.0, 1.0), rtol=1e-6)
  with pytest.raises(ValueError, match="lam != 0"):
    distill_jax.distillation_loss(student, None, labels, lam=1.0)


def test_gradient_finite_and_matches_softmax_difference(batch):
  student, teacher, labels = batch
  lam, temperature = 0.7, 2.0
  grad = jax.grad(
    lambda z: distill_jax.distillation_loss(z, teacher, labels, lam=lam, temperature=temperature)
  )(student)
  assert np.all(np.isfinite(grad))
  # d/dz of mean CE = (softmax(z) - onehot)/B; soft term: lam (softmax(z/T) - softmax(v/T))/(T B)
  b = len(labels)
  want = (jax.nn.softmax(student) - jax.nn.one_hot(labels, 10)) / b
  want += (
    lam
    * (jax.nn.softmax(student / temperature) - jax.nn.softmax(teacher / temperature))
    / (temperature * b)
  )
  np.testing.assert_allclose(grad, want, atol=1e-6)


def test_no_gradient_into_teacher(batch):
  student, teacher, labels = batch
  grad = jax.grad(lambda v: distill_jax.distillation_loss(student, v, labels, lam=1.0))(teacher)
  np.testing.assert_array_equal(grad, 0.0)


def test_jit_and_vmap_over_lam_temperature(batch):
  student, teacher, labels = batch
  lams, temperatures = jnp.array([0.0, 1.0, 2.0]), jnp.array([1.0, 2.0, 3.0])
  fn = jax.jit(
    jax.vmap(
      lambda lam, t: distill_jax.distillation_loss(student, teacher, labels, lam=lam, temperature=t)
    )
  )
  got = fn(lams, temperatures)
  want = [
    _reference(student, teacher, labels, float(lam), float(t)) for lam, t in zip(lams, temperatures)
  ]
  np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize(
  "lam,temperature,match",
  [
    (-0.1, 1.0, "lam must be finite and >= 0"),
    (float("nan"), 1.0, "lam must be finite and >= 0"),
    (1.0, 0.0, "temperature must be finite and > 0"),
    (1.0, -2.0, "temperature must be finite and > 0"),
    (float("inf"), 1.0, "lam must be finite and >= 0"),
    (1.0, float("inf"), "temperature must be finite and > 0"),
  ],
)
def test_impossible_lam_temperature(batch, lam, temperature, match):
  student, teacher, labels = batch
  with pytest.raises(ValueError, match=match):
    distill_jax.distillation_loss(student, teacher, labels, lam=lam, temperature=temperature)


def test_shape_errors(batch):
  student, teacher, labels = batch
  with pytest.raises(ValueError, match="same shape"):
    distill_jax.distillation_loss(student, teacher[:, :5], labels, lam=1.0)
  with pytest.raises(ValueError, match=r"labels \[B\]"):
    distill_jax.distillation_loss(student, teacher, labels[:3], lam=1.0)


def test_accuracy():
  logits = jnp.array([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
  assert float(losses.accuracy(logits, jnp.array([1, 1, 1]))) == pytest.approx(2 / 3)


def test_classification_metrics():
  def apply_fn(params, images):  # logits = images · params
    return images @ params

  metrics_fn = losses.classification_metrics(apply_fn)
  images = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
  params = jnp.array([[2.0, 0.0], [0.0, 1.0]])
  labels = jnp.array([0, 0, 1])
  got = metrics_fn(params, {"image": images, "label": labels}, jax.random.key(0))
  np.testing.assert_array_equal(got["accuracy"], [1.0, 0.0, 0.0])
  np.testing.assert_allclose(
    got["cross_entropy"], _reference_cross_entropy(apply_fn(params, images), labels), rtol=1e-6
  )


def _reference_cross_entropy(logits, labels):
  return -_log_softmax(logits)[np.arange(len(labels)), labels]
