"""The learned map φ_vae (mappings ``vae``, ``generated``, ``generated_full``): a two-decoder VAE
turns garments into digits (the model and its loss: ``distill_jax/vae.py``).

``build`` trains the VAE of ``config.vae`` on Fashion-MNIST-Big (``vae.train_on = "small"``:
FashionMNIST-Small) paired by class with MNIST train, or reloads it from
``<cache_dir>/vae/<key>``, and writes its figures (translations; a latent grid
from a second, 2-D VAE). For ``generated`` it then makes the talk's GeneratedMNIST (70 draws
z ~ q(z | x) per FashionMNIST-Small image, decoded into digits, split 59,000 / 1,000 / 10,000),
for ``generated_full`` the ablation φ_vae(all of Fashion-MNIST), once each as a tfds dataset
for the teacher (``distill_jax/data/generated.py``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import numpy as np
from absl import logging

from distill_jax import checkpoints
from distill_jax import fingerprints
from distill_jax import data as data_lib
from distill_jax import figures
from distill_jax import optim
from distill_jax import vae as vae_lib
from distill_jax.maps import core
from distill_jax.report import history_to_json

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
  train_on = vc.train_on  # "big" | "small": the garments it learns (paired with MNIST train)
  max_train = config.data.max_big if train_on == "big" else config.data.max_small
  fashion_train = data_lib.subset(fashion[train_on], max_train)
  fashion_test = data_lib.subset(fashion["test"], config.data.max_test)
  mnist_train = tuple(np.concatenate(parts) for parts in zip(mnist["big"], mnist["small"]))
  key_config = {
    "what": "vae",
    "vae": training,
    "train_on": train_on,
    "data": fingerprints.arrays(*fashion_train, *fashion_test, *mnist_train, *mnist["test"]),
  }
  key = checkpoints.config_key(key_config)
  directory = os.path.join(context.cache_dir, "vae", key)
  with checkpoints.Checkpointer(directory, key_config) as checkpointer:
    epochs = training["epochs"]
    reused = checkpointer.latest_epoch() == epochs
    if checkpointer.latest_epoch() is None and (
      changed := checkpoints.why_new(directory, key_config)
    ):
      logging.info("vae: not reusing the cached VAE: %s", changed)
    logging.info(
      "vae: latent %d, trained on %d Fashion-MNIST %s images paired with MNIST train%s",
      training["latent_dim"],
      len(fashion_train.labels),
      train_on.capitalize(),
      " (reusing checkpoint)" if reused else "",
    )

    def log_epoch(epoch, metrics):
      if "test_neg_elbo" in metrics:  # evaluated epochs only (vae.eval_every)
        logging.info("vae epoch %d/%d: test -ELBO %.2f", epoch, epochs, metrics["test_neg_elbo"][0])

    result = vae_lib.fit_vae(
      model,
      fashion_train=fashion_train,
      fashion_test=fashion_test,
      mnist_train=mnist_train,
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
      checkpoint_every=vc.eval_every,
      eval_every=vc.eval_every,
      on_epoch=log_epoch,
      steps_per_call=vc.steps_per_call,
    )
  final = {name: float(values[0, -1]) for name, values in result.history.items()}
  info = {
    "train_on": f"fashion_mnist {train_on.capitalize()} ({len(fashion_train.labels)} garments)",
    "latent_dim": training["latent_dim"],
    **{name: final[name] for name in ("test_neg_elbo", "test_kl")},
    **{name: final[name] for name in ("test_mnist_log_lik", "test_fashion_log_lik")},
    "reused_checkpoint": bool(reused),
    "train_seconds": result.seconds,
    "checkpoint": checkpointer.directory,
    # per epoch (null: not evaluated): the VAE's curves, e.g. for TensorBoard
    "history": {name: history_to_json(values)[0] for name, values in result.history.items()},
  }
  params = jax.tree.map(lambda leaf: leaf[0], result.params)
  return TrainedVAE(model=model, params=params, key=key, info=info)


def _plain(value):
  """A config value as JSON-able plain data (tuples → lists, ConfigDicts → dicts)."""
  if hasattr(value, "to_dict"):
    return value.to_dict()
  return list(value) if isinstance(value, tuple) else value


# The two GeneratedMNIST recipes, by ``config.mapping`` (``distill_jax/data/generated.py``).
RECIPES = {"generated": "small", "generated_full": "full"}


def generated_mnist(config, trained: TrainedVAE, phi: core.Map, context: core.MapContext):
  """GeneratedMNIST for this VAE and ``config.mapping``'s recipe: prepared once in ``tfds_dir``
  (keyed by the VAE and the recipe's settings), then read back.

  Returns ``(name, splits, info)``: the tfds builder config name, big / small / test, and
  facts for ``results.json``.
  """
  if RECIPES[config.mapping] == "small":
    name, generate, split_sizes, info = _from_small(config, trained, context)
  else:
    name, generate, split_sizes, info = _translate_all(config, trained, phi, context)
  splits = data_lib.load_generated_mnist(
    name, generate=generate, tfds_dir=context.tfds_dir, split_sizes=split_sizes
  )
  return name, splits, {"generated_mnist": name, **info}


def _from_small(config, trained: TrainedVAE, context: core.MapContext):
  """The talk's recipe: ``generated.samples_per_image`` independent draws z ~ q(z | x) per
  image of FashionMNIST-Small (the students' Small: ``data.max_small`` applies), decoded by the
  MNIST decoder, shuffled by ``generated.seed`` and split into ``generated.split``."""
  gc = config.generated
  fashion = context.load("fashion_mnist")
  small = fashion["small"]
  positions = data_lib.subset_positions(len(small.labels), config.data.max_small)
  positions = np.arange(len(small.labels)) if positions is None else positions
  source_index = len(fashion["big"].labels) + positions  # into Fashion's 70,000 (file order)
  split_sizes = tuple(int(size) for size in gc.split)
  recipe = {
    "recipe": "small",
    "samples_per_image": int(gc.samples_per_image),
    "pixels": gc.pixels,
    "split": list(split_sizes),
    "seed": int(gc.seed),
    "source_index": checkpoints.config_key(source_index.tolist()),
  }
  name = f"vae_{trained.key}_small_{checkpoints.config_key(recipe)[:12]}"
  sampler = vae_map(trained.model, trained.params, sample=True)
  draw_key, pixel_key = jax.random.split(jax.random.key(gc.seed))
  small_images, small_labels = small.images[positions], small.labels[positions]

  def draw_digits(j: int) -> np.ndarray:
    probabilities = sampler.map_array(small_images, jax.random.fold_in(draw_key, j))
    if gc.pixels == "bernoulli":  # binary pixels: a sample of the decoder's Bernoulli
      on = jax.random.bernoulli(jax.random.fold_in(pixel_key, j), probabilities)
      return np.asarray(on, np.uint8) * np.uint8(255)
    return data_lib.to_uint8(probabilities)

  def generate():
    logging.info(
      "GeneratedMNIST: %d draws z ~ q(z|x) for each of %d FashionMNIST-Small images (%s pixels)",
      gc.samples_per_image,
      len(positions),
      gc.pixels,
    )
    return data_lib.expand_small(
      draw_digits,
      small_labels,
      source_index,
      samples_per_image=gc.samples_per_image,
      split=split_sizes,
      seed=gc.seed,
    )

  info = {
    "generated_from": f"FashionMNIST-Small ({len(positions):,} images)",
    "generated_samples_per_image": int(gc.samples_per_image),
    "generated_pixels": gc.pixels,
  }
  return name, generate, split_sizes, info


def _translate_all(config, trained: TrainedVAE, phi: core.Map, context: core.MapContext):
  """The ablation: φ_vae of all of Fashion-MNIST (train = Big + Small in file order, and test),
  one digit per garment; a sampled φ draws from ``jax.random.key(vae.seed)``."""
  mode = "sampled" if phi.stochastic else "mean"

  def generate():
    logging.info("GeneratedMNIST: translating 70,000 Fashion-MNIST images with φ_vae (%s)", mode)
    fashion = context.load("fashion_mnist")
    key = jax.random.key(config.vae.seed)
    big, small, test = fashion["big"], fashion["small"], fashion["test"]
    train_images = np.concatenate([big.images, small.images])
    train_labels = np.concatenate([big.labels, small.labels])
    num_train = len(train_labels)
    test_images = phi.map_array(test.images, jax.random.fold_in(key, 1))
    return {
      "train": data_lib.GeneratedSplit(
        images=data_lib.to_uint8(phi.map_array(train_images, key)),
        labels=train_labels,
        source_index=np.arange(num_train),
        draw=np.zeros(num_train, np.int64),
      ),
      "test": data_lib.GeneratedSplit(
        images=data_lib.to_uint8(test_images),
        labels=test.labels,
        source_index=num_train + np.arange(len(test.labels)),
        draw=np.zeros(len(test.labels), np.int64),
      ),
    }

  split_sizes = tuple(data_lib.IDX_SPLIT_SIZES[split] for split in data_lib.SPLIT_NAMES)
  info = {"generated_from": "all of Fashion-MNIST (70,000 images)"}
  return f"vae_{trained.key}_{mode}", generate, split_sizes, info


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
  info, source, source_key = dict(trained.info), None, None
  if config.mapping in RECIPES:
    source_key, source, generated_info = generated_mnist(config, trained, phi, context)
    info.update(generated_info)
  return core.BuiltMap(
    phi=phi,
    key=trained.key,
    info=info,
    figures=tuple(paths),
    source_splits=source,
    source_key=source_key,
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
  if vc.train_on not in ("big", "small"):
    raise ValueError(
      f"unknown vae.train_on {vc.train_on!r}: 'big' (Fashion-MNIST-Big's garments) or 'small' "
      "(only FashionMNIST-Small's, the students' own)."
    )
  if vc.eval_every < 1:
    raise ValueError(
      f"vae.eval_every must be >= 1 (epochs between evaluations), got {vc.eval_every}."
    )
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
  if (config.mapping in RECIPES) != (config.source_dataset == data_lib.GENERATED_MNIST):
    raise ValueError(
      f"mapping {config.mapping!r} with source_dataset {config.source_dataset!r}: the teacher "
      "learns GeneratedMNIST (source_dataset='generated_mnist') exactly when the mapping is "
      "'generated' (the talk's, from FashionMNIST-Small) or 'generated_full' (the ablation); "
      "run those with --mapping=generated or --mapping=generated_full."
    )
  if RECIPES.get(config.mapping) == "small":
    _validate_generated(config)


def _validate_generated(config) -> None:
  """The ``generated`` section: the talk's GeneratedMNIST recipe."""
  if "generated" not in config:
    raise ValueError(
      "mapping 'generated' needs the config's 'generated' section (samples_per_image, pixels, "
      "split, seed); start from experiments/configs/generated.py (--mapping=generated)."
    )
  gc = config.generated
  count = gc.samples_per_image
  if isinstance(count, bool) or not isinstance(count, int) or count < 1:
    raise ValueError(f"generated.samples_per_image must be an int >= 1, got {count!r}.")
  if gc.pixels not in data_lib.PIXELS:
    raise ValueError(
      f"unknown generated.pixels {gc.pixels!r}; choose one of {', '.join(data_lib.PIXELS)} "
      "(mean: the decoder's probabilities as grey levels; bernoulli: a 0/255 sample of them)."
    )
  split = tuple(gc.split)
  if len(split) != 3 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in split):
    raise ValueError(
      f"generated.split must be three ints >= 1 (big, small, test), got {gc.split!r}."
    )
  small = data_lib.IDX_SPLIT_SIZES["small"]
  if config.data.max_small is not None:
    small = min(small, config.data.max_small)
  if sum(split) != small * count:
    raise ValueError(
      f"generated.split {split} holds {sum(split):,} images, but FashionMNIST-Small "
      f"({small:,} images) × generated.samples_per_image ({count}) makes {small * count:,}; "
      f"set --config.generated.split to three sizes adding up to {small * count:,} (the talk: "
      f"{data_lib.TALK_SPLIT} for 1,000 × 70)."
    )


FAMILY = core.MapFamily(
  names=("generated", "generated_full", "vae"), build=build, validate=validate
)
