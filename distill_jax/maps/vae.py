"""The learned map φ_vae (mappings ``vae`` and ``generated``): a two-decoder VAE turns garments
into digits (the model and its loss: ``distill_jax/vae.py``).

``build`` trains the VAE of ``config.vae`` on Fashion-MNIST-Big paired by class with MNIST train,
or reloads it from ``<cache_dir>/vae/<key>``, writes its figures (translations; a latent grid
from a second, 2-D VAE), and, when ``config.source_dataset`` is ``generated_mnist``, makes
GeneratedMNIST = φ_vae(Fashion-MNIST) once as a tfds dataset for the teacher.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np
from absl import logging

from distill_jax import checkpoints
from distill_jax import data as data_lib
from distill_jax import figures
from distill_jax import optim
from distill_jax import vae as vae_lib
from distill_jax.maps import core

# The settings that change the VAE's training (``sample`` only changes how φ reads it).
TRAINING_FIELDS = (
  "encoder_type",
  "decoder_clamp",
  "latent_dim",
  "encoder_hidden",
  "decoder_hidden",
  "epochs",
  "batch_size",
  "optimizer",
  "prior_std",
  "seed",
)


def vae_map(model: vae_lib.TwoDecoderVAE, params, sample: bool = False) -> core.Map:
  """φ_vae: garments → digit probabilities from a trained two-decoder VAE; deterministic
  (decoded at the encoder mean) unless ``sample``, which decodes a sampled z."""
  return core.Map("vae", vae_lib.make_phi(model, params, sample=sample), stochastic=sample)


@dataclasses.dataclass(frozen=True)
class TrainedVAE:
  model: vae_lib.TwoDecoderVAE
  params: Any
  key: str  # its checkpoint key: names φ_vae in the teacher's and students' keys
  info: dict


def fit(config, context: core.MapContext, *, figure: bool = False) -> TrainedVAE:
  """Trains (or reloads from ``<cache_dir>/vae/<key>``) the VAE of ``config.vae``.

  ``figure``: the VAE of the latent-grid figure instead (``figure_latent_dim``,
  ``figure_epochs``).
  """
  vc = config.vae
  training = {name: _plain(vc[name]) for name in TRAINING_FIELDS}
  if figure:
    training.update(latent_dim=vc.figure_latent_dim, epochs=vc.figure_epochs)
  model = vae_lib.TwoDecoderVAE(
    latent_dim=training["latent_dim"],
    encoder_hidden=tuple(vc.encoder_hidden),
    decoder_hidden=tuple(vc.decoder_hidden),
    encoder_type=vc.encoder_type,
    decoder_clamp=float(vc.decoder_clamp),
  )
  fashion, mnist = context.load("fashion_mnist"), context.load("mnist")
  fashion_train = data_lib.subset(fashion["big"], config.data.max_big)
  fashion_test = data_lib.subset(fashion["test"], config.data.max_test)
  key_config = {
    "what": "vae",
    "vae": training,
    "num_train": len(fashion_train.labels),
    "num_test": len(fashion_test.labels),
  }
  key = checkpoints.config_key(key_config)
  checkpointer = checkpoints.Checkpointer(os.path.join(context.cache_dir, "vae", key), key_config)
  epochs = training["epochs"]
  reused = checkpointer.latest_epoch() == epochs
  logging.info(
    "vae: latent %d, trained on %d Fashion-MNIST Big images paired with MNIST train%s",
    training["latent_dim"],
    len(fashion_train.labels),
    " (reusing checkpoint)" if reused else "",
  )
  result = vae_lib.fit_vae(
    model,
    fashion_train=fashion_train,
    fashion_test=fashion_test,
    mnist_train=tuple(np.concatenate(parts) for parts in zip(mnist["big"], mnist["small"])),
    mnist_test=mnist["test"],
    epochs=epochs,
    batch_size=vc.batch_size,
    tx=optim.make_optimizer(
      vc.optimizer, steps_per_epoch=len(fashion_train.labels) // vc.batch_size, epochs=epochs
    ),
    mesh=context.mesh,
    seed=vc.seed,
    prior_std=vc.prior_std,
    checkpointer=checkpointer,
    on_epoch=lambda epoch, metrics: logging.info(
      "vae epoch %d/%d: test -ELBO %.2f", epoch, epochs, metrics["test_neg_elbo"][0]
    ),
    steps_per_call=vc.steps_per_call,
  )
  checkpointer.close()
  final = {name: float(values[0, -1]) for name, values in result.history.items()}
  info = {
    "latent_dim": training["latent_dim"],
    **{name: final[name] for name in ("test_neg_elbo", "test_kl")},
    **{name: final[name] for name in ("test_mnist_log_lik", "test_fashion_log_lik")},
    "reused_checkpoint": bool(reused),
    "train_seconds": result.seconds,
    "checkpoint": checkpointer.directory,
  }
  params = jax.tree.map(lambda leaf: leaf[0], result.params)
  return TrainedVAE(model=model, params=params, key=key, info=info)


def _plain(value):
  """A config value as JSON-able plain data (tuples → lists, ConfigDicts → dicts)."""
  if hasattr(value, "to_dict"):
    return value.to_dict()
  return list(value) if isinstance(value, tuple) else value


def generated_mnist(config, phi: core.Map, vae_key: str, context: core.MapContext):
  """GeneratedMNIST for this φ_vae: prepared once in ``tfds_dir``, then read back.

  φ_vae translates all of Fashion-MNIST (train = Big + Small in file order, and test); a
  sampled φ draws from ``jax.random.key(vae.seed)``, so a VAE checkpoint gives one dataset.
  """
  mode = "sampled" if phi.stochastic else "mean"

  def translate():
    logging.info("GeneratedMNIST: translating 70,000 Fashion-MNIST images with φ_vae (%s)", mode)
    fashion = context.load("fashion_mnist")
    key = jax.random.key(config.vae.seed)
    big, small, test = fashion["big"], fashion["small"], fashion["test"]
    train_images = np.concatenate([big.images, small.images])
    train_labels = np.concatenate([big.labels, small.labels])
    test_images = phi.map_array(test.images, jax.random.fold_in(key, 1))
    return {
      "train": (data_lib.to_uint8(phi.map_array(train_images, key)), train_labels),
      "test": (data_lib.to_uint8(test_images), test.labels),
    }

  return data_lib.load_generated_mnist(
    f"vae_{vae_key}_{mode}", translate=translate, tfds_dir=context.tfds_dir
  )


def build(config, datasets, context: core.MapContext) -> core.BuiltMap:
  del datasets  # the VAE learns whole Fashion-MNIST / MNIST splits from context.load
  trained = fit(config, context)
  phi = vae_map(trained.model, trained.params, sample=config.vae.sample)
  paths = [os.path.join(context.workdir, "vae_translations.png")]
  images, labels = context.load("fashion_mnist")["test"]
  two_per_class = np.concatenate([np.flatnonzero(labels == r)[:2] for r in range(10)])
  figures.vae_translations(trained.model, trained.params, images[two_per_class], paths[0])
  if config.vae.figure_latent_dim:
    grid_vae = fit(config, context, figure=True)
    paths.append(os.path.join(context.workdir, "vae_latent_grid.png"))
    figures.vae_latent_grids(grid_vae.model, grid_vae.params, paths[-1])
  source = None
  if config.source_dataset == data_lib.GENERATED_MNIST:
    source = generated_mnist(config, phi, trained.key, context)
  return core.BuiltMap(
    phi=phi, key=trained.key, info=trained.info, figures=tuple(paths), source_splits=source
  )


def validate(config) -> None:
  """The ``vae`` section, and what GeneratedMNIST needs."""
  vc = config.vae
  if min(vc.latent_dim, vc.epochs, vc.figure_epochs, vc.batch_size) < 1:
    raise ValueError(
      "vae: latent_dim, epochs, figure_epochs and batch_size must be >= 1; got "
      f"{vc.latent_dim}, {vc.epochs}, {vc.figure_epochs}, {vc.batch_size}."
    )
  optim.validate_optimizer(vc.optimizer, "vae.optimizer")
  if vc.encoder_type not in vae_lib.ENCODERS:
    raise ValueError(
      f"unknown vae.encoder_type {vc.encoder_type!r}; choose one of "
      f"{', '.join(sorted(vae_lib.ENCODERS))}."
    )
  if vc.steps_per_call is not None and vc.steps_per_call < 1:
    raise ValueError(f"vae.steps_per_call must be >= 1 or None, got {vc.steps_per_call}.")
  if not vc.prior_std > 0:
    raise ValueError(f"vae.prior_std must be > 0, got {vc.prior_std}.")
  if not 0 <= vc.decoder_clamp < 0.5:
    raise ValueError(
      f"vae.decoder_clamp must be in [0, 0.5) (decoder probabilities in [c, 1 - c]; 0: off; "
      f"the authors' code: 0.01), got {vc.decoder_clamp}."
    )
  if vc.figure_latent_dim not in (0, 2):
    raise ValueError(
      f"vae.figure_latent_dim must be 2 (draw the latent grid) or 0 (skip it), got "
      f"{vc.figure_latent_dim}."
    )
  if config.target_dataset != "fashion_mnist":
    raise ValueError(
      f"φ_vae translates Fashion-MNIST: target_dataset must be 'fashion_mnist', got "
      f"{config.target_dataset!r}."
    )


FAMILY = core.MapFamily(names=("generated", "vae"), build=build, validate=validate)
