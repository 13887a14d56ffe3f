"""The teachers ``f_k``: an ensemble of ``teacher.count`` = K independently seeded teachers
(seeds ``teacher.seed`` … ``+ K − 1``), trained at once in one vmapped program on φ(source Big)
(or on source Big as is), then reused. The teacher is a random draw like a student seed: the
effects are measured over teachers (``effects.py``).

Its checkpoint lives in ``<cache_dir>/teachers/<key>``, ``key`` a hash of everything the teacher
depends on (φ only when it is trained through φ or on a source set made by φ), so experiments in
other workdirs that share a ``--cache_dir`` share the teacher.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from distill_jax import checkpoints
from distill_jax import fingerprints
from distill_jax import data as data_lib
from distill_jax import losses
from distill_jax import maps
from distill_jax import models
from distill_jax import parallel
from distill_jax import summaries
from distill_jax import train
from distill_jax.report import history_to_json

TRAIN_ON = ("phi", "source")


@dataclasses.dataclass(frozen=True)
class TrainedTeacher:
  """K trained teachers: ``model.apply(member(k), φ(x))`` gives teacher k's logits."""

  model: nn.Module
  params: Any  # every leaf has a leading teacher axis K
  key: str  # the ensemble's checkpoint key: the students' keys name their teachers by it
  info: dict  # for results.json: model, data, seeds, per-teacher final test metrics, checkpoint

  @property
  def count(self) -> int:
    return int(jax.tree.leaves(self.params)[0].shape[0])

  def member(self, k: int):
    """Teacher k's parameters (host arrays: slicing there compiles no small XLA programs)."""
    return jax.tree.map(lambda leaf: np.asarray(leaf)[k], self.params)

  def logits(self, images: np.ndarray, mesh) -> np.ndarray:
    """Every teacher's logits on ``images``: ``[N, K, classes]`` (examples first, so that a
    batch of examples gathers every teacher's soft targets)."""
    per_teacher = [
      train.predict(self.model.apply, self.member(k), images, mesh) for k in range(self.count)
    ]
    return np.stack(per_teacher, axis=1)


def _key_config(
  config,
  phi_key: str | None,
  data: str,
  source_key: str | None = None,
  *,
  num_classes: int = 10,
  model_fingerprint: str | None = None,
  arithmetic: int = 1,
) -> dict:
  """What the teachers' checkpoint key names: settings, φ (its key and behaviour, when the
  teachers see φ) and the content of the source arrays (``fingerprints``); a class count other
  than the built-in datasets' 10, a user model's behaviour and a built-in model's arithmetic
  revision other than 1 (``models.arithmetic_revision``), when there are (left out otherwise,
  so that the keys of the built-in experiments stay as they were)."""
  through_phi = config.teacher.train_on == "phi"
  key_config = {
    "what": "teacher",
    "dataset": config.source_dataset,
    "mapping": config.mapping if through_phi else None,
    "phi_key": phi_key
    if through_phi or config.source_dataset == data_lib.GENERATED_MNIST
    else None,
    "map_options": maps.fixed.map_options(config) if through_phi else None,
    "teacher": checkpoints.training_settings(config.teacher),
    "data": data,
  }
  if source_key is not None:  # a source set made by φ (GeneratedMNIST): its recipe and VAE
    key_config["source_key"] = source_key
  if num_classes != 10:
    key_config["num_classes"] = num_classes
  if model_fingerprint is not None:
    key_config["model_behaviour"] = model_fingerprint
  if arithmetic != 1:  # the built-in model's arithmetic revision (``models.ARITHMETIC_REVISION``)
    key_config["arithmetic"] = arithmetic
  return key_config


