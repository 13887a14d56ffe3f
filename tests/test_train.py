"""The trainer: learning, vmapped runs = separate runs, sharding, resume, NaN guard, predict."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from distill_jax import losses
from distill_jax import models
from distill_jax import optim
from distill_jax import parallel
from distill_jax import train
from distill_jax.checkpoints import Checkpointer
from distill_jax import epochs
from distill_jax.epochs import choose_steps_per_call

MODEL = models.get_model("mlp", hidden=(16,))


def _data(n=200, seed=0):
  """A learnable toy problem: the label is which quarter of the image is brightest."""
  rng = np.random.default_rng(seed)
  images = rng.random((n, 8, 8, 1), np.float32) * 0.5
  labels = rng.integers(0, 4, n).astype(np.int32)
  for i, label in enumerate(labels):
    r, c = divmod(int(label), 2)
    images[i, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 0.5
  return images, labels


def _loss_fn(params, batch, key, hparams, context):
  logits = MODEL.apply(params, batch["image"])
  return jnp.mean(losses.cross_entropy(logits, batch["label"])) * hparams.get("scale", 1.0)


def _fit(seeds=(0, 1), epochs=3, mesh=None, hparams=None, **kwargs):
  images, labels = _data()
  kwargs.setdefault("tx", optax.adam(1e-2))
  kwargs.setdefault("loss_fn", _loss_fn)
  return train.fit(
    name="toy",
    init_fn=lambda key: MODEL.init(key, jnp.zeros((1, 8, 8, 1))),
    metrics_fn=losses.classification_metrics(MODEL.apply),
    train_data={"image": images, "label": labels},
    test_data={"image": images[:60], "label": labels[:60]},
    run_keys=jax.vmap(jax.random.key)(jnp.asarray(seeds)),
    hparams=hparams or {},
    epochs=epochs,
    batch_size=20,
    mesh=mesh or parallel.make_mesh(),
    eval_batch_size=20,
    **kwargs,
  )


def test_learns_and_reports_history_shapes():
  result = _fit(epochs=6)
  assert set(result.history) == {"train_loss", "test_accuracy", "test_cross_entropy"}
  assert result.history["test_accuracy"].shape == (2, 6)
  assert np.all(result.history["train_loss"][:, -1] < result.history["train_loss"][:, 0])
  assert np.all(result.history["test_accuracy"][:, -1] > 0.8)


def test_same_seed_same_numbers():
  a, b = _fit(), _fit()
  np.testing.assert_array_equal(a.history["test_cross_entropy"], b.history["test_cross_entropy"])


def test_vmapped_runs_equal_separate_runs():
  together = _fit(seeds=(3, 5))
  alone = _fit(seeds=(5,))
  np.testing.assert_allclose(
    together.history["train_loss"][1], alone.history["train_loss"][0], rtol=1e-5
  )


def test_per_run_hparams_are_used():
  result = _fit(seeds=(0, 0), hparams={"scale": np.array([1.0, 0.0])})
  # scale 0: zero gradient, Adam does not move, test metrics stay at their initial values.
  assert np.ptp(result.history["test_cross_entropy"][1]) < 1e-6
  assert np.ptp(result.history["test_cross_entropy"][0]) > 1e-3


@pytest.mark.parametrize("devices_per_run", [1, 2])
def test_two_devices_match_one(devices_per_run):
  """Two devices as two run groups (the default) or as one run's batch split in two."""
  assert len(jax.devices()) == 2, "conftest sets two fake CPU devices"
  one = _fit(mesh=parallel.make_mesh(1))
  two = _fit(mesh=parallel.make_mesh(2, devices_per_run=devices_per_run))
  for metric in one.history:
    np.testing.assert_allclose(two.history[metric], one.history[metric], atol=1e-5)


def test_batch_not_divisible_by_devices():
  with pytest.raises(ValueError, match="not divisible by the 2 devices per run"):
    images, labels = _data()
    train.fit(
      name="toy",
      init_fn=lambda key: MODEL.init(key, jnp.zeros((1, 8, 8, 1))),
      loss_fn=_loss_fn,
      metrics_fn=losses.classification_metrics(MODEL.apply),
      train_data={"image": images, "label": labels},
      test_data={"image": images, "label": labels},
      run_keys=jax.random.key(0)[None],
      hparams={},
      epochs=1,
      batch_size=15,
      tx=optax.adam(1e-2),
      mesh=parallel.make_mesh(2, devices_per_run=2),
    )


