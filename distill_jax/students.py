"""The students ``g``: per arm, every seed × λ × T trained at once (one vmapped program).

An arm is a way of teaching: ``no_teacher`` (labels only, λ = 0), ``teacher`` (soft targets
f(x), the teacher applied to unmapped images) and ``teacher_phi`` (soft targets f(φ(x))).
``student_loss`` is the task the trainer runs; students resume from
``<workdir>/students/<key>``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import time
from typing import NamedTuple

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
from distill_jax.teacher import TrainedTeacher


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


class Run(NamedTuple):
  """One student run: its λ, T, seed, and which teacher of the ensemble teaches it (-1: none)."""

  lam: float
  temperature: float
  seed: int
  teacher: int


STUDENT_SEED_DESIGNS = ("per_teacher", "shared")


def student_seeds(config, teacher: int) -> list[int]:
  """Teacher k's student seeds. ``config.student_seeds``:

  * ``per_teacher`` (default): ``seed_offset + k·S + s`` for s < S, each teacher its own S
    seeds (and ``no_teacher`` all K·S of them), so the K per-teacher gains are independent and
    the t interval over teachers covers student-seed noise too;
  * ``shared``: ``seed_offset + s`` under every teacher (fewer ``no_teacher`` runs; the seeds'
    noise is then common to all teachers and not in an interval over teachers).
  """
  block = teacher * config.seeds if config.student_seeds == "per_teacher" else 0
  return [config.seed_offset + block + s for s in range(config.seeds)]


def run_grid(config, arm: Arm, num_teachers: int) -> list[Run]:
  """The arm's runs: every teacher × λ × T × that teacher's seeds, or one run per seed for
  no_teacher (λ = 0, where T plays no role). Student seed s starts from the same parameters
  and sees the same batches in every arm, so runs pair with no_teacher by seed."""
  if not arm.uses_teacher:
    seeds = sorted({seed for k in range(num_teachers) for seed in student_seeds(config, k)})
    return [Run(0.0, 1.0, seed, -1) for seed in seeds]
  return [
    Run(float(lam), float(t), seed, k)
    for k, lam, t in itertools.product(range(num_teachers), config.lams, config.temperatures)
    for seed in student_seeds(config, k)
  ]


def student_loss(student_apply, arm: Arm, *, online_phi: maps.Map | None, teacher_apply, t_squared):
  """The students' ``loss_fn(params, batch, key, hparams, context)`` for one arm.

  ``losses.distillation_loss`` with this run's λ and T (``hparams``) against its teacher's
  logits (teacher ``hparams["teacher"]`` of the ensemble): precomputed in
  ``batch["teacher_logits"]`` ``[B, K, classes]``, or, for a stochastic ``online_phi``, that
  teacher (ensemble parameters in ``context``) on a fresh φ(x) drawn from the step's key.
  ``no_teacher`` (λ = 0): zero soft targets in ``batch["teacher_logits"]`` (``fit_students``
  puts them there) and the same loss as an arm with precomputed soft targets (``hard + 0·soft``
  is ``hard`` exactly), so that its epoch is the same XLA program as that arm's and compiles
  once (with the persistent compilation cache on, as the CLI and the tests have it); without
  ``teacher_logits`` in the batch, the labels' cross-entropy alone.
  """

  def loss_fn(params, batch, key, hparams, context):
    student_logits = student_apply(params, batch["image"])
    if not arm.uses_teacher and "teacher_logits" not in batch:
      return losses.distillation_loss(student_logits, None, batch["label"], lam=0)
    k = hparams["teacher"].astype(jnp.int32)
    if online_phi is not None:
      teacher_params = jax.tree.map(lambda leaf: leaf[k], context)
      teacher_logits = teacher_apply(teacher_params, online_phi(batch["image"], key))
    else:
      teacher_logits = batch["teacher_logits"][:, k]
    return losses.distillation_loss(
      student_logits,
      teacher_logits,
      batch["label"],
      lam=hparams["lam"],
      temperature=hparams["temperature"],
      t_squared=t_squared,
    )

  return loss_fn


@dataclasses.dataclass(frozen=True)
class StudentRuns:
  """One arm's trained runs: ``grid[r]`` describes run r of ``result``."""

  arm: Arm
  grid: list[Run]
  result: train.FitResult


