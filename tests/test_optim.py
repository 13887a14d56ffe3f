"""optim: the default is optax.adam bit for bit, the schedules' values, clipping, bad values."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from distill_jax import optim

STEPS, EPOCHS = 10, 4


def _config(**changes):
  config = optim.default_optimizer_config(learning_rate=1e-2)
  config.update(changes)
  return config


def _make(config):
  return optim.make_optimizer(config, steps_per_epoch=STEPS, epochs=EPOCHS)


def _params():
  return {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.arange(4.0)}


def _grads(step):
  """Deterministic gradients that change from step to step."""
  return jax.tree.map(lambda p: jnp.sin(p * (step + 1.0)) * 3.0, _params())


def _updates(tx, steps=5):
  """The updates of ``steps`` steps of ``tx`` from ``_params``, and the final state."""
  params, state, all_updates = _params(), tx.init(_params()), []
  for step in range(steps):
    updates, state = tx.update(_grads(step), state, params)
    params = optax.apply_updates(params, updates)
    all_updates.append(updates)
  return all_updates, state


def test_default_config():
  config = optim.default_optimizer_config()
  assert isinstance(config, ml_collections.ConfigDict)
  assert config.to_dict() == {
    "name": "adam",
    "learning_rate": 1e-3,
    "schedule": "constant",
    "warmup_epochs": 0,
    "clip_norm": 0.0,
    "weight_decay": 0.0,
    "momentum": 0.0,
  }


@pytest.mark.parametrize("config", [_config(), _config().to_dict()])
def test_default_is_exactly_optax_adam(config):
  got_updates, got_state = _updates(_make(config))
  want_updates, want_state = _updates(optax.adam(1e-2))
  assert jax.tree.structure(got_state) == jax.tree.structure(want_state)
  for got, want in zip(jax.tree.leaves(got_updates), jax.tree.leaves(want_updates)):
    np.testing.assert_array_equal(got, want)
  for got, want in zip(jax.tree.leaves(got_state), jax.tree.leaves(want_state)):
    np.testing.assert_array_equal(got, want)


def test_optional_fields_may_be_left_out():
  got, _ = _updates(_make({"name": "adam", "learning_rate": 1e-2}))
  want, _ = _updates(optax.adam(1e-2))
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_array_equal(a, b)


def test_cosine_schedule_values():
  total = STEPS * EPOCHS
  schedule = optim.learning_rate_schedule(
    _config(schedule="cosine"), steps_per_epoch=STEPS, epochs=EPOCHS
  )
  np.testing.assert_allclose(schedule(0), 1e-2, rtol=1e-6)
  np.testing.assert_allclose(schedule(total // 2), 0.5e-2, rtol=1e-5)
  np.testing.assert_allclose(schedule(total), 0.0, atol=1e-9)
  t = 13
  np.testing.assert_allclose(schedule(t), 0.5e-2 * (1 + np.cos(np.pi * t / total)), rtol=1e-5)


def test_cosine_warmup_values():
  total, warmup = STEPS * EPOCHS, STEPS  # one warmup epoch
  schedule = optim.learning_rate_schedule(
    _config(schedule="cosine", warmup_epochs=1), steps_per_epoch=STEPS, epochs=EPOCHS
  )
  np.testing.assert_allclose(schedule(0), 0.0, atol=1e-9)
  np.testing.assert_allclose(schedule(warmup // 2), 0.5e-2, rtol=1e-5)
  np.testing.assert_allclose(schedule(warmup), 1e-2, rtol=1e-6)
  t = 25
  want = 0.5e-2 * (1 + np.cos(np.pi * (t - warmup) / (total - warmup)))
  np.testing.assert_allclose(schedule(t), want, rtol=1e-5)
  np.testing.assert_allclose(schedule(total), 0.0, atol=1e-9)


def test_constant_schedule_with_warmup():
  schedule = optim.learning_rate_schedule(
    _config(warmup_epochs=2), steps_per_epoch=STEPS, epochs=EPOCHS
  )
  np.testing.assert_allclose(schedule(STEPS), 0.5e-2, rtol=1e-5)
  np.testing.assert_allclose([schedule(2 * STEPS), schedule(STEPS * EPOCHS)], 1e-2, rtol=1e-6)


def test_cosine_optimizer_takes_smaller_steps_late():
  # Plain SGD: the update is -η_t · grad, so its size follows the schedule.
  tx = _make(_config(name="sgd", schedule="cosine"))
  updates, _ = _updates(tx, steps=STEPS * EPOCHS)
  grads = [_grads(step)["w"] for step in range(STEPS * EPOCHS)]
  rates = [float(-u["w"][0, 0] / g[0, 0]) for u, g in zip(updates, grads)]
  assert rates[0] == pytest.approx(1e-2, rel=1e-5)
  assert rates[-1] < 1e-4 and all(a >= b for a, b in zip(rates, rates[1:]))


def test_clipping_bounds_the_update_norm():
  # SGD with lr 1: the update is minus the clipped gradient.
  tx = _make(_config(name="sgd", learning_rate=1.0, clip_norm=0.5))
  updates, _ = _updates(tx, steps=3)
  for update in updates:
    assert float(optax.tree.norm(update)) == pytest.approx(0.5, rel=1e-5)
  assert float(optax.tree.norm(_grads(0))) > 0.5  # the clip did bind


def test_sgd_momentum_and_adamw_weight_decay():
  momentum, _ = _updates(_make(_config(name="sgd", momentum=0.9)))
  want, _ = _updates(optax.sgd(1e-2, momentum=0.9))
  np.testing.assert_array_equal(momentum[-1]["w"], want[-1]["w"])
  decayed, _ = _updates(_make(_config(name="adamw", weight_decay=0.1)))
  want, _ = _updates(optax.adamw(1e-2, weight_decay=0.1))
  np.testing.assert_array_equal(decayed[-1]["w"], want[-1]["w"])


def test_works_under_jit():
  tx = _make(
    _config(name="adamw", weight_decay=0.01, schedule="cosine", warmup_epochs=1, clip_norm=1.0)
  )
  update = jax.jit(tx.update)
  state = jax.jit(tx.init)(_params())
  jitted, state_jit = update(_grads(0), state, _params())
  eager, state_eager = tx.update(_grads(0), tx.init(_params()), _params())
  for a, b in zip(jax.tree.leaves((jitted, state_jit)), jax.tree.leaves((eager, state_eager))):
    np.testing.assert_allclose(a, b, rtol=1e-6)


@pytest.mark.parametrize(
  "changes,match",
  [
    ({"name": "adagrad"}, r"teacher\.optimizer\.name .*'adagrad'"),
    ({"learning_rate": 0.0}, r"teacher\.optimizer\.learning_rate must be a number > 0"),
    ({"learning_rate": float("nan")}, r"teacher\.optimizer\.learning_rate"),
    ({"learning_rate": "1e-3"}, r"teacher\.optimizer\.learning_rate"),
    ({"schedule": "linear"}, r"teacher\.optimizer\.schedule .*'linear'"),
    ({"warmup_epochs": -1}, r"teacher\.optimizer\.warmup_epochs .*>= 0"),
    ({"warmup_epochs": 1.5}, r"teacher\.optimizer\.warmup_epochs .*whole number"),
    ({"clip_norm": -1.0}, r"teacher\.optimizer\.clip_norm .*>= 0"),
    ({"weight_decay": -0.1, "name": "adamw"}, r"teacher\.optimizer\.weight_decay .*>= 0"),
    ({"weight_decay": 0.1}, r"teacher\.optimizer\.weight_decay .*only used by adamw"),
    ({"momentum": -0.5, "name": "sgd"}, r"teacher\.optimizer\.momentum .*\[0, 1\)"),
    ({"momentum": 1.0, "name": "sgd"}, r"teacher\.optimizer\.momentum .*\[0, 1\)"),
    ({"momentum": 0.9}, r"teacher\.optimizer\.momentum .*only used by sgd"),
    ({"lr": 1e-3}, r"teacher\.optimizer: unknown field\(s\) lr"),
  ],
)
def test_bad_values_name_the_field(changes, match):
  config = _config().to_dict()
  config.update(changes)
  with pytest.raises(ValueError, match=match):
    optim.validate_optimizer(config, "teacher.optimizer")
  with pytest.raises(ValueError, match=match.replace("teacher", "student")):
    optim.make_optimizer(config, steps_per_epoch=STEPS, epochs=EPOCHS, where="student.optimizer")


def test_missing_name_and_too_long_warmup():
  with pytest.raises(ValueError, match=r"vae\.optimizer\.name is missing"):
    optim.validate_optimizer({"learning_rate": 1e-3}, "vae.optimizer")
  with pytest.raises(ValueError, match=r"optimizer\.warmup_epochs = 4 .*below 4"):
    _make(_config(schedule="cosine", warmup_epochs=EPOCHS))
  with pytest.raises(ValueError, match="steps_per_epoch >= 1"):
    optim.make_optimizer(_config(), steps_per_epoch=0, epochs=EPOCHS)
