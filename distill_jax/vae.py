"""A VAE with one encoder and two decoders: the learned map φ_vae from clothes to digits.

The encoder ``q(z | x, α)`` reads a Fashion-MNIST image ``x``; two Bernoulli decoders
``p(· | z, β_MNIST)`` and ``p(· | z, β_Fashion)`` reconstruct a paired MNIST digit ``m`` of the same
class and the input ``x`` itself. Per example, with ``z ~ q(z | x)`` (reparameterized):

.. math::

   \\mathrm{ELBO}(x, m) = \\mathbb{E}_q \\log p(m | z, β_M) + \\mathbb{E}_q \\log p(x | z, β_F)
                         - \\mathrm{KL}(q(z | x) \\,\\|\\, N(0, σ^2 I))

with the KL in closed form. Because clothes of class r are always paired with digits r, the
shared latent space lines up classes of clothes with classes of digits, and
``φ_vae(x) = E[p(m | z = μ(x), β_M)]`` translates a garment into a digit.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

IMAGE_SHAPE = (28, 28, 1)


class Encoder(nn.Module):
  """Images → mean and log-variance of a diagonal Gaussian ``q(z | x)``."""

  latent_dim: int
  hidden: Sequence[int] = (512, 256)

  @nn.compact
  def __call__(self, images):
    h = images.reshape(images.shape[0], -1)
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    return nn.Dense(self.latent_dim, name="mean")(h), nn.Dense(self.latent_dim, name="log_var")(h)


class ConvEncoder(nn.Module):
  """Images → ``q(z | x)`` through two stride-2 3×3 convolutions (28 → 14 → 7), then dense
  layers ``hidden``: separates garment classes better than the dense encoder."""

  latent_dim: int
  hidden: Sequence[int] = (256,)
  features: Sequence[int] = (32, 64)

  @nn.compact
  def __call__(self, images):
    h = images
    for width in self.features:
      h = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2))(h))
    h = h.reshape(h.shape[0], -1)
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    return nn.Dense(self.latent_dim, name="mean")(h), nn.Dense(self.latent_dim, name="log_var")(h)


ENCODERS = {"mlp": Encoder, "conv": ConvEncoder}


def clamp_logits(logits: jax.Array, clamp: float) -> jax.Array:
  """Bernoulli logits whose probabilities lie in [clamp, 1 − clamp] (0: unchanged), i.e. the
  logits clipped to ±log((1 − clamp) / clamp). Like clamping probabilities (the authors'
  code, clamp 0.01), the gradient is 0 outside the range."""
  if clamp == 0:
    return logits
  bound = float(np.log((1.0 - clamp) / clamp))
  return jnp.clip(logits, -bound, bound)


class Decoder(nn.Module):
  """Latents → Bernoulli logits of a 28×28×1 image (probabilities clamped to [c, 1 − c] when
  ``clamp`` = c > 0)."""

  hidden: Sequence[int] = (256, 512)
  clamp: float = 0.0

  @nn.compact
  def __call__(self, z):
    h = z
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    logits = nn.Dense(int(np.prod(IMAGE_SHAPE)))(h).reshape(z.shape[0], *IMAGE_SHAPE)
    return clamp_logits(logits, self.clamp)


class TwoDecoderVAE(nn.Module):
  """One encoder, a digit decoder and a garment decoder sharing the latent space.

  ``encoder_type``: ``"mlp"`` (dense layers ``encoder_hidden``) or ``"conv"`` (two strided
  convolutions, then dense layers ``encoder_hidden``).
  """

  latent_dim: int = 16
  encoder_hidden: Sequence[int] = (512, 256)
  decoder_hidden: Sequence[int] = (256, 512)
  encoder_type: str = "mlp"
  decoder_clamp: float = 0.0  # decoder probabilities in [c, 1 − c]; the authors' code: 0.01

  def setup(self):
    if self.encoder_type not in ENCODERS:
      raise ValueError(
        f"unknown VAE encoder_type {self.encoder_type!r}; choose one of {sorted(ENCODERS)}."
      )
    self.encoder = ENCODERS[self.encoder_type](self.latent_dim, tuple(self.encoder_hidden))
    self.mnist_decoder = Decoder(tuple(self.decoder_hidden), self.decoder_clamp)
    self.fashion_decoder = Decoder(tuple(self.decoder_hidden), self.decoder_clamp)

  def __call__(self, images, key):
    """Returns ``(mean, log_var, mnist_logits, fashion_logits)`` for a sampled z."""
    mean, log_var = self.encoder(images)
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape, mean.dtype)
    return mean, log_var, self.mnist_decoder(z), self.fashion_decoder(z)

  def encode(self, images):
    return self.encoder(images)

  def decode_mnist(self, z):
    return self.mnist_decoder(z)

  def decode_fashion(self, z):
    return self.fashion_decoder(z)


def kl_to_prior(mean: jax.Array, log_var: jax.Array, prior_std: float = 1.0) -> jax.Array:
  """``KL(N(mean, exp(log_var)) ‖ N(0, prior_std² I))`` per example, summed over latents.

  ``½ Σ_j [ (σ_j² + μ_j²) / s² − 1 − log σ_j² + log s² ]``.
  """
  prior_var = prior_std**2
  terms = (jnp.exp(log_var) + jnp.square(mean)) / prior_var - 1.0 - log_var + jnp.log(prior_var)
  return 0.5 * jnp.sum(terms, axis=-1)


def bernoulli_log_likelihood(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """``Σ_pixels [t log σ(l) + (1 − t) log(1 − σ(l))]`` per example; targets in [0, 1]."""
  per_pixel = -optax.sigmoid_binary_cross_entropy(logits, targets)
  return jnp.sum(per_pixel.reshape(per_pixel.shape[0], -1), axis=-1)


def elbo_terms(
  model: TwoDecoderVAE,
  params,
  fashion_images: jax.Array,
  mnist_images: jax.Array,
  key: jax.Array,
  prior_std: float = 1.0,
) -> dict[str, jax.Array]:
  """Per-example ``neg_elbo`` and its terms ``mnist_log_lik``, ``fashion_log_lik``, ``kl``."""
  mean, log_var, mnist_logits, fashion_logits = model.apply(params, fashion_images, key)
  terms = {
    "mnist_log_lik": bernoulli_log_likelihood(mnist_logits, mnist_images),
    "fashion_log_lik": bernoulli_log_likelihood(fashion_logits, fashion_images),
    "kl": kl_to_prior(mean, log_var, prior_std),
  }
  terms["neg_elbo"] = terms["kl"] - terms["mnist_log_lik"] - terms["fashion_log_lik"]
  return terms


def negative_elbo(
  model: TwoDecoderVAE, params, fashion_images, mnist_images, key, prior_std: float = 1.0
) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Mean over the batch of −ELBO (one reparameterized sample), and the batch-mean terms
  (arguments as ``elbo_terms``)."""
  terms = elbo_terms(model, params, fashion_images, mnist_images, key, prior_std)
  means = {k: v.mean() for k, v in terms.items()}
  return means.pop("neg_elbo"), means


