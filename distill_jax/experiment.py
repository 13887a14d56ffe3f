"""One distillation experiment, end to end: data → teacher → soft targets → students → report.

``run_experiment(config, workdir, data_dir=..., tfds_dir=..., cache_dir=...)`` is what
``experiments/distill.py`` calls. The flow:

1. Load the source set (Big, Test) and the target set (Small, Test) as arrays.
2. A learned φ (``vae``) is trained first, or reused from ``<cache_dir>/vae/<key>``, and its
   figures are written; for ``generated`` the source set GeneratedMNIST = φ_vae(Fashion-MNIST)
   is made once as a tfds dataset. Teacher ``f`` fit on φ(source Big) (or on source Big as is,
   ``teacher.train_on="source"``) — or reused from ``<cache_dir>/teachers/<key>`` when trained
   before with the same config.
3. Soft targets of the Small set, per arm: ``f(φ(x))`` (``teacher_phi``) and ``f(x)``
   (``teacher``); precomputed once when φ is deterministic, drawn per batch when it is not.
4. Students: per arm, all seeds × λ × T in one vmapped program; each arm resumes from
   ``<workdir>/students/<key>`` if interrupted.
5. ``results.json``, ``results.md`` and figures in ``workdir``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import os
import shutil
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from distill_jax import data as data_lib
from distill_jax import losses
from distill_jax import maps
from distill_jax import models
from distill_jax import parallel
from distill_jax import report
from distill_jax import train
from distill_jax import style as style_lib
from distill_jax import vae as vae_lib
from distill_jax import vgg as vgg_lib
from distill_jax.checkpoints import Checkpointer, config_key


IMAGENETTE = "imagenette"
# Datasets the students can learn (and a teacher can learn from); GeneratedMNIST below is a
# source set only.
TARGET_DATASETS = (*data_lib.DATASETS, IMAGENETTE)


def image_shape(config, dataset: str) -> tuple[int, int, int]:
  """The (H, W, C) of a dataset's images: 28×28×1, or Imagenette at ``data.image_size``."""
  if dataset == IMAGENETTE:
    return (config.data.image_size, config.data.image_size, 3)
  return (28, 28, 1)


# Source set made by the experiment itself: Fashion-MNIST translated into digits by φ_vae.
GENERATED_MNIST = "generated_mnist"

# ``config.mapping`` names a map φ of the registry or one of these experiments, which use a
# registered map with other defaults: "generated" = φ_vae with the teacher on GeneratedMNIST.
EXPERIMENT_MAPPINGS = {"generated": "vae"}


def mapping_names() -> tuple[str, ...]:
  """Every valid ``config.mapping`` (the CLI's ``--mapping`` values)."""
  return tuple(sorted(set(maps.map_names()) | set(EXPERIMENT_MAPPINGS)))


def phi_name(mapping: str) -> str:
  """The registered map φ an experiment mapping uses."""
  return EXPERIMENT_MAPPINGS.get(mapping, mapping)