def test_resume_after_interruption_gives_the_same_result(tmp_path):
  reference = _fit(epochs=4)
  first = _fit(epochs=2, checkpointer=Checkpointer(str(tmp_path)), checkpoint_every=1)
  checkpointer = Checkpointer(str(tmp_path))
  assert checkpointer.latest_epoch() == 2
  seen = []
  resumed = _fit(
    epochs=4,
    checkpointer=checkpointer,
    checkpoint_every=1,
    on_epoch=lambda epoch, metrics: seen.append(epoch),
  )
  assert seen == [3, 4]  # only the missing epochs ran
  np.testing.assert_array_equal(resumed.history["train_loss"][:, :2], first.history["train_loss"])
  np.testing.assert_allclose(
    resumed.history["test_accuracy"], reference.history["test_accuracy"], atol=1e-6
  )
  np.testing.assert_allclose(
    resumed.history["train_loss"], reference.history["train_loss"], rtol=1e-5
  )


def test_nan_loss_raises_clear_error():
  with pytest.raises(
    FloatingPointError,
    match=r"train_loss.*NaN/inf at epoch 1 for runs \[1\] \(scale=nan\); lower the learning rate",
  ):
    _fit(hparams={"scale": np.array([1.0, np.nan])}, epochs=2)


def test_nan_loss_error_names_the_kept_checkpoint(tmp_path):
  _fit(epochs=1, checkpointer=Checkpointer(str(tmp_path)), checkpoint_every=1)
  kept = r"epoch 2 for runs \[1\].*the last checkpoint, epoch 1, is kept"
  with pytest.raises(FloatingPointError, match=kept):
    _fit(
      hparams={"scale": np.array([1.0, np.nan])},
      epochs=2,
      checkpointer=Checkpointer(str(tmp_path)),
      checkpoint_every=1,
    )


def test_hparams_must_have_one_value_per_run():
  with pytest.raises(ValueError, match="one value per run"):
    _fit(hparams={"scale": np.array([1.0, 2.0, 3.0])})


def test_predict_matches_apply():
  images, _ = _data(n=45)
  params = MODEL.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  got = train.predict(MODEL.apply, params, images, parallel.make_mesh(), batch_size=20)
  np.testing.assert_allclose(got, MODEL.apply(params, images), rtol=1e-5, atol=1e-6)


def test_predict_compiles_once_per_apply_fn():
  traces = []

  def apply_fn(params, images):  # runs once per trace, not per call
    traces.append(images.shape)
    return MODEL.apply(params, images)

  images, _ = _data(n=45)
  params = MODEL.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)))
  mesh = parallel.make_mesh()
  first = train.predict(apply_fn, params, images, mesh, batch_size=20)
  again = train.predict(apply_fn, jax.tree.map(jnp.copy, params), images, mesh, batch_size=20)
  assert len(traces) == 1
  np.testing.assert_array_equal(again, first)


def _epoch_compilations(fit):
  """How many times ``fit()`` compiles (or reads from JAX's persistent cache) an epoch program."""
  finished = []

  class Handler(logging.Handler):
    def emit(self, record):
      message = record.getMessage()
      if message.startswith("Finished XLA compilation of jit(epoch_fn)"):
        finished.append(message)

  handler = Handler()
  jax_logger = logging.getLogger("jax")
  jax_logger.addHandler(handler)
  try:
    with jax.log_compiles():
      result = fit()
  finally:
    jax_logger.removeHandler(handler)
  return len(finished), result


def test_equivalent_epoch_functions_share_one_compiled_program():
  """Two fits whose losses are distinct closures with the same arithmetic (as the student arms
  are) compile the epoch once; a loss with other arithmetic gets its own program."""

  def loss_with(scale):
    def loss_fn(params, batch, key, hparams, context):
      logits = MODEL.apply(params, batch["image"])
      return jnp.mean(losses.cross_entropy(logits, batch["label"])) * scale

    return loss_fn

  # Scales no other test uses: programs compiled earlier in this process are shared too.
  first, a = _epoch_compilations(lambda: _fit(seeds=(7, 8), loss_fn=loss_with(0.731)))
  again, b = _epoch_compilations(lambda: _fit(seeds=(7, 8), loss_fn=loss_with(0.731)))
  other, c = _epoch_compilations(lambda: _fit(seeds=(7, 8), loss_fn=loss_with(0.373)))
  assert (first, again, other) == (1, 0, 1)
  np.testing.assert_array_equal(a.history["train_loss"], b.history["train_loss"])
  assert not np.allclose(a.history["train_loss"], c.history["train_loss"])
  # None and {} as the context lower alike but are other pytrees: each gets a program it fits.
  d = _fit(seeds=(7, 8), loss_fn=loss_with(0.731), context={})
  np.testing.assert_array_equal(a.history["train_loss"], d.history["train_loss"])


