"""Losses and metrics of multi-domain distillation.

The student ``g = softmax(z(x) / T)`` learns from labels and from the soft targets
``f(φ(x)) = softmax(v(φ(x)) / T)`` of a teacher trained on the source domain:

.. math::

   L = \\frac{1}{B} \\sum_i \\Big[ -\\sum_r [y_i = r] \\log \\mathrm{softmax}(z_i)_r
       \\; - \\; \\lambda \\, c \\sum_r \\mathrm{softmax}(v_i / T)_r \\log \\mathrm{softmax}(z_i / T)_r \\Big]

with ``z_i`` the student logits on ``x_i``, ``v_i`` the teacher logits on ``φ(x_i)``, λ the
distillation weight, T the temperature (the hard term is at T = 1), and ``c = T²`` when
``t_squared`` (Hinton et al., 2015, to keep the soft gradients' scale) and ``c = 1`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example cross-entropy ``-log softmax(logits)[label]``; shape ``logits.shape[:-1]``."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def soft_cross_entropy(
  student_logits: jax.Array, teacher_logits: jax.Array, temperature: float | jax.Array = 1.0
) -> jax.Array:
  """Per-example ``-Σ_r softmax(teacher/T)_r log softmax(student/T)_r``.

  No gradient flows into the teacher logits: they are targets.
  """
  teacher_probs = jax.nn.softmax(jax.lax.stop_gradient(teacher_logits) / temperature, axis=-1)
  return optax.softmax_cross_entropy(student_logits / temperature, teacher_probs)


def distillation_loss(
  student_logits: jax.Array,
  teacher_logits: jax.Array | None,
  labels: jax.Array,
  *,
  lam: float | jax.Array,
  temperature: float | jax.Array = 1.0,
  t_squared: bool = False,
) -> jax.Array:
  """Mean over the batch of ``CE(y, softmax(z)) + λ·c·CE(softmax(v/T), softmax(z/T))``.

  Args:
    student_logits: ``[B, K]`` logits ``z`` of the student on the target images ``x``.
    teacher_logits: ``[B, K]`` logits ``v`` of the teacher on ``φ(x)``, or ``None`` for the
      student trained alone (then ``lam`` must be 0).
    labels: ``[B]`` integer labels of ``x``.
    lam: distillation weight λ ≥ 0 (0 = student trained alone).
    temperature: T > 0, applied inside both softmaxes of the soft term only.
    t_squared: multiply the soft term by T² (Hinton's scaling); off by default.

  Returns:
    The scalar loss.

  Raises:
    ValueError: if λ < 0, T ≤ 0 (when given as Python numbers) or shapes disagree.
  """
  check_lam_temperature(lam, temperature)
  if student_logits.ndim != 2 or labels.shape != student_logits.shape[:1]:
    raise ValueError(
      f"distillation_loss expects student_logits [B, K] and labels [B]; got "
      f"{student_logits.shape} and {labels.shape}."
    )
  hard = cross_entropy(student_logits, labels)
  if teacher_logits is None:
    if not (isinstance(lam, (int, float)) and lam == 0):
      raise ValueError(
        "distillation_loss: teacher_logits is None but lam != 0; pass the "
        "teacher's logits or lam=0."
      )
    return jnp.mean(hard)
  if teacher_logits.shape != student_logits.shape:
    raise ValueError(
      f"distillation_loss: teacher_logits {teacher_logits.shape} and student_logits "
      f"{student_logits.shape} must have the same shape [B, K]."
    )
  soft = soft_cross_entropy(student_logits, teacher_logits, temperature)
  if t_squared:
    soft = soft * jnp.square(temperature)
  return jnp.mean(hard + lam * soft)


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Fraction of examples whose arg-max logit equals the label."""
  return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def classification_metrics(apply_fn: Callable) -> Callable:
  """Per-example ``accuracy`` (0/1) and ``cross_entropy`` of ``apply_fn`` on image/label.

  Returns the ``metrics_fn(params, batch, key)`` that ``train.fit`` evaluates on the test set.
  """

  def metrics(params, batch, key):
    logits = apply_fn(params, batch["image"])
    return {
      "accuracy": (jnp.argmax(logits, -1) == batch["label"]).astype(jnp.float32),
      "cross_entropy": cross_entropy(logits, batch["label"]),
    }

  return metrics


def check_lam_temperature(lam, temperature) -> None:
  """Raises a clear ValueError for an impossible λ or T given as Python numbers.

  Traced values (inside ``jit``/``vmap``) are checked by the config layer before tracing.
  """
  if isinstance(lam, (int, float)) and not 0 <= lam < math.inf:  # also rejects NaN
    raise ValueError(
      f"distillation weight lam must be finite and >= 0, got {lam}; lam = 0 trains the "
      "student alone, lam = 1 weighs labels and teacher equally."
    )
  if isinstance(temperature, (int, float)) and not 0 < temperature < math.inf:
    raise ValueError(
      f"temperature must be finite and > 0, got {temperature}; T = 1 uses the teacher's "
      "plain softmax, T > 1 softens it (T = inf would make every soft target uniform)."
    )
