"""Students: the no_teacher arm is λ = 0 of the teacher arms' loss, and shares their program."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from distill_jax import epochs
from distill_jax import losses
from distill_jax import models
from distill_jax import parallel
from distill_jax import students

MODEL = models.get_model("linear", init="torch")
NO_TEACHER = students.Arm("no_teacher", uses_teacher=False, through_phi=False)
TEACHER_PHI = students.Arm("teacher_phi", uses_teacher=True, through_phi=True)
HPARAMS = {"lam": jnp.float32(0.0), "temperature": jnp.float32(1.0), "teacher": jnp.float32(-1)}


def _loss(arm):
  return students.student_loss(
    MODEL.apply, arm, online_phi=None, teacher_apply=MODEL.apply, t_squared=False
  )


def _batch(n=32, teachers=3, seed=0):
  rng = np.random.default_rng(seed)
  return {
    "image": rng.random((n, 28, 28, 1), np.float32),
    "label": rng.integers(0, 10, n).astype(np.int32),
    "teacher_logits": np.zeros((n, teachers, 10), np.float32),
  }


def test_no_teacher_on_zero_soft_targets_is_the_labels_loss_bit_for_bit():
  params = models.init_fn(MODEL, (28, 28, 1))(jax.random.key(0))
  batch = _batch()
  labels_only = {k: v for k, v in batch.items() if k != "teacher_logits"}
  value_and_grad = jax.jit(jax.value_and_grad(_loss(NO_TEACHER)))
  got = value_and_grad(params, batch, jax.random.key(1), HPARAMS, None)
  want = value_and_grad(params, labels_only, jax.random.key(1), HPARAMS, None)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    assert np.asarray(g).tobytes() == np.asarray(w).tobytes()
  # and it is the plain cross-entropy
  logits = MODEL.apply(params, batch["image"])
  np.testing.assert_allclose(got[0], losses.cross_entropy(logits, batch["label"]).mean(), rtol=1e-6)


def test_no_teacher_and_teacher_phi_compile_to_the_same_program():
  """The arms' epochs lower to the same HLO, so the compilation cache compiles it once."""
  mesh = parallel.make_mesh(1)
  tx = optax.adam(1e-3)
  data = parallel.put_rows(_batch(64), mesh)
  keys = jax.random.split(jax.random.key(0), 4)
  states = epochs.init_states(models.init_fn(MODEL, (28, 28, 1)), tx, keys)
  hparams = {k: jnp.zeros((4,), jnp.float32) for k in HPARAMS}
  test = parallel.put_rows(
    {"image": np.zeros((32, 28, 28, 1), np.float32), "label": np.zeros(32, np.int32)},
    mesh,
    chunk_rows=16,
  )
  weight = parallel.put_rows({"w": np.ones(32, np.float32)}, mesh, chunk_rows=16)["w"]

  def hlo(arm):
    epoch_fn = epochs.make_epoch_fn(
      _loss(arm),
      losses.classification_metrics(MODEL.apply),
      tx,
      num_examples=64,
      batch_size=16,
      mesh=mesh,
    )
    return epoch_fn.lower(states, data, keys, 0, hparams, None, (test, weight)).as_text(
      debug_info=False
    )

  assert hlo(NO_TEACHER) == hlo(TEACHER_PHI)