def _key_config(
  config,
  arm,
  grid,
  phi_key,
  teacher_key,
  data: str,
  *,
  num_classes=10,
  model_fingerprint=None,
  arithmetic: int = 1,
) -> dict:
  """What an arm's checkpoint key names: settings, the grid of runs, φ and the teacher where
  the arm uses them, and the content of the target arrays (``fingerprints``); a class count
  other than 10, a user model's behaviour and a built-in model's arithmetic revision other than
  1, when there are (as ``teacher._key_config``)."""
  key_config = {
    "what": "students",
    "arm": arm.name,
    "dataset": config.target_dataset,
    "mapping": config.mapping,
    "phi_key": phi_key if arm.through_phi else None,
    "map_options": maps.fixed.map_options(config),
    "student": checkpoints.training_settings(config.student),
    "grid": [list(map(float, g)) for g in grid],
    "t_squared": bool(config.t_squared),
    "teacher_key": teacher_key if arm.uses_teacher else None,
    "data": data,
  }
  if num_classes != 10:
    key_config["num_classes"] = num_classes
  if model_fingerprint is not None:
    key_config["model_behaviour"] = model_fingerprint
  if arithmetic != 1:  # the built-in model's arithmetic revision (``models.ARITHMETIC_REVISION``)
    key_config["arithmetic"] = arithmetic
  return key_config


def _epoch_logger(config, arm: Arm, num_runs: int):
  sc, started = config.student, time.perf_counter()

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
        num_runs,
        time.perf_counter() - started,
      )

  return log_epoch


def fit_students(
  config,
  arm: Arm,
  *,
  phi: maps.Map,
  phi_key: str | None,
  teacher: TrainedTeacher,
  small,
  test,
  mesh,
  workdir: str,
  on_epoch=None,
  live_summaries: bool = False,
  num_classes: int = 10,
) -> StudentRuns:
  """All runs of one arm on ``small`` (target Small), scored on ``test`` (target Test), with
  ``num_classes`` outputs (the teachers' too).

  ``on_epoch(epoch, metrics)``, if given, is called after each epoch (after the progress log).
  ``live_summaries``: each run's curves go to ``<workdir>/tensorboard`` as the epochs end
  (``summaries.LiveCurves``).
  """
  sc = config.student
  student = models.from_config(sc, num_classes)
  images, labels = small
  test = data_lib.Split(*test)
  grid = run_grid(config, arm, teacher.count)
  lam, temperature, seed, teacher_index = (np.asarray(v) for v in zip(*grid))
  train_data = {"image": images, "label": labels}
  online_phi = phi if arm.through_phi and phi.stochastic else None
  if arm.uses_teacher and online_phi is None:  # soft targets computed once for all epochs/runs
    teacher_inputs = phi.map_array(images, jax.random.key(0)) if arm.through_phi else images
    train_data["teacher_logits"] = teacher.logits(teacher_inputs, mesh)
  elif not arm.uses_teacher:  # λ = 0 on zero soft targets: the program of the teacher arms
    train_data["teacher_logits"] = np.zeros((len(images), teacher.count, num_classes), np.float32)
  data = fingerprints.arrays(images, labels, test.images, test.labels)
  key_config = _key_config(
    config,
    arm,
    grid,
    phi_key,
    teacher.key,
    data,
    num_classes=num_classes,
    arithmetic=1
    if models.is_registered(sc.model)
    else models.arithmetic_revision(student, images.shape[1:]),
    model_fingerprint=fingerprints.of_model(student, images.shape[1:])
    if models.is_registered(sc.model)
    else None,
  )
  directory = os.path.join(workdir, "students", checkpoints.config_key(key_config))
  with checkpoints.Checkpointer(directory, key_config) as checkpointer:
    if checkpointer.latest_epoch() is None and (
      changed := checkpoints.why_new(directory, key_config)
    ):
      logging.info("students[%s]: not resuming the saved runs: %s", arm.name, changed)
    grid_of_settings = len({(run.lam, run.temperature) for run in grid}) > 1
    folders = [
      summaries.student_folder(
        summaries.run_label(arm.name, run.lam, run.temperature, grid_of_settings),
        run.seed,
        run.teacher,
      )
      for run in grid
    ]
    live = (
      summaries.LiveCurves(workdir, folders, enabled=parallel.is_primary())
      if live_summaries
      else contextlib.nullcontext()
    )
    with live as live_curves:
      result = train.fit(
        name=f"students[{arm.name}]",
        init_fn=models.init_fn(student, images.shape[1:]),
        loss_fn=student_loss(
          student.apply,
          arm,
          online_phi=online_phi,
          teacher_apply=teacher.model.apply,
          t_squared=bool(config.t_squared),
        ),
        metrics_fn=losses.classification_metrics(student.apply),
        train_data=train_data,
        test_data={"image": test.images, "label": test.labels},
        run_keys=jax.vmap(jax.random.key)(jnp.asarray(seed)),
        hparams={"lam": lam, "temperature": temperature, "teacher": teacher_index},
        context=teacher.params if online_phi is not None else None,
        mesh=mesh,
        eval_batch_size=config.eval_batch_size,
        checkpointer=checkpointer,
        checkpoint_every=config.checkpoint_every,
        on_epoch=train.chain_callbacks(
          _epoch_logger(config, arm, len(grid)), live_curves, on_epoch
        ),
        **train.options_from_config(sc, num_train=len(labels)),
      )
  return StudentRuns(arm=arm, grid=grid, result=result)
