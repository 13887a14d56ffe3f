"""Two-decoder VAE: KL closed form, ELBO and gradients, shapes, learning, pairing, φ_vae."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from distill_jax import vae


def _model_and_params(latent_dim=2, encoder_type="mlp"):
  model = vae.TwoDecoderVAE(
    latent_dim=latent_dim, encoder_hidden=(32,), decoder_hidden=(32,), encoder_type=encoder_type
  )
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), jax.random.key(1))
  return model, params


def _images(n, seed):
  return jnp.asarray(np.random.default_rng(seed).random((n, 28, 28, 1), np.float32))


def test_kl_closed_form_on_known_inputs():
  # KL(N(0,1) || N(0,1)) = 0; one latent with mu=1, var=1: 0.5; var=e^2, mu=0: 0.5(e^2 - 1 - 2).
  np.testing.assert_allclose(vae.kl_to_prior(jnp.zeros((1, 3)), jnp.zeros((1, 3))), [0.0])
  np.testing.assert_allclose(vae.kl_to_prior(jnp.ones((1, 1)), jnp.zeros((1, 1))), [0.5])
  np.testing.assert_allclose(
    vae.kl_to_prior(jnp.zeros((1, 1)), jnp.full((1, 1), 2.0)), [0.5 * (np.e**2 - 3)], rtol=1e-6
  )
  # Against Monte Carlo for a non-unit prior.
  mean, log_var, s = jnp.array([[0.3, -1.0]]), jnp.array([[-0.5, 0.4]]), 2.0
  z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(jax.random.key(0), (200_000, 2))
  log_q = jax.scipy.stats.norm.logpdf(z, mean, jnp.exp(0.5 * log_var)).sum(-1)
  log_p = jax.scipy.stats.norm.logpdf(z, 0.0, s).sum(-1)
  np.testing.assert_allclose(
    vae.kl_to_prior(mean, log_var, s)[0], jnp.mean(log_q - log_p), rtol=2e-2
  )


def test_bernoulli_log_likelihood():
  logits = jnp.zeros((2, 28, 28, 1))
  np.testing.assert_allclose(
    vae.bernoulli_log_likelihood(logits, jnp.ones_like(logits)), [784 * np.log(0.5)] * 2, rtol=1e-6
  )


@pytest.mark.parametrize("encoder_type", ["mlp", "conv"])
def test_shapes_elbo_finite_and_gradient_finite(encoder_type):
  model, params = _model_and_params(encoder_type=encoder_type)
  x, m = _images(4, 0), _images(4, 1)
  mean, log_var, mnist_logits, fashion_logits = jax.jit(model.apply)(params, x, jax.random.key(2))
  assert mean.shape == log_var.shape == (4, 2)
  assert mnist_logits.shape == fashion_logits.shape == (4, 28, 28, 1)
  loss_fn = lambda p: vae.negative_elbo(model, p, x, m, jax.random.key(3))[0]  # noqa: E731
  loss, grads = jax.jit(jax.value_and_grad(loss_fn))(params)
  assert np.isfinite(loss)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


def test_unknown_encoder_type():
  with pytest.raises(ValueError, match="unknown VAE encoder_type 'resnet'"):
    _model_and_params(encoder_type="resnet")


def test_a_few_steps_lower_the_loss():
  model, params = _model_and_params()
  x, m = _images(32, 0), _images(32, 1) > 0.5
  tx = optax.adam(1e-3)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, key):
    (loss, _), grads = jax.value_and_grad(
      lambda p: vae.negative_elbo(model, p, x, m.astype(jnp.float32), key), has_aux=True
    )(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  losses = []
  for i in range(30):
    params, opt_state, loss = step(params, opt_state, jax.random.key(i))
    losses.append(float(loss))
  assert np.mean(losses[-5:]) < 0.98 * np.mean(losses[:5])


def test_pairing_draws_digits_of_the_right_class():
  mnist_labels = np.random.default_rng(0).integers(0, 10, 500)
  table, counts = vae.class_index_table(mnist_labels)
  np.testing.assert_array_equal(counts, np.bincount(mnist_labels, minlength=10))
  fashion_labels = jnp.asarray(np.random.default_rng(1).integers(0, 10, 1000))
  a = vae.draw_pairs(jax.random.key(0), fashion_labels, table, counts)
  b = vae.draw_pairs(jax.random.key(1), fashion_labels, table, counts)
  np.testing.assert_array_equal(mnist_labels[np.asarray(a)], np.asarray(fashion_labels))
  assert np.mean(np.asarray(a) != np.asarray(b)) > 0.9  # re-drawn with a new key
  # Every digit of a class can be drawn.
  labels_3 = jnp.full((5000,), 3)
  drawn = vae.draw_pairs(jax.random.key(2), labels_3, table, counts)
  assert set(np.asarray(drawn).tolist()) == set(np.flatnonzero(mnist_labels == 3).tolist())
  with pytest.raises(ValueError, match=r"no digit of class\(es\) \[9\]"):
    vae.class_index_table(np.arange(9))


def test_phi_vae_mean_mode_is_deterministic_and_in_unit_range():
  model, params = _model_and_params(latent_dim=4)
  x = _images(3, 0)
  phi = jax.jit(vae.make_phi(model, params))
  a, b = phi(x, jax.random.key(0)), phi(x, jax.random.key(1))
  np.testing.assert_array_equal(a, b)
  assert a.shape == (3, 28, 28, 1) and float(a.min()) >= 0 and float(a.max()) <= 1
  sampled = jax.jit(vae.make_phi(model, params, sample=True))
  assert not np.allclose(sampled(x, jax.random.key(0)), sampled(x, jax.random.key(1)))


def test_fit_vae_with_the_trainer_lowers_test_neg_elbo():
  from distill_jax import parallel

  rng = np.random.default_rng(0)
  labels = np.arange(200) % 10
  # Class r: a bright horizontal band at row 2r (garments) / vertical band at column 2r (digits).
  fashion = rng.random((200, 28, 28, 1), np.float32) * 0.1
  mnist = rng.random((200, 28, 28, 1), np.float32) * 0.1
  for i, r in enumerate(labels):
    fashion[i, 2 * r : 2 * r + 3] = 1.0
    mnist[i, :, 2 * r : 2 * r + 3] = 1.0
  model = vae.TwoDecoderVAE(latent_dim=2, encoder_hidden=(32,), decoder_hidden=(32,))
  result = vae.fit_vae(
    model,
    fashion_train=(fashion[:160], labels[:160]),
    fashion_test=(fashion[160:], labels[160:]),
    mnist_train=(mnist[:160], labels[:160]),
    mnist_test=(mnist[160:], labels[160:]),
    epochs=40,
    batch_size=20,
    tx=optax.adam(3e-3),
    mesh=parallel.make_mesh(),
  )
  neg_elbo = result.history["test_neg_elbo"][0]
  assert {"test_kl", "test_mnist_log_lik", "test_fashion_log_lik"} <= set(result.history)
  assert np.all(np.isfinite(neg_elbo)) and neg_elbo[-1] < 0.7 * neg_elbo[0]
  np.testing.assert_allclose(
    neg_elbo,
    result.history["test_kl"][0]
    - result.history["test_mnist_log_lik"][0]
    - result.history["test_fashion_log_lik"][0],
    rtol=1e-4,
  )
  # The pairing makes φ_vae translate garment class r into digit class r: the decoded image's
  # brightest 3-column band is the one of class r.
  params = jax.tree.map(lambda leaf: leaf[0], result.params)
  translated = np.asarray(jax.jit(vae.make_phi(model, params))(fashion[160:], None))
  column_mass = translated[..., 0].mean(axis=1)  # [N, 28]
  band_mass = np.stack([column_mass[:, 2 * r : 2 * r + 3].sum(1) for r in range(10)], axis=1)
  assert np.mean(band_mass.argmax(1) == labels[160:]) >= 0.7  # chance: 0.1


def test_latent_grid_values():
  grid = vae.latent_grid(steps=3)
  q = 1.6448536  # Φ⁻¹(0.95)
  np.testing.assert_allclose(grid[:, 0], [-q, 0, q] * 3, atol=1e-5)
  np.testing.assert_allclose(grid[:, 1], [q] * 3 + [0] * 3 + [-q] * 3, atol=1e-5)


def test_decoder_clamp_as_the_authors_code():
  """decoder_clamp = 0.01: probabilities in [0.01, 0.99], as clamping them would give, with a
  zero gradient outside; 0 leaves the logits alone."""
  logits = jnp.array([-10.0, -1.0, 0.0, 2.0, 10.0])
  clamped = vae.clamp_logits(logits, 0.01)
  np.testing.assert_allclose(
    jax.nn.sigmoid(clamped), jnp.clip(jax.nn.sigmoid(logits), 0.01, 0.99), rtol=1e-5
  )
  np.testing.assert_array_equal(vae.clamp_logits(logits, 0.0), logits)
  grad = jax.grad(lambda x: vae.clamp_logits(x, 0.01).sum())(logits)
  np.testing.assert_array_equal(grad, [0.0, 1.0, 1.0, 1.0, 0.0])
  model = vae.TwoDecoderVAE(
    latent_dim=2, encoder_hidden=(8,), decoder_hidden=(8,), decoder_clamp=0.01
  )
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), jax.random.key(1))
  z = jnp.full((3, 2), 50.0)  # far out: raw logits would saturate
  probabilities = jax.nn.sigmoid(model.apply(params, z, method=vae.TwoDecoderVAE.decode_mnist))
  assert float(probabilities.min()) >= 0.01 - 1e-6 and float(probabilities.max()) <= 0.99 + 1e-6


def test_decoder_clamp_is_validated():
  from experiments.configs import vae as vae_config
  from distill_jax import validation

  config = vae_config.get_config()
  config.vae.decoder_clamp = 0.5
  with pytest.raises(ValueError, match=r"vae.decoder_clamp must be in \[0, 0.5\)"):
    validation.validate_config(config)


def test_the_map_trained_on_small_only(tmp_path, monkeypatch):
  """``vae.train_on = "small"``: the VAE learns FashionMNIST-Small's garments only (a checkpoint
  of its own), evaluated and saved every ``vae.eval_every`` epochs; Big keeps its key."""
  from distill_jax import parallel, validation
  from distill_jax.maps import core
  from distill_jax.maps import vae as vae_map
  from experiments.configs import vae as vae_config

  rng = np.random.default_rng(0)

  def split(n):
    return rng.random((n, 28, 28, 1), np.float32), (np.arange(n) % 10).astype(np.int32)

  datasets = {name: {"big": split(300), "small": split(40), "test": split(50)}
              for name in ("fashion_mnist", "mnist")}  # fmt: skip
  config = vae_config.get_config()
  config.vae.update(train_on="small", epochs=4, eval_every=2, batch_size=20, latent_dim=2)
  config.vae.update(encoder_hidden=(16,), decoder_hidden=(16,))
  validation.validate_config(config)
  context = core.MapContext(
    load=datasets.__getitem__, mesh=parallel.make_mesh(), cache_dir=str(tmp_path),
    tfds_dir=str(tmp_path / "tfds"), workdir=str(tmp_path),
  )  # fmt: skip
  from distill_jax import checkpoints

  saved, save = [], checkpoints.Checkpointer.save
  monkeypatch.setattr(
    checkpoints.Checkpointer,
    "save",
    lambda self, epoch, *a, **k: (saved.append(epoch), save(self, epoch, *a, **k))[1],
  )
  small = vae_map.fit(config, context)
  assert small.info["train_on"] == "fashion_mnist Small (40 garments)"
  neg_elbo = small.info["history"]["test_neg_elbo"]
  assert (
    neg_elbo[0] is None and neg_elbo[2] is None and np.isfinite([neg_elbo[1], neg_elbo[3]]).all()
  )
  assert saved == [2, 4]  # checkpoints with the evaluations

  config.vae.train_on = "big"
  big = vae_map.fit(config, context)
  assert big.key != small.key and big.info["train_on"] == "fashion_mnist Big (300 garments)"
  config.vae.update(train_on="small", batch_size=41)
  config.data.max_small, config.student.batch_size = 40, 20
  with pytest.raises(
    ValueError, match="vae.batch_size = 41 but fashion_mnist Small has 40 examples"
  ):
    validation.validate_config(config)
  config.vae.update(train_on="medium", batch_size=20)
  with pytest.raises(ValueError, match="unknown vae.train_on 'medium'"):
    validation.validate_config(config)
