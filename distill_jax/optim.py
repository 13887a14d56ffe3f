"""The optimizer of a training section, built from its config and handed to ``train.fit``.

The trainer takes an ``optax.GradientTransformation`` (``tx``) and knows nothing of learning
rates or schedules (as ``tx`` is injected in flax's ImageNet example); this module turns an
``optimizer`` config section into that ``tx``:

- ``name``: ``"adam"``, ``"adamw"`` (Adam with decoupled weight decay) or ``"sgd"``;
- ``learning_rate`` η > 0: the peak step size;
- ``schedule``: ``"constant"`` or ``"cosine"``; ``warmup_epochs`` W ≥ 0 (either schedule);
- ``clip_norm`` c ≥ 0: clip the gradient to global norm c before the optimizer (0 = off);
- ``weight_decay`` ≥ 0: adamw only; ``momentum`` in [0, 1): sgd only (0 = plain SGD).

With ``S`` steps per epoch, ``N = S·epochs`` steps in all and ``w = S·W`` warmup steps, the
step size at step t (counted from 0) is::

   η_t = η · t / w                                        for t < w   (linear warmup from 0)
   η_t = η                                                for t ≥ w   (constant)
   η_t = η/2 · (1 + cos(π · min(t − w, N − w) / (N − w)))  for t ≥ w   (cosine)

i.e. a linear warmup from 0 to η, then η held, or decayed along a half cosine to 0 at step N
(just after the last step). Without warmup, the constant schedule is the plain float η: ``make_optimizer(default_optimizer_config(η), ...)`` is
exactly ``optax.adam(η)``, state and numbers alike.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import ml_collections
import optax

NAMES = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine")
# Fields that may be left out, with the value that turns them off.
OPTIONAL_FIELDS = {
  "schedule": "constant",
  "warmup_epochs": 0,
  "clip_norm": 0.0,
  "weight_decay": 0.0,
  "momentum": 0.0,
}
FIELDS = ("name", "learning_rate", *OPTIONAL_FIELDS)


def default_optimizer_config(learning_rate: float = 1e-3) -> ml_collections.ConfigDict:
  """Adam at a constant ``learning_rate``, no warmup, clipping, weight decay or momentum."""
  return ml_collections.ConfigDict(
    {"name": "adam", "learning_rate": learning_rate, **OPTIONAL_FIELDS}
  )


def _fields(config: Mapping[str, Any] | ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as a plain dict, the optional fields filled in with their defaults."""
  return {**OPTIONAL_FIELDS, **{key: config[key] for key in config.keys()}}


def _is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def validate_optimizer(config: Mapping[str, Any] | ml_collections.ConfigDict, where: str) -> None:
  """Raises ValueError naming the field (``f"{where}.<field>"``), its value and the fix.

  ``where`` is the section's path in the config, e.g. ``"teacher.optimizer"``.
  """
  fields = _fields(config)
  unknown = sorted(set(fields) - set(FIELDS))
  if unknown:
    raise ValueError(
      f"{where}: unknown field(s) {', '.join(unknown)}; the fields are {', '.join(FIELDS)}."
    )
  for required in ("name", "learning_rate"):
    if required not in fields:
      raise ValueError(f"{where}.{required} is missing; set it (e.g. {where}.name = 'adam').")
  name = fields["name"]
  if name not in NAMES:
    raise ValueError(f"{where}.name must be one of {', '.join(NAMES)}; got {name!r}.")
  lr = fields["learning_rate"]
  if not (_is_number(lr) and lr > 0):
    raise ValueError(f"{where}.learning_rate must be a number > 0 (e.g. 1e-3); got {lr!r}.")
  if fields["schedule"] not in SCHEDULES:
    raise ValueError(
      f"{where}.schedule must be one of {', '.join(SCHEDULES)}; got {fields['schedule']!r}."
    )
  warmup = fields["warmup_epochs"]
  if not (isinstance(warmup, numbers.Integral) and not isinstance(warmup, bool) and warmup >= 0):
    raise ValueError(
      f"{where}.warmup_epochs must be a whole number of epochs >= 0 (0 = no warmup); "
      f"got {warmup!r}."
    )
  clip = fields["clip_norm"]
  if not (_is_number(clip) and clip >= 0):
    raise ValueError(f"{where}.clip_norm must be a number >= 0 (0 = no clipping); got {clip!r}.")
  decay = fields["weight_decay"]
  if not (_is_number(decay) and decay >= 0):
    raise ValueError(f"{where}.weight_decay must be a number >= 0; got {decay!r}.")
  if decay > 0 and name != "adamw":
    raise ValueError(
      f"{where}.weight_decay = {decay!r} is only used by adamw; set {where}.name = 'adamw' "
      f"or {where}.weight_decay = 0 (name is {name!r})."
    )
  momentum = fields["momentum"]
  if not (_is_number(momentum) and 0 <= momentum < 1):
    raise ValueError(
      f"{where}.momentum must be a number in [0, 1) (0 = plain SGD, 0.9 is usual); "
      f"got {momentum!r}."
    )
  if momentum > 0 and name != "sgd":
    raise ValueError(
      f"{where}.momentum = {momentum!r} is only used by sgd; set {where}.name = 'sgd' "
      f"or {where}.momentum = 0 (name is {name!r})."
    )