def class_index_table(labels: np.ndarray, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """Per class, the indices of its examples (padded with the class's first index) and counts.

  Returns ``table [num_classes, max_count]`` and ``counts [num_classes]``; every class must occur.
  """
  labels = np.asarray(labels)
  per_class = [np.flatnonzero(labels == r) for r in range(num_classes)]
  missing = [r for r, idx in enumerate(per_class) if len(idx) == 0]
  if missing:
    raise ValueError(f"no digit of class(es) {missing} to pair with; pass a full MNIST train set.")
  width = max(len(idx) for idx in per_class)
  table = np.stack([np.pad(idx, (0, width - len(idx)), mode="edge") for idx in per_class])
  return table.astype(np.int32), np.array([len(idx) for idx in per_class], np.int32)


def draw_pairs(key: jax.Array, labels: jax.Array, table: jax.Array, counts: jax.Array) -> jax.Array:
  """For each label r, the index of a uniformly drawn example of class r (fresh per key)."""
  u = jax.random.uniform(key, labels.shape)
  column = jnp.minimum((u * counts[labels]).astype(jnp.int32), counts[labels] - 1)
  return table[labels, column]


def make_phi(model: TwoDecoderVAE, params, *, sample: bool = False):
  """φ_vae(x, key): digit probabilities decoded from the encoder mean (or a sampled z)."""

  def phi(images, key):
    mean, log_var = model.apply(params, images, method=TwoDecoderVAE.encode)
    z = mean
    if sample:
      z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape, mean.dtype)
    return jax.nn.sigmoid(model.apply(params, z, method=TwoDecoderVAE.decode_mnist))

  return phi