def _epoch_logger(config, test_name: str) -> Callable:
  tc = config.teacher

  def log_epoch(epoch, metrics):
    loss = metrics["train_loss"].mean()
    if "test_accuracy" not in metrics:
      logging.info("teacher epoch %d/%d: train loss %.4f", epoch, tc.epochs, loss)
      return
    accuracy = metrics["test_accuracy"]
    if len(accuracy) == 1:
      logging.info(
        "teacher epoch %d/%d: train loss %.4f, test accuracy on %s %.4f",
        *(epoch, tc.epochs, loss, test_name, accuracy[0]),
      )
      return
    logging.info(
      "teacher epoch %d/%d: train loss %.4f, test accuracy on %s %.4f ± %.4f (%d teachers)",
      *(epoch, tc.epochs, loss, test_name, accuracy.mean(), accuracy.std(), len(accuracy)),
    )

  return log_epoch


def fit_teacher(
  config,
  *,
  phi: maps.Map,
  phi_key: str | None,
  big,
  test,
  mesh,
  cache_dir: str,
  on_epoch=None,
  source_key: str | None = None,
  summary_dir: str | None = None,
  num_classes: int = 10,
) -> TrainedTeacher:
  """Trains (or reloads) the K teachers on φ(Big) (on Big as is when ``teacher.train_on`` is
  ``"source"``) and scores them on the test set seen the same way. Teacher k is the run of seed
  ``teacher.seed + k``: its initialization, batches and noise derive from that seed alone, so
  it is the same run whatever K is, up to float rounding (XLA sums a matmul batched over K
  teachers in another order than over 5; tested equal to 1e-5 after a few steps). Over the
  9,210 Adam steps of the default teacher that rounding grows into another draw: teacher 0 of
  the conv experiment ends elsewhere on φ(test) trained beside 4 others than beside 19
  (CHANGELOG.md, 2026-11-29). Results are reproducible for a given config; compare
  teachers as a distribution. A stochastic φ draws fresh noise per teacher and step.

  ``summary_dir`` (the experiment's workdir), if given, gets each teacher's curves in
  TensorBoard as the epochs end (``summaries.LiveCurves``). ``big`` / ``test``: ``(images,
  labels)`` of the source set; ``source_key`` names a source set
  made by φ (GeneratedMNIST), which then enters the cache key. ``on_epoch(epoch, metrics)``, if
  given, is called after each epoch (after the progress log). ``num_classes``: the teachers'
  outputs, the datasets' class count.
  """
  tc = config.teacher
  through_phi = tc.train_on == "phi"
  if not through_phi:
    phi = maps.identity_map()
  model = models.from_config(tc, num_classes)
  images, labels = big
  test = data_lib.Split(*test)
  input_shape = phi.output_shape(images.shape[1:])
  mapped_test = phi.map_array(test.images, jax.random.key(10_000 + tc.seed))
  if not phi.stochastic:  # the source set S = φ(Big), computed once instead of every step
    images = phi.map_array(images, jax.random.key(0))

  def loss_fn(params, batch, key, hparams, context):
    source_images = phi(batch["image"], key) if phi.stochastic else batch["image"]
    return jnp.mean(losses.cross_entropy(model.apply(params, source_images), batch["label"]))

  data = fingerprints.arrays(*big, test.images, test.labels)  # before φ: φ has its own key
  key_config = _key_config(
    config,
    phi_key,
    data,
    source_key,
    num_classes=num_classes,
    arithmetic=1
    if models.is_registered(tc.model)
    else models.arithmetic_revision(model, input_shape),
    model_fingerprint=fingerprints.of_model(model, input_shape)
    if models.is_registered(tc.model)
    else None,
  )
  key = checkpoints.config_key(key_config)
  directory = os.path.join(cache_dir, "teachers", key)
  with checkpoints.Checkpointer(directory, key_config) as checkpointer:
    reused = checkpointer.latest_epoch() == tc.epochs
    if checkpointer.latest_epoch() is None and (
      changed := checkpoints.why_new(directory, key_config)
    ):
      logging.info("teacher: not reusing the cached teachers: %s", changed)
    seen = (lambda what: f"phi({what})") if through_phi else (lambda what: what)
    logging.info(
      "teacher: %d × %s %s on %s, %d examples%s",
      tc.count,
      tc.model,
      models.layer_widths(tc),
      seen(f"{config.source_dataset} Big"),
      len(labels),
      " (reusing checkpoint)" if reused else "",
    )
    live = (
      summaries.LiveCurves(
        summary_dir,
        [summaries.teacher_folder(k) for k in range(tc.count)],
        enabled=parallel.is_primary(),
      )
      if summary_dir
      else contextlib.nullcontext()
    )
    with live as live_curves:
      result = train.fit(
        name="teacher",
        init_fn=models.init_fn(model, input_shape),
        loss_fn=loss_fn,
        metrics_fn=losses.classification_metrics(model.apply),
        train_data={"image": images, "label": labels},
        test_data={"image": mapped_test, "label": test.labels},
        run_keys=jax.vmap(jax.random.key)(jnp.asarray(seeds(config))),
        hparams={},
        mesh=mesh,
        eval_batch_size=config.eval_batch_size,
        checkpointer=checkpointer,
        checkpoint_every=1,
        on_epoch=train.chain_callbacks(
          _epoch_logger(config, seen(f"{config.source_dataset} test")), live_curves, on_epoch
        ),
        **train.options_from_config(tc, num_train=len(labels)),
      )
  info = {
    "model": tc.model,
    "layers": list(models.layer_widths(tc)),
    "trained_on": seen(f"{config.source_dataset} Big"),
    "evaluated_on": seen(f"{config.source_dataset} test"),
    "num_test": len(test.labels),
    "seeds": seeds(config),
    **_per_teacher("test_", {k: v[:, -1] for k, v in result.history.items()}),
    "reused_checkpoint": bool(reused),
    "train_seconds": result.seconds,
    # per teacher and epoch [K, epochs] (null: not evaluated): the curves, e.g. for TensorBoard
    "history": {metric: history_to_json(values) for metric, values in result.history.items()},
    "checkpoint": checkpointer.directory,
  }
  return TrainedTeacher(model=model, params=result.params, key=key, info=info)