def learning_rate_schedule(
  config: Mapping[str, Any] | ml_collections.ConfigDict, *, steps_per_epoch: int, epochs: int
) -> float | optax.Schedule:
  """η as a float (constant, no warmup) or as the step → η_t schedule of the module docstring."""
  fields = _fields(config)
  lr = float(fields["learning_rate"])
  warmup_steps = fields["warmup_epochs"] * steps_per_epoch
  total_steps = epochs * steps_per_epoch
  if fields["schedule"] == "cosine":
    return optax.warmup_cosine_decay_schedule(
      init_value=0.0,
      peak_value=lr,
      warmup_steps=warmup_steps,
      decay_steps=total_steps,  # counts the warmup steps too
      end_value=0.0,
    )
  if warmup_steps == 0:
    return lr
  return optax.join_schedules(
    [optax.linear_schedule(0.0, lr, warmup_steps), optax.constant_schedule(lr)], [warmup_steps]
  )


def make_optimizer(
  config: Mapping[str, Any] | ml_collections.ConfigDict,
  *,
  steps_per_epoch: int,
  epochs: int,
  where: str = "optimizer",
) -> optax.GradientTransformation:
  """The ``tx`` of an optimizer config (see the module docstring), validated first.

  Args:
    config: the optimizer section (a ConfigDict or a dict).
    steps_per_epoch, epochs: the training length, for the schedule (``steps_per_epoch`` is
      ``num_examples // batch_size``, as the trainer takes it).
    where: the section's path in the config, for error messages.
  """
  validate_optimizer(config, where)
  if not (steps_per_epoch >= 1 and epochs >= 1):
    raise ValueError(
      f"{where}: need steps_per_epoch >= 1 and epochs >= 1; got {steps_per_epoch} and {epochs}."
    )
  fields = _fields(config)
  if fields["warmup_epochs"] >= epochs:
    raise ValueError(
      f"{where}.warmup_epochs = {fields['warmup_epochs']} would warm up for the whole training "
      f"({epochs} epochs); lower {where}.warmup_epochs below {epochs}."
    )
  lr = learning_rate_schedule(config, steps_per_epoch=steps_per_epoch, epochs=epochs)
  if fields["name"] == "adam":
    tx = optax.adam(lr)
  elif fields["name"] == "adamw":
    tx = optax.adamw(lr, weight_decay=float(fields["weight_decay"]))
  else:
    tx = optax.sgd(lr, momentum=float(fields["momentum"]) or None)
  if fields["clip_norm"] > 0:
    tx = optax.chain(optax.clip_by_global_norm(float(fields["clip_norm"])), tx)
  return tx