def fit_vae(
  model: TwoDecoderVAE,
  *,
  fashion_train: tuple[np.ndarray, np.ndarray],
  fashion_test: tuple[np.ndarray, np.ndarray],
  mnist_train: tuple[np.ndarray, np.ndarray],
  mnist_test: tuple[np.ndarray, np.ndarray],
  seed: int = 0,
  prior_std: float = 1.0,
  checkpoint_every: int = 1,
  **fit_options,
):
  """Trains the VAE with the project's trainer; returns ``train.FitResult`` (one run).

  ``fit_options`` are ``train.fit``'s optimization arguments: ``epochs``, ``batch_size``,
  ``tx``, ``mesh`` (required), ``checkpointer``, ``on_epoch``, ``steps_per_call`` (1 for the
  conv encoder on CPU), ``eval_every``, ``eval_batch_size`` (default: up to 1,000). A
  checkpoint every ``checkpoint_every`` epochs and at the end.

  Every time a garment of class r is visited, a fresh digit of class r is drawn from MNIST train
  as its pair. The test −ELBO uses fixed pairs from MNIST test (drawn once from ``seed``).
  """
  from distill_jax import train  # local: train imports nothing from here

  table, counts = class_index_table(mnist_train[1])
  test_table, test_counts = class_index_table(mnist_test[1])
  test_pairs = draw_pairs(
    jax.random.key(seed + 1), jnp.asarray(fashion_test[1]), test_table, test_counts
  )
  context = {"mnist_images": mnist_train[0], "table": table, "counts": counts}

  def loss_fn(params, batch, key, hparams, context):
    pair_key, z_key = jax.random.split(key)
    pairs = draw_pairs(pair_key, batch["label"], context["table"], context["counts"])
    mnist_images = context["mnist_images"][pairs]
    return negative_elbo(model, params, batch["image"], mnist_images, z_key, prior_std)[0]

  def metrics_fn(params, batch, key):
    return elbo_terms(model, params, batch["image"], batch["pair"], key, prior_std)

  return train.fit(
    name="vae",
    init_fn=lambda key: model.init(key, jnp.zeros((1, *IMAGE_SHAPE)), key),
    loss_fn=loss_fn,
    metrics_fn=metrics_fn,
    train_data={"image": fashion_train[0], "label": fashion_train[1]},
    test_data={"image": fashion_test[0], "pair": mnist_test[0][np.asarray(test_pairs)]},
    run_keys=jax.random.key(seed)[None],
    hparams={},
    context=context,
    checkpoint_every=checkpoint_every,
    **{"eval_batch_size": min(1000, len(fashion_test[1])), **fit_options},
  )


def latent_grid(steps: int = 15, low: float = 0.05, high: float = 0.95) -> np.ndarray:
  """The 2-D grid ``Φ⁻¹(linspace(low, high, steps))²`` as ``[steps², 2]`` (row-major, y down)."""
  values = np.asarray(jax.scipy.stats.norm.ppf(jnp.linspace(low, high, steps)))
  ys, xs = np.meshgrid(values[::-1], values, indexing="ij")
  return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def decode_latent_grid(model: TwoDecoderVAE, params, steps: int = 15) -> dict[str, np.ndarray]:
  """Both decoders' means on the same 2-D latent grid ``latent_grid(steps)``, ``[steps², 28,
  28, 1]`` each, keyed by a title (needs ``latent_dim == 2``)."""
  if model.latent_dim != 2:
    raise ValueError(f"latent grids need latent_dim=2, got {model.latent_dim}.")
  z = jnp.asarray(latent_grid(steps))
  return {
    title: np.asarray(jax.nn.sigmoid(model.apply(params, z, method=method)))
    for title, method in (
      ("MNIST decoder p(m | z)", TwoDecoderVAE.decode_mnist),
      ("Fashion decoder p(x | z)", TwoDecoderVAE.decode_fashion),
    )
  }


def translate(model: TwoDecoderVAE, params, fashion_images: np.ndarray) -> dict[str, np.ndarray]:
  """Garments decoded at their encoder mean by both decoders: φ_vae(x) (digits) and the
  garments' reconstructions, keyed by a title."""
  mean, _ = model.apply(params, jnp.asarray(fashion_images), method=TwoDecoderVAE.encode)
  return {
    title: np.asarray(jax.nn.sigmoid(model.apply(params, mean, method=method)))
    for title, method in (
      ("φ_vae(x): MNIST decoder", TwoDecoderVAE.decode_mnist),
      ("Fashion decoder", TwoDecoderVAE.decode_fashion),
    )
  }