def seeds(config) -> list[int]:
  """The teachers' seeds: ``teacher.seed`` … ``teacher.seed + teacher.count − 1``."""
  return [config.teacher.seed + k for k in range(config.teacher.count)]


def _per_teacher(prefix: str, final: dict) -> dict:
  """``{prefix}accuracy`` / ``cross_entropy``: one value per teacher, and their mean and std."""
  out = {}
  for metric in ("accuracy", "cross_entropy"):
    values = np.asarray(final[f"test_{metric}"], np.float64)
    out[f"{prefix}{metric}"] = [float(v) for v in values]
    out[f"{prefix}{metric}_mean"] = float(values.mean())
    out[f"{prefix}{metric}_std"] = float(values.std())
  return out


def score_through_phi(teacher: TrainedTeacher, phi: maps.Map, test, mesh) -> dict:
  """How well φ keeps the class: each teacher on φ(target test), scored with the target labels
  (a stochastic φ draws once, from ``key(1)``); per teacher, mean and std."""
  images, labels = test
  logits = teacher.logits(phi.map_array(images, jax.random.key(1)), mesh)  # [N, K, C]
  final = {
    "test_accuracy": np.mean(np.argmax(logits, -1) == labels[:, None], axis=0),
    "test_cross_entropy": np.mean(
      losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels)[:, None]), axis=0
    ),
  }
  return {
    **_per_teacher("teacher_on_phi_target_test_", final),
    "phi_target_test_size": len(labels),
  }


def validate(config) -> None:
  """The teacher's own settings (the training ones are checked with the students')."""
  tc = config.teacher
  if tc.train_on not in TRAIN_ON:
    raise ValueError(
      f"teacher.train_on must be 'phi' (train on φ(source Big)) or 'source' (on source Big as "
      f"is), got {tc.train_on!r}."
    )
  if not isinstance(tc.count, int) or tc.count < 1:
    raise ValueError(f"teacher.count must be an int >= 1 (teachers trained), got {tc.count!r}.")
  if tc.eval_size is not None and tc.eval_size < 1:
    raise ValueError(
      f"teacher.eval_size must be >= 1 or None (all test images), got {tc.eval_size}."
    )