def resolve_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy with the values the config leaves to the mapping (``None``) filled in.

  ``target_dataset``: ``imagenette`` for ``style``, else ``fashion_mnist``. ``source_dataset``:
  ``generated_mnist`` for ``generated``, ``mnist`` for ``vae`` (the teacher learns real digits),
  else the target dataset. ``teacher.train_on``: ``source`` for ``vae`` and ``generated`` (their
  source set is already digits), else ``phi``. Models: on Imagenette a ``cnn`` teacher and
  student, else an ``mlp`` teacher and a ``linear`` student. Explicit values are kept.
  """
  resolved = ml_collections.ConfigDict(config.to_dict())
  learned = phi_name(config.mapping) in maps.LEARNED_MAPS
  if resolved.target_dataset is None:
    resolved.target_dataset = IMAGENETTE if config.mapping == "style" else "fashion_mnist"
  images = resolved.target_dataset == IMAGENETTE
  if resolved.teacher.model is None:
    resolved.teacher.model = "cnn" if images else "mlp"
  if resolved.student.model is None:
    resolved.student.model = "cnn" if images else "linear"
  if resolved.source_dataset is None:
    resolved.source_dataset = {"generated": GENERATED_MNIST, "vae": "mnist"}.get(
      config.mapping, resolved.target_dataset
    )
  if resolved.teacher.train_on is None:
    resolved.teacher.train_on = "source" if learned else "phi"
  return resolved


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ValueError naming the bad value and the fix, before any work starts.

  Values left to the mapping (``None``) are checked as ``resolve_config`` fills them in.
  """
  config = resolve_config(config)
  if config.mapping not in mapping_names():
    raise ValueError(
      f"unknown mapping {config.mapping!r}; choose one of {', '.join(mapping_names())}."
    )
  if config.target_dataset not in TARGET_DATASETS:
    raise ValueError(
      f"unknown target dataset {config.target_dataset!r}; choose one of "
      f"{', '.join(TARGET_DATASETS)}."
    )
  sources = (*TARGET_DATASETS, GENERATED_MNIST)
  if config.source_dataset not in sources:
    raise ValueError(
      f"unknown source dataset {config.source_dataset!r}; choose one of {', '.join(sources)}."
    )
  if config.source_dataset == GENERATED_MNIST and (
    phi_name(config.mapping) != "vae" or config.target_dataset != "fashion_mnist"
  ):
    raise ValueError(
      "source_dataset='generated_mnist' is made by φ_vae from Fashion-MNIST: it needs "
      "mapping 'vae' or 'generated' and target_dataset 'fashion_mnist'."
    )
  if not config.lams or not config.temperatures:
    raise ValueError("lams and temperatures need at least one value each.")
  for lam in config.lams:
    losses.check_lam_temperature(float(lam), 1.0)
  for temperature in config.temperatures:
    losses.check_lam_temperature(0.0, float(temperature))
  if config.seeds < 1:
    raise ValueError(f"seeds must be >= 1, got {config.seeds}.")
  if config.checkpoint_every < 1 or config.eval_batch_size < 1:
    raise ValueError(
      f"checkpoint_every and eval_batch_size must be >= 1; got {config.checkpoint_every}, "
      f"{config.eval_batch_size}."
    )
  if phi_name(config.mapping) in maps.LEARNED_MAPS:
    vc = config.vae
    if (
      min(vc.latent_dim, vc.epochs, vc.figure_epochs, vc.batch_size) < 1 or not vc.learning_rate > 0
    ):
      raise ValueError(
        "vae: latent_dim, epochs, figure_epochs and batch_size must be >= 1 and learning_rate "
        f"> 0; got {vc.latent_dim}, {vc.epochs}, {vc.figure_epochs}, {vc.batch_size}, "
        f"{vc.learning_rate}."
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
    if vc.figure_latent_dim not in (0, 2):
      raise ValueError(
        f"vae.figure_latent_dim must be 2 (draw the latent grid) or 0 (skip it), got "
        f"{vc.figure_latent_dim}."
      )
  if phi_name(config.mapping) == "style":
    _validate_style(config)
  if config.teacher.train_on not in ("phi", "source"):
    raise ValueError(
      f"teacher.train_on must be 'phi' (train on φ(source Big)) or 'source' (on source Big as "
      f"is), got {config.teacher.train_on!r}."
    )
  if IMAGENETTE in (config.source_dataset, config.target_dataset):
    if config.source_dataset != config.target_dataset:
      raise ValueError(
        "Imagenette experiments use Imagenette as both source and target set (Big / Small); "
        f"got source {config.source_dataset!r} and target {config.target_dataset!r}."
      )
    if not isinstance(config.data.image_size, int) or config.data.image_size < 8:
      raise ValueError(
        f"data.image_size must be an int >= 8 (pixels per side), got {config.data.image_size!r}."
      )
  target_shape = image_shape(config, config.target_dataset)
  if phi_name(config.mapping) in maps.BUILT_MAPS:  # built later; keeps the shape
    mapped_shape = target_shape
  else:
    mapped_shape = maps.get_map(config.mapping, **_map_options(config)).output_shape(target_shape)
  if config.teacher.train_on == "source" and mapped_shape != target_shape:
    raise ValueError(
      f"a teacher trained on raw source images ({target_shape}) cannot read φ(x) of shape "
      f"{mapped_shape} for mapping {config.mapping!r}; use teacher.train_on='phi'."
    )
  for part in ("teacher", "student"):
    c = config[part]
    if c.model not in models.MODEL_NAMES:
      raise ValueError(
        f"unknown {part} model {c.model!r}; choose one of {', '.join(models.MODEL_NAMES)}."
      )
    if c.epochs < 1 or c.batch_size < 1 or not c.learning_rate > 0:
      raise ValueError(
        f"{part}: epochs and batch_size must be >= 1 and learning_rate > 0; "
        f"got {c.epochs}, {c.batch_size}, {c.learning_rate}."
      )
    if c.steps_per_call is not None and c.steps_per_call < 1:
      raise ValueError(f"{part}.steps_per_call must be >= 1 or None, got {c.steps_per_call}.")
    if c.eval_every < 1:
      raise ValueError(
        f"{part}.eval_every must be >= 1 (evaluate after every k-th epoch), got {c.eval_every}."
      )
  if config.teacher.eval_size is not None and config.teacher.eval_size < 1:
    raise ValueError(
      f"teacher.eval_size must be >= 1 or None (all test images), got {config.teacher.eval_size}."
    )


def _validate_style(config) -> None:
  sc = config.style
  if sc.weights and not os.path.isfile(sc.weights):
    raise ValueError(
      f"style.weights: no file {sc.weights!r}; give a VGG-19 weights file (torchvision vgg19 "
      "state dict .pth, Keras vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5, or .npz) or "
      "'' for random weights (ranVGG)."
    )
  if sc.weights and os.path.splitext(sc.weights)[1].lower() not in vgg_lib.WEIGHT_EXTENSIONS:
    raise ValueError(
      f"style.weights: {sc.weights!r} has none of the extensions "
      f"{', '.join(vgg_lib.WEIGHT_EXTENSIONS)}; rename it after its format (torchvision state "
      "dict .pth, Keras .h5, vgg.save_npz .npz) or pass '' for random weights (ranVGG)."
    )
  from PIL import Image

  for path in style_image_paths(config):
    if not os.path.isfile(path):
      raise ValueError(
        f"style.style_image: no file {path!r}; give an image file, several separated by "
        "commas, or '' for the default generated style image."
      )
    try:
      with Image.open(path) as image:
        image.verify()
    except Exception as error:  # PIL raises many types for unreadable files
      raise ValueError(
        f"style.style_image: cannot read {path!r} as an image ({type(error).__name__}: "
        f"{error}); give a PNG or JPEG file."
      ) from error
  if not isinstance(sc.steps, int) or sc.steps < 0 or sc.batch_size < 1:
    raise ValueError(
      f"style: steps must be an int >= 0 and batch_size >= 1; got {sc.steps}, {sc.batch_size}."
    )
  if not sc.learning_rate > 0 or sc.content_weight < 0 or sc.style_weight < 0:
    raise ValueError(
      "style: learning_rate must be > 0 and the content / style weights >= 0; got "
      f"{sc.learning_rate}, {sc.content_weight}, {sc.style_weight}."
    )
  if sc.loop not in style_lib.LOOPS:
    raise ValueError(f"style.loop must be one of {', '.join(style_lib.LOOPS)}, got {sc.loop!r}.")
  if sc.pool not in ("avg", "max"):
    raise ValueError(f"style.pool must be 'avg' or 'max', got {sc.pool!r}.")
  vgg_lib.check_layers(tuple(sc.content_layers) + tuple(sc.style_layers))
  if config.target_dataset != IMAGENETTE:
    raise ValueError(
      f"mapping 'style' is for RGB images: target_dataset must be 'imagenette', got "
      f"{config.target_dataset!r}."
    )


def _map_options(config) -> dict:
  options = config.maps.get(config.mapping, {})
  return dict(options.to_dict() if hasattr(options, "to_dict") else options)


def _subset(split: tuple[np.ndarray, np.ndarray], size: int | None, seed: int = 0):
  """``size`` examples of ``split`` chosen by a seeded permutation, in their original order
  (all of it when ``size`` is None or not smaller); ``data.subset_positions``."""
  images, labels = split
  chosen = data_lib.subset_positions(len(labels), size, seed)
  return (images, labels) if chosen is None else (images[chosen], labels[chosen])


def _training_settings(part_config) -> dict:
  """A teacher's / students' settings that change results (checkpoint keys): all but
  ``steps_per_call`` and ``eval_every``, which only change how epochs are dispatched and how
  often they are scored, not the parameters."""
  return {
    k: v for k, v in part_config.to_dict().items() if k not in ("steps_per_call", "eval_every")
  }


def _steps_per_call(part_config) -> int | None:
  """``steps_per_call`` as configured; ``None`` means 1 for a CNN on CPU (XLA runs convolutions
  inside a scanned epoch several times slower there), else the whole epoch in one program."""
  if part_config.steps_per_call is not None:
    return part_config.steps_per_call
  return 1 if part_config.model == "cnn" and jax.default_backend() == "cpu" else None


def _layers(part_config) -> tuple:
  """Widths that describe the model: conv features + dense for a cnn, else the hidden widths."""
  if part_config.model == "cnn":
    return (*part_config.features, part_config.dense)
  return tuple(part_config.hidden)


def _build_model(part_config):
  return models.get_model(
    part_config.model,
    hidden=part_config.hidden,
    features=part_config.features,
    dense=part_config.dense,
    global_pool=part_config.global_pool,
  )


def _init_fn(model, input_shape):
  return lambda key: model.init(key, jnp.zeros((1, *input_shape), jnp.float32))


def _map_array(
  phi: maps.Map, images: np.ndarray, key: jax.Array, cache_dir: str | None = None
) -> np.ndarray:
  """φ applied to a whole array in chunks of ``phi.chunk_size``; a stochastic φ draws once,
  from ``key``.

  A φ with a ``cache_key`` (expensive and deterministic, e.g. style transfer) is computed once
  per input array and kept in ``<cache_dir>/phi/<cache_key>/<hash of the images>.npy``, with
  progress logged while it runs; an interrupted run keeps the chunks already done.
  """
  fn = jax.jit(phi.fn) if phi.jittable else phi.fn
  size = phi.chunk_size
  cached = phi.cache_key is not None and cache_dir is not None and not phi.stochastic
  if not cached:
    return np.concatenate(
      [
        np.asarray(fn(jnp.asarray(images[i : i + size]), jax.random.fold_in(key, i)))
        for i in range(0, len(images), size)
      ]
    )
  digest = hashlib.sha256(np.ascontiguousarray(images).view(np.uint8)).hexdigest()[:16]
  digest += f"_{len(images)}x{'x'.join(map(str, images.shape[1:]))}"
  folder = os.path.join(cache_dir, "phi", phi.cache_key)
  path = os.path.join(folder, digest + ".npy")
  if os.path.exists(path):
    logging.info("φ(%s): reusing %d mapped images from %s", phi.name, len(images), path)
    return np.load(path)
  parts_folder = os.path.join(folder, digest + ".parts")
  os.makedirs(parts_folder, exist_ok=True)
  started, chunks = time.perf_counter(), []
  for i in range(0, len(images), size):
    part = os.path.join(parts_folder, f"{i:09d}.npy")
    if os.path.exists(part):
      chunks.append(np.load(part))
      continue
    chunks.append(np.asarray(fn(jnp.asarray(images[i : i + size]), jax.random.fold_in(key, i))))
    np.save(part + ".tmp.npy", chunks[-1])
    os.replace(part + ".tmp.npy", part)
    done = min(i + size, len(images))
    logging.info(
      "φ(%s): %d/%d images mapped (%.0fs)",
      phi.name,
      done,
      len(images),
      time.perf_counter() - started,
    )
  mapped = np.concatenate(chunks)
  np.save(path + ".tmp.npy", mapped)
  os.replace(path + ".tmp.npy", path)
  shutil.rmtree(parts_folder, ignore_errors=True)
  return mapped


def fit_teacher(
  config, phi, big, test, mesh, cache_dir, on_epoch=None, phi_key=None
) -> tuple[Any, dict]:
  """Trains (or reloads) the teacher on φ(Big) (or on Big as is when ``teacher.train_on`` is
  ``"source"``) and reports its test metrics on the test set seen the same way.

  The checkpoint lives in ``<cache_dir>/teachers/<key>``, ``key`` a hash of everything the
  teacher depends on (φ only when it is trained through φ or on GeneratedMNIST).

  ``on_epoch(epoch, metrics)``, if given, is called after each epoch (after the progress log).
  """
  tc = config.teacher
  if tc.train_on == "source":
    phi = maps.identity_map()
  teacher = _build_model(tc)
  images, labels = big
  source_shape = phi.output_shape(images.shape[1:])
  mapped_test = _map_array(phi, test[0], jax.random.key(10_000 + tc.seed), cache_dir)

  if not phi.stochastic:  # the source set S = φ(Big), computed once instead of every step
    images = _map_array(phi, images, jax.random.key(0), cache_dir)

  def loss_fn(params, batch, key, hparams, context):
    source_images = phi(batch["image"], key) if phi.stochastic else batch["image"]
    return jnp.mean(losses.cross_entropy(teacher.apply(params, source_images), batch["label"]))

  through_phi = tc.train_on == "phi"
  key_config = {
    "what": "teacher",
    "dataset": config.source_dataset,
    "mapping": config.mapping if through_phi else None,
    "phi_key": phi_key if through_phi or config.source_dataset == GENERATED_MNIST else None,
    "map_options": _map_options(config) if through_phi else None,
    "teacher": _training_settings(tc),
    "num_train": len(labels),
    "num_test": len(test[1]),
  }
  checkpointer = Checkpointer(
    os.path.join(cache_dir, "teachers", config_key(key_config)), key_config
  )
  reused = checkpointer.latest_epoch() == tc.epochs

  def seen(what):
    return f"phi({what})" if through_phi else what

  logging.info(
    "teacher: %s %s on %s, %d examples%s",
    tc.model,
    _layers(tc),
    seen(f"{config.source_dataset} Big"),
    len(labels),
    " (reusing checkpoint)" if reused else "",
  )

  def log_epoch(epoch, metrics):
    if "test_accuracy" not in metrics:
      logging.info(
        "teacher epoch %d/%d: train loss %.4f", epoch, tc.epochs, metrics["train_loss"][0]
      )
      return
    logging.info(
      "teacher epoch %d/%d: train loss %.4f, test accuracy on %s %.4f",
      epoch,
      tc.epochs,
      metrics["train_loss"][0],
      seen(f"{config.source_dataset} test"),
      metrics["test_accuracy"][0],
    )

  result = train.fit(
    name="teacher",
    init_fn=_init_fn(teacher, source_shape),
    loss_fn=loss_fn,
    metrics_fn=train.classification_metrics(teacher.apply),
    train_data={"image": images, "label": labels},
    test_data={"image": mapped_test, "label": test[1]},
    run_keys=jax.random.key(tc.seed)[None],
    hparams={},
    epochs=tc.epochs,
    batch_size=tc.batch_size,
    learning_rate=tc.learning_rate,
    mesh=mesh,
    eval_batch_size=config.eval_batch_size,
    checkpointer=checkpointer,
    checkpoint_every=1,
    on_epoch=_chain(log_epoch, on_epoch),
    steps_per_call=_steps_per_call(tc),
    eval_every=tc.eval_every,
  )
  checkpointer.close()
  params = jax.tree.map(lambda leaf: leaf[0], result.params)
  info = {
    "model": tc.model,
    "layers": list(_layers(tc)),
    "trained_on": seen(f"{config.source_dataset} Big"),
    "evaluated_on": seen(f"{config.source_dataset} test"),
    "num_test": len(test[1]),
    "test_accuracy": float(result.history["test_accuracy"][0, -1]),
    "test_cross_entropy": float(result.history["test_cross_entropy"][0, -1]),
    "reused_checkpoint": bool(reused),
    "train_seconds": result.seconds,
    "checkpoint": checkpointer.directory,
  }
  return (teacher, params), info


def _chain(*callbacks):
  """One callback calling each given one (None entries skipped) in order."""

  def call_all(*args):
    for callback in callbacks:
      if callback is not None:
        callback(*args)

  return call_all


@dataclasses.dataclass(frozen=True)
class Arm:
  """One way of teaching the students: which soft targets, if any."""

  name: str
  uses_teacher: bool
  through_phi: bool


def arms_for(phi: maps.Map, image_shape: tuple[int, ...]) -> list[Arm]:
  """``no_teacher`` and ``teacher_phi`` always; ``teacher`` when f accepts x as it is.

  ``teacher`` is left out for the identity map (it would equal ``teacher_phi``) and when φ
  changes the image shape (the teacher cannot read unmapped images).
  """
  arms = [Arm("no_teacher", False, False)]
  if phi.name != "identity" and tuple(phi.output_shape(image_shape)) == tuple(image_shape):
    arms.append(Arm("teacher", True, False))
  arms.append(Arm("teacher_phi", True, True))
  return arms


def fit_students(
  config,
  arm: Arm,
  phi,
  teacher,
  small,
  test,
  mesh,
  workdir,
  teacher_key,
  on_epoch=None,
  phi_key=None,
  cache_dir=None,
):
  """All seeds × λ × T of one arm, trained together; returns the grid and the fit result.

  ``on_epoch(epoch, metrics)``, if given, is called after each epoch (after the progress log).
  """
  sc = config.student
  student = _build_model(sc)
  teacher_model, teacher_params = teacher
  images, labels = small
  seeds = [config.seed_offset + s for s in range(config.seeds)]
  if arm.uses_teacher:
    grid = list(itertools.product(config.lams, config.temperatures, seeds))
  else:  # λ = 0: T plays no role
    grid = [(0.0, 1.0, seed) for seed in seeds]
  lam, temperature, seed = (np.asarray(v) for v in zip(*grid))
  train_data = {"image": images, "label": labels}
  online_phi = arm.through_phi and phi.stochastic
  if arm.uses_teacher and not online_phi:  # soft targets computed once for all epochs/runs
    teacher_inputs = (
      _map_array(phi, images, jax.random.key(0), cache_dir) if arm.through_phi else images
    )
    train_data["teacher_logits"] = train.predict(
      teacher_model.apply, teacher_params, teacher_inputs, mesh
    )
  t_squared = bool(config.t_squared)

  def loss_fn(params, batch, key, hparams, context):
    student_logits = student.apply(params, batch["image"])
    if not arm.uses_teacher:
      return losses.distillation_loss(student_logits, None, batch["label"], lam=0)
    if online_phi:  # fresh φ(x) for every batch
      teacher_logits = teacher_model.apply(context, phi(batch["image"], key))
    else:
      teacher_logits = batch["teacher_logits"]
    return losses.distillation_loss(
      student_logits,
      teacher_logits,
      batch["label"],
      lam=hparams["lam"],
      temperature=hparams["temperature"],
      t_squared=t_squared,
    )

  key_config = {
    "what": "students",
    "arm": arm.name,
    "dataset": config.target_dataset,
    "mapping": config.mapping,
    "phi_key": phi_key if arm.through_phi else None,
    "map_options": _map_options(config),
    "student": _training_settings(sc),
    "grid": [list(map(float, g)) for g in grid],
    "t_squared": t_squared,
    "teacher": teacher_key if arm.uses_teacher else None,
    "num_train": len(labels),
    "num_test": len(test[1]),
  }
  checkpointer = Checkpointer(os.path.join(workdir, "students", config_key(key_config)), key_config)
  started = time.perf_counter()

  def log_epoch(epoch, metrics):
    if "test_accuracy" in metrics and (
      epoch % 10 == 0 or epoch == sc.epochs or epoch <= sc.eval_every
    ):
      logging.info(
        "%s epoch %d/%d: test accuracy %.4f ± %.4f, test cross-entropy %.4f (%d runs, %.1fs)",
        arm.name,
        epoch,
        sc.epochs,
        metrics["test_accuracy"].mean(),
        metrics["test_accuracy"].std(),
        metrics["test_cross_entropy"].mean(),
        len(grid),
        time.perf_counter() - started,
      )

  result = train.fit(
    name=f"students[{arm.name}]",
    init_fn=_init_fn(student, images.shape[1:]),
    loss_fn=loss_fn,
    metrics_fn=train.classification_metrics(student.apply),
    train_data=train_data,
    test_data={"image": test[0], "label": test[1]},
    run_keys=jax.vmap(jax.random.key)(jnp.asarray(seed)),
    hparams={"lam": lam, "temperature": temperature},
    context=teacher_params if online_phi else None,
    epochs=sc.epochs,
    batch_size=sc.batch_size,
    learning_rate=sc.learning_rate,
    mesh=mesh,
    eval_batch_size=config.eval_batch_size,
    checkpointer=checkpointer,
    checkpoint_every=config.checkpoint_every,
    on_epoch=_chain(log_epoch, on_epoch),
    steps_per_call=_steps_per_call(sc),
    eval_every=sc.eval_every,
  )
  checkpointer.close()
  return grid, result


# The VAE settings that change its training (``sample`` only changes how φ reads it).
_VAE_TRAINING_FIELDS = (
  "encoder_type",
  "latent_dim",
  "encoder_hidden",
  "decoder_hidden",
  "epochs",
  "batch_size",
  "learning_rate",
  "prior_std",
  "seed",
)


def fit_vae(config, datasets, mesh, cache_dir, figure: bool = False):
  """Trains (or reloads from ``<cache_dir>/vae/<key>``) the two-decoder VAE of ``config.vae``.

  ``figure``: the VAE for the latent-grid figure instead (``figure_latent_dim``,
  ``figure_epochs``). Returns ``(model, params, info)``, ``info`` with the final test −ELBO,
  its terms and the checkpoint folder.
  """
  vc = config.vae
  training = {name: vc[name] for name in _VAE_TRAINING_FIELDS}
  if figure:
    training.update(latent_dim=vc.figure_latent_dim, epochs=vc.figure_epochs)
  epochs = training["epochs"]
  model = vae_lib.TwoDecoderVAE(
    latent_dim=training["latent_dim"],
    encoder_hidden=tuple(vc.encoder_hidden),
    decoder_hidden=tuple(vc.decoder_hidden),
    encoder_type=vc.encoder_type,
  )
  fashion, mnist = datasets["fashion_mnist"], datasets["mnist"]
  fashion_train = _subset(fashion["big"], config.data.max_big)
  fashion_test = _subset(fashion["test"], config.data.max_test)
  mnist_train = tuple(np.concatenate(parts) for parts in zip(mnist["big"], mnist["small"]))
  key_config = {
    "what": "vae",
    "vae": {k: list(v) if isinstance(v, tuple) else v for k, v in training.items()},
    "num_train": len(fashion_train[1]),
    "num_test": len(fashion_test[1]),
  }
  checkpointer = Checkpointer(os.path.join(cache_dir, "vae", config_key(key_config)), key_config)
  reused = checkpointer.latest_epoch() == epochs
  logging.info(
    "vae: latent %d, trained on %d Fashion-MNIST Big images paired with MNIST train%s",
    training["latent_dim"],
    len(fashion_train[1]),
    " (reusing checkpoint)" if reused else "",
  )

  def log_epoch(epoch, metrics):
    logging.info("vae epoch %d/%d: test -ELBO %.2f", epoch, epochs, metrics["test_neg_elbo"][0])

  result = vae_lib.fit_vae(
    model,
    fashion_train=fashion_train,
    fashion_test=fashion_test,
    mnist_train=mnist_train,
    mnist_test=mnist["test"],
    epochs=epochs,
    batch_size=vc.batch_size,
    learning_rate=vc.learning_rate,
    mesh=mesh,
    seed=vc.seed,
    prior_std=vc.prior_std,
    checkpointer=checkpointer,
    on_epoch=log_epoch,
    steps_per_call=vc.steps_per_call,
  )
  checkpointer.close()
  params = jax.tree.map(lambda leaf: leaf[0], result.params)
  info = {
    "latent_dim": training["latent_dim"],
    "test_neg_elbo": float(result.history["test_neg_elbo"][0, -1]),
    "test_kl": float(result.history["test_kl"][0, -1]),
    "test_mnist_log_lik": float(result.history["test_mnist_log_lik"][0, -1]),
    "test_fashion_log_lik": float(result.history["test_fashion_log_lik"][0, -1]),
    "reused_checkpoint": bool(reused),
    "train_seconds": result.seconds,
    "checkpoint": checkpointer.directory,
  }
  return model, params, info


def write_vae_figures(config, model, params, datasets, mesh, cache_dir, workdir) -> list[str]:
  """``vae_translations.png`` (Fashion test inputs, φ_vae digits, Fashion reconstructions, two
  per class) and ``vae_latent_grid.png`` (both decoders on a 2-D latent grid: a separate VAE
  with ``vae.figure_latent_dim = 2`` and ``vae.figure_epochs``; ``figure_latent_dim = 0``
  skips it)."""
  images, labels = datasets["fashion_mnist"]["test"]
  per_class = np.concatenate([np.flatnonzero(labels == r)[:2] for r in range(10)])
  paths = [os.path.join(workdir, "vae_translations.png")]
  vae_lib.plot_translations(model, params, images[per_class], paths[0])
  if config.vae.figure_latent_dim:
    model, params, _ = fit_vae(config, datasets, mesh, cache_dir, figure=True)
    paths.append(os.path.join(workdir, "vae_latent_grid.png"))
    vae_lib.plot_latent_grids(model, params, paths[-1])
  return paths


def generated_mnist(config, phi: maps.Map, phi_key: str, fashion, tfds_dir: str) -> dict:
  """GeneratedMNIST splits for this φ_vae: prepared once in ``tfds_dir``, then read back.

  φ_vae translates all of Fashion-MNIST (train = Big + Small in file order, and test); a
  sampled φ draws from ``jax.random.key(vae.seed)``, so a VAE checkpoint gives one dataset.
  """
  mode = "sampled" if phi.stochastic else "mean"

  def translate():
    logging.info("GeneratedMNIST: translating 70,000 Fashion-MNIST images with φ_vae (%s)", mode)
    key = jax.random.key(config.vae.seed)
    train_images = np.concatenate([fashion["big"][0], fashion["small"][0]])
    train_labels = np.concatenate([fashion["big"][1], fashion["small"][1]])
    return {
      "train": (data_lib.to_uint8(_map_array(phi, train_images, key)), train_labels),
      "test": (
        data_lib.to_uint8(_map_array(phi, fashion["test"][0], jax.random.fold_in(key, 1))),
        fashion["test"][1],
      ),
    }

  return data_lib.load_generated_mnist(
    f"vae_{phi_key}_{mode}", translate=translate, tfds_dir=tfds_dir
  )


def _file_digest(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()[:16]


def style_image_paths(config) -> list[str]:
  """The files in ``style.style_image`` (comma-separated; empty: the generated default)."""
  return [path.strip() for path in config.style.style_image.split(",") if path.strip()]


def load_style_images(config) -> np.ndarray:
  """The style images ``[K, S, S, 3]``, float32 in [0, 1], S = ``data.image_size``: each file
  of ``style.style_image`` resized (bicubic), or ``distill_jax.style.default_style_image``."""
  size = config.data.image_size
  paths = style_image_paths(config)
  if not paths:
    return style_lib.default_style_image(size)[None]
  from PIL import Image

  images = []
  for path in paths:
    with Image.open(path) as image:
      resized = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    images.append(np.asarray(resized, np.float32) / 255.0)
  return np.stack(images)


def build_style_map(config) -> tuple[maps.Map, dict]:
  """φ_style from ``config.style``: VGG-19 weights (a file, or random ranVGG weights, said in
  the logs and results), the style images (files resized to the data's size, or the generated
  default; with several, each image gets one by a hash of its pixels, ``maps.style_index``) and
  the transfer settings; its ``cache_key`` hashes all of them."""
  sc = config.style
  if sc.weights:
    vgg_params, preprocessing = vgg_lib.load_weights(sc.weights)
    weights_id = "file-" + _file_digest(sc.weights)
  else:
    vgg_params, preprocessing = vgg_lib.random_weights(jax.random.key(sc.weights_seed))
    weights_id = f"ranvgg-{sc.weights_seed}"
    logging.warning(
      "style: no VGG-19 weights file (config.style.weights), so φ_style uses RANDOM VGG-19 "
      "weights (ranVGG, He, Wang & Hopcroft 2016) with per-layer normalized style losses. For "
      "pretrained weights pass --config.style.weights=<torchvision vgg19 .pth | Keras "
      "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 | .npz>."
    )
  style_images = load_style_images(config)
  options = {
    "steps": int(sc.steps),
    "learning_rate": float(sc.learning_rate),
    "content_weight": float(sc.content_weight),
    "style_weight": float(sc.style_weight),
    "content_layers": tuple(sc.content_layers),
    "style_layers": tuple(sc.style_layers),
    "normalize_style": bool(sc.normalize_style),
    "pool": sc.pool,
  }
  style_digest = hashlib.sha256(np.ascontiguousarray(style_images).tobytes()).hexdigest()[:16]
  cache_key = config_key(
    {"weights": weights_id, "preprocessing": preprocessing, "style": style_digest, **options}
  )
  phi = maps.get_map(
    "style",
    vgg_params=vgg_params,
    preprocessing=preprocessing,
    style_image=style_images,
    cache_key=cache_key,
    batch_size=sc.batch_size,
    loop=sc.loop,
    **options,
  )
  info = {
    "vgg_weights": sc.weights or "random (ranVGG: no weights file given)",
    "random_weights": not sc.weights,
    "style_images": style_image_paths(config) or ["distill_jax.style.default_style_image"],
    "cache_key": cache_key,
    **{k: list(v) if isinstance(v, tuple) else v for k, v in options.items()},
  }
  return phi, info


def write_style_figure(phi, images, labels, style_images, cache_dir, path) -> str:
  """The style image(s) ``[K, H, W, 3]`` side by side, then one original per class above its
  φ_style image (titled with the style it got when K > 1).

  The stylized images come from the φ cache when ``images`` were mapped before.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from distill_jax.data import imagenette

  stylized = _map_array(phi, images, jax.random.key(0), cache_dir)
  labels = np.asarray(labels)
  classes = [int(c) for c in np.unique(labels)]
  first_of_class = [int(np.flatnonzero(labels == c)[0]) for c in classes]
  count = len(first_of_class) + 1
  fig, axes = plt.subplots(2, count, figsize=(1.3 * count, 3.1), squeeze=False)
  for ax in axes.ravel():
    ax.axis("off")
  style_images = np.asarray(style_images)
  num_styles = len(style_images)
  axes[0, 0].imshow(np.clip(np.concatenate(list(style_images), axis=1), 0, 1))
  axes[0, 0].set_title(
    "style image" if num_styles == 1 else f"styles 0…{num_styles - 1}", fontsize=8
  )
  style_of = maps.style_index(images[first_of_class], num_styles)
  for column, (label, index) in enumerate(zip(classes, first_of_class), start=1):
    name = imagenette.CLASS_NAMES[label] if label < len(imagenette.CLASS_NAMES) else str(label)
    axes[0, column].imshow(np.clip(images[index], 0, 1))
    axes[0, column].set_title(f"x: {name}", fontsize=8)
    axes[1, column].imshow(np.clip(stylized[index], 0, 1))
    suffix = "" if num_styles == 1 else f", style {style_of[column - 1]}"
    axes[1, column].set_title(f"φ_style(x){suffix}", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def run_experiment(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  data_dir: str | None,
  tfds_dir: str,
  cache_dir: str | None = None,
) -> dict:
  """Runs the whole experiment and writes its results into ``workdir``; returns the results.

  Teachers and VAEs are cached under ``cache_dir`` (default: ``workdir``) so that experiments
  in other workdirs can share them; students always live in ``workdir``.
  """
  config = resolve_config(config)
  validate_config(config)
  cache_dir = cache_dir or workdir
  started = time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  mesh = parallel.make_mesh(config.num_devices)
  logging.info(
    "experiment: mapping=%s on %d %s device(s); workdir %s",
    config.mapping,
    mesh.devices.size,
    jax.devices()[0].platform,
    os.path.abspath(workdir),
  )

  max_sizes = {
    "big": config.data.max_big,
    "small": config.data.max_small,
    "test": config.data.max_test,
  }

  def load(name, splits):
    if name == IMAGENETTE:
      return data_lib.load_imagenette(
        data_dir=data_dir,
        tfds_dir=tfds_dir,
        image_size=config.data.image_size,
        splits=splits,
        small_size=config.data.imagenette_small,
        max_sizes=max_sizes,  # decode only the subsets (the same ones _subset takes below)
      )
    return data_lib.load_splits(name, data_dir=data_dir, tfds_dir=tfds_dir, splits=splits)

  learned = phi_name(config.mapping) in maps.LEARNED_MAPS
  names = {config.source_dataset, config.target_dataset} - {GENERATED_MNIST}
  if learned:
    names |= {"fashion_mnist", "mnist"}  # the VAE's training data
  datasets = {name: load(name, ("big", "small", "test")) for name in sorted(names)}
  data_seconds = time.perf_counter() - started

  phi_info, phi_key, figures = {}, None, []
  if learned:
    vae_model, vae_params, phi_info = fit_vae(config, datasets, mesh, cache_dir)
    phi = maps.get_map("vae", model=vae_model, params=vae_params, sample=config.vae.sample)
    phi_key = os.path.basename(phi_info["checkpoint"])
    figures = write_vae_figures(config, vae_model, vae_params, datasets, mesh, cache_dir, workdir)
  elif phi_name(config.mapping) == "style":
    phi, phi_info = build_style_map(config)
    phi_key = phi.cache_key
  else:
    phi = maps.get_map(config.mapping, **_map_options(config))
  if config.source_dataset == GENERATED_MNIST:
    datasets[GENERATED_MNIST] = generated_mnist(
      config, phi, phi_key, datasets["fashion_mnist"], tfds_dir
    )

  source, target = datasets[config.source_dataset], datasets[config.target_dataset]
  big = _subset(source["big"], config.data.max_big)
  source_test = _subset(source["test"], config.data.max_test)
  small = _subset(target["small"], config.data.max_small)
  test = _subset(target["test"], config.data.max_test)

  teacher, teacher_info = fit_teacher(
    config,
    phi,
    big,
    _subset(source_test, config.teacher.eval_size),
    mesh,
    cache_dir,
    phi_key=phi_key,
  )
  teacher_key = os.path.basename(teacher_info["checkpoint"])
  # How well φ keeps the class: the teacher on φ(target test), scored with the target labels.
  phi_test_images, phi_test_labels = _subset(test, config.teacher.eval_size)
  phi_test_logits = train.predict(
    teacher[0].apply,
    teacher[1],
    _map_array(phi, phi_test_images, jax.random.key(1), cache_dir),
    mesh,
  )
  phi_info["teacher_accuracy_on_phi_target_test"] = float(
    np.mean(np.argmax(phi_test_logits, -1) == phi_test_labels)
  )
  phi_info["teacher_cross_entropy_on_phi_target_test"] = float(
    np.mean(losses.cross_entropy(jnp.asarray(phi_test_logits), jnp.asarray(phi_test_labels)))
  )
  phi_info["phi_target_test_size"] = len(phi_test_labels)

  if phi.name == "style":
    figures.append(
      write_style_figure(
        phi,
        small[0],
        small[1],
        load_style_images(config),
        cache_dir,
        os.path.join(workdir, "style_examples.png"),
      )
    )
  arm_results = {}
  for arm in arms_for(phi, small[0].shape[1:]):
    grid, result = fit_students(
      config,
      arm,
      phi,
      teacher,
      small,
      test,
      mesh,
      workdir,
      teacher_key,
      phi_key=phi_key,
      cache_dir=cache_dir,
    )
    arm_results.update(report.group_runs(arm.name, grid, result.history, result.seconds))

  results = {
    "experiment": f"{config.source_dataset} -> {config.target_dataset} through phi = {phi.name}",
    "config": config.to_dict(),
    "teacher": teacher_info,
    "phi": phi_info,
    "arms": arm_results,
    "num_examples": {"big": len(big[1]), "small": len(small[1]), "test": len(test[1])},
    "devices": [str(d) for d in mesh.devices.flat],
    "seconds": {"data": data_seconds, "total": time.perf_counter() - started},
  }
  report.write(results, workdir)
  for path in figures:
    logging.info("figure: %s", path)
  logging.info(
    "experiment done in %.1fs: %s", results["seconds"]["total"], os.path.join(workdir, "results.md")
  )
  return results