def test_fit_with_a_configured_optimizer():
  config = optim.default_optimizer_config(learning_rate=3e-2)
  config.update(name="adamw", weight_decay=1e-4, schedule="cosine", warmup_epochs=1, clip_norm=1.0)
  tx = optim.make_optimizer(config, steps_per_epoch=200 // 20, epochs=4)
  result = _fit(epochs=4, tx=tx)
  assert np.all(result.history["test_accuracy"][:, -1] > 0.8)


@pytest.mark.parametrize(
  "configured,model,backend,want",
  [
    (None, "cnn", "cpu", 1),
    (None, "cnn", "gpu", None),
    (None, "mlp", "cpu", None),
    (4, "mlp", "gpu", 4),
    (2, "cnn", "cpu", 2),
  ],
)
def test_choose_steps_per_call(configured, model, backend, want):
  assert choose_steps_per_call(configured, model, backend) == want


def test_choose_steps_per_call_defaults_to_this_backend():
  want = 1 if jax.default_backend() == "cpu" else None
  assert choose_steps_per_call(None, "cnn") == want


@pytest.mark.parametrize("steps_per_call", [1, 3])
def test_steps_per_call_gives_the_same_numbers(steps_per_call):
  # 200 examples / batch 20 = 10 steps: chunks of 1, or 3 + 3 + 3 + 1 (a shorter last chunk).
  whole = _fit(epochs=2)
  looped = _fit(epochs=2, steps_per_call=steps_per_call)
  for metric, values in whole.history.items():
    np.testing.assert_allclose(looped.history[metric], values, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(looped.params)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_steps_per_call_must_be_positive():
  with pytest.raises(ValueError, match="steps_per_call must be >= 1"):
    _fit(epochs=1, steps_per_call=0)


@pytest.mark.parametrize("steps_per_call", [None, 1])
def test_eval_every_scores_some_epochs_and_trains_the_same(steps_per_call):
  every = _fit(epochs=3, steps_per_call=steps_per_call)
  seen = {}
  sparse = _fit(
    epochs=3,
    steps_per_call=steps_per_call,
    eval_every=2,
    on_epoch=lambda epoch, metrics: seen.update({epoch: sorted(metrics)}),
  )
  # Evaluated after epoch 2 (every 2nd) and 3 (the last); NaN after epoch 1.
  assert seen[1] == ["train_loss"]
  assert seen[2] == seen[3] == ["test_accuracy", "test_cross_entropy", "train_loss"]
  for metric in ("test_accuracy", "test_cross_entropy"):
    assert np.all(np.isnan(sparse.history[metric][:, 0]))
    np.testing.assert_allclose(
      sparse.history[metric][:, 1:], every.history[metric][:, 1:], atol=1e-6
    )
  np.testing.assert_allclose(sparse.history["train_loss"], every.history["train_loss"], rtol=1e-6)
  for a, b in zip(jax.tree.leaves(every.params), jax.tree.leaves(sparse.params)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_eval_every_resume_keeps_unevaluated_epochs_nan(tmp_path):
  reference = _fit(epochs=4, eval_every=3)
  # A 2-epoch fit scores epoch 2 (its last) but not epoch 1; the checkpoint stores that as null.
  _fit(epochs=2, eval_every=3, checkpointer=Checkpointer(str(tmp_path)), checkpoint_every=1)
  resumed = _fit(epochs=4, eval_every=3, checkpointer=Checkpointer(str(tmp_path)))
  accuracy = resumed.history["test_accuracy"]
  assert np.isnan(accuracy[:, 0]).all() and np.isfinite(accuracy[:, 1:]).all()
  np.testing.assert_allclose(accuracy[:, 2:], reference.history["test_accuracy"][:, 2:], atol=1e-6)
  np.testing.assert_allclose(
    resumed.history["train_loss"], reference.history["train_loss"], rtol=1e-5
  )


def test_eval_every_must_be_positive():
  with pytest.raises(ValueError, match="eval_every must be >= 1"):
    _fit(epochs=1, eval_every=0)


@pytest.mark.parametrize("init", models.INIT_NAMES)
def test_init_states_fast_compile_gives_the_default_compile_bits(init):
  """init_states compiles at -O1 on CPU (RUN_ONCE_CPU_COMPILER_OPTIONS): same bits as -O3."""
  model = models.get_model("mlp", hidden=(32, 16), init=init)
  init_fn, tx = models.init_fn(model, (8, 8, 1)), optax.adam(1e-3)
  keys = jax.random.split(jax.random.key(3), 4)
  fast = epochs.init_states(init_fn, tx, keys)

  def init_all(keys):  # the same program, compiled with XLA's default options
    params = jax.vmap(init_fn)(keys)
    return epochs.TrainState(params=params, opt_state=jax.vmap(tx.init)(params))

  default = jax.jit(init_all)(keys)
  for got, want in zip(jax.tree.leaves(fast), jax.tree.leaves(default)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    assert np.asarray(got).tobytes() == np.asarray(want).tobytes()
