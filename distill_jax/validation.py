"""Checks a whole experiment config once, before any work: every bad value gets a ValueError
naming the field, the value and the fix.

Each section is checked by the module that owns it (``teacher.validate``, ``optim``, the map
family's ``validate``, ``models.validate``); this module checks the top level and the datasets,
and calls them.
"""

from __future__ import annotations

import jax

from distill_jax import data as data_lib
from distill_jax import losses
from distill_jax import maps
from distill_jax import models
from distill_jax import optim
from distill_jax import students
from distill_jax import teacher as teacher_lib

IMAGENETTE = "imagenette"


def validate_config(config) -> None:
  """Raises ValueError for the first bad value of ``config``.

  A registered dataset's image shape and split sizes are known only once it is loaded: the
  checks that need them run then, in ``check_loaded`` (still before any training)."""
  family = maps.family_for(config.mapping)  # unknown mapping: the valid names
  _check_datasets(config)
  _check_max_sizes(config)
  _check_small_pool(config)
  _check_grid(config)
  for part in ("teacher", "student"):
    _check_training(config[part], part)
  teacher_lib.validate(config)
  family.validate(config)
  image_size = config.data.image_size
  _check_shapes(
    config,
    family,
    source_shape=data_lib.image_shape(config.source_dataset, image_size),
    target_shape=data_lib.image_shape(config.target_dataset, image_size),
  )
  devices = _devices_per_run(config, _device_count(config))
  _check_batches(
    config,
    devices,
    source_big=split_sizes(config, config.source_dataset)["big"],
    target_small=split_sizes(config, config.target_dataset)["small"],
  )


def _check_max_sizes(config) -> None:
  """``data.max_big / max_small / max_test``: None (the whole split) or a size >= 1."""
  for field in ("max_big", "max_small", "max_test"):
    value = config.data.get(field)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
      raise ValueError(
        f"data.{field} = {value!r}: give a number of examples >= 1 (a seeded subset of the "
        f"split), or leave it unset for the whole split (--config.data.{field}=N)."
      )


def _small_pool(config) -> int:
  return config.data.get("small_pool", data_lib.IDX_SPLIT_SIZES["small"])


def _check_small_pool(config) -> None:
  """``data.small_pool``: an int in [1, 59,999]; only the talk's 1,000 where a VAE is learned
  (it pairs Fashion-MNIST-Big and -Small as the talk splits them); and ``data.max_small`` no
  larger than the target's Small split, whose size the config fixes."""
  pool = _small_pool(config)
  try:
    data_lib.check_small_pool(pool)
  except data_lib.DataError as error:
    raise ValueError(f"data.{error}") from None
  if "vae" in config and pool != data_lib.IDX_SPLIT_SIZES["small"]:
    raise ValueError(
      f"data.small_pool = {pool}: the VAE experiments use the talk's split (Small = the last "
      "1,000 training images); leave data.small_pool at 1000 for them."
    )
  small = split_sizes(config, config.target_dataset, limited=False)["small"]
  wanted = config.data.max_small
  if small is not None and wanted is not None and wanted > small:
    dataset = config.target_dataset
    fix = (
      f"raise data.small_pool to at least {wanted} (Small is drawn from the last small_pool "
      "training images; Big is the rest)"
      if dataset in data_lib.IDX_DATASETS
      else "raise data.imagenette_small"
      if dataset == IMAGENETTE
      else "lower it"
    )
    raise ValueError(
      f"data.max_small = {wanted}: {dataset} Small holds only {small:,} images; {fix}."
    )


def check_loaded(config, source: dict, target: dict) -> None:
  """The shape and size checks of ``validate_config`` again, on the loaded source and target
  splits (``data.max_*`` subsets applied): what a registered dataset only tells once loaded."""
  family = maps.family_for(config.mapping)
  _check_shapes(
    config,
    family,
    source_shape=tuple(source["big"].images.shape[1:]),
    target_shape=tuple(target["small"].images.shape[1:]),
  )
  _check_batches(
    config,
    _devices_per_run(config, _device_count(config)),
    source_big=len(source["big"].labels),
    target_small=len(target["small"].labels),
  )


def _check_shapes(config, family, *, source_shape, target_shape) -> None:
  """φ's output on target images against what the teacher reads (φ(source) or the source as
  is); a None shape (a registered dataset not loaded yet) is checked later."""
  if target_shape is None:
    return
  mapped_shape = tuple(family.output_shape(config, target_shape))
  if any(size < 1 for size in mapped_shape):
    raise ValueError(
      f"φ = {config.mapping} turns the {target_shape} target images into {mapped_shape}: "
      f"nothing is left; change config.maps.{config.mapping} (e.g. a smaller dilation)."
    )
  if source_shape is None:
    return
  source_shape = tuple(source_shape)
  if config.teacher.train_on == "source" and mapped_shape != source_shape:
    if tuple(family.output_shape(config, source_shape)) == mapped_shape:
      fix = "use teacher.train_on='phi'"
    else:
      fix = "φ must turn target images into images of the source's shape (its output_shape)"
    raise ValueError(
      f"a teacher trained on raw source images of shape {source_shape} cannot read φ(x) of "
      f"shape {mapped_shape} for mapping {config.mapping!r}; {fix}."
    )
  if config.teacher.train_on == "phi" and source_shape != tuple(target_shape):
    teacher_shape = tuple(family.output_shape(config, source_shape))
    if teacher_shape != mapped_shape:
      raise ValueError(
        f"the teacher learns φ(source) of shape {teacher_shape} ({config.source_dataset} "
        f"images {source_shape}) but would read φ(target) of shape {mapped_shape} "
        f"({config.target_dataset} images {tuple(target_shape)}); for a φ that maps target "
        "images onto source images, set --config.teacher.train_on=source."
      )


def _device_count(config) -> int:
  """The devices the mesh will span: ``num_devices``, or all visible ones for 0 / None."""
  visible = jax.device_count()
  wanted = config.num_devices
  if wanted is None or wanted == 0:
    return visible
  if isinstance(wanted, bool) or not isinstance(wanted, int) or not 0 < wanted <= visible:
    raise ValueError(
      f"num_devices must be an int from 1 to {visible} (the visible "
      f"{jax.devices()[0].platform} devices), or 0 for all; got {wanted!r}."
    )
  return wanted


def _devices_per_run(config, devices: int) -> int:
  """``devices_per_run`` (the mesh's data axis), checked against the mesh's ``devices``."""
  per_run = config.get("devices_per_run", 1)
  if isinstance(per_run, bool) or not isinstance(per_run, int) or per_run < 1 or devices % per_run:
    raise ValueError(
      f"devices_per_run must be a whole number >= 1 that divides the {devices} devices of the "
      f"mesh (runs × data = devices), got {per_run!r}; 1 (the default) puts every device on "
      "runs, --config.num_devices picks how many devices."
    )
  return per_run


def split_sizes(config, dataset: str, limited: bool = True) -> dict[str, int | None]:
  """How many examples each split of ``dataset`` will hold (``data.max_*`` applied unless
  ``limited`` is False), as the config plans them (None for a registered dataset, not loaded
  yet); the loaded data is checked again by ``check_loaded``."""
  if dataset == IMAGENETTE:
    small = config.data.imagenette_small
    full = {
      "big": data_lib.IMAGENETTE_SIZES["train"] - small,
      "small": small,
      "test": data_lib.IMAGENETTE_SIZES["val"],
    }
  elif dataset == data_lib.GENERATED_MNIST and "generated" in config:
    full = dict(zip(data_lib.SPLIT_NAMES, config.generated.split))
  elif dataset in data_lib.IDX_DATASETS:
    full = data_lib.idx_split_sizes(_small_pool(config))
  elif dataset == data_lib.GENERATED_MNIST:
    full = dict(data_lib.IDX_SPLIT_SIZES)
  else:
    return dict.fromkeys(data_lib.SPLIT_NAMES)
  if not limited:
    return full
  limits = {
    "big": config.data.max_big,
    "small": config.data.max_small,
    "test": config.data.max_test,
  }
  return {split: min(size, limits[split] or size) for split, size in full.items()}


def _check_batches(config, devices: int, *, source_big: int | None, target_small: int | None):
  """Batch sizes against the splits they cut (None: not known yet) and the ``devices`` each
  run's batch is split across (``devices_per_run``)."""
  checks = [
    ("teacher", f"{config.source_dataset} Big", source_big),
    ("student", f"{config.target_dataset} Small", target_small),
  ]
  if "vae" in config:  # the VAE learns Fashion-MNIST-Big or -Small (vae.train_on)
    split = "small" if config.vae.get("train_on") == "small" else "big"
    size = split_sizes(config, "fashion_mnist")[split]
    checks.append(("vae", f"fashion_mnist {split.capitalize()}", size))
  if config.eval_batch_size % devices:
    raise ValueError(
      f"eval_batch_size = {config.eval_batch_size} cannot be split evenly across {devices} "
      f"devices per run; use a multiple of {devices} or set --config.devices_per_run to a "
      "divisor of it."
    )
  for part, split_name, size in checks:
    batch_size = config[part].batch_size
    if size is not None and batch_size > size:
      raise ValueError(
        f"{part}.batch_size = {batch_size} but {split_name} has {size:,} examples: an epoch "
        f"would have no step; set --config.{part}.batch_size <= {size}."
      )
    if batch_size % devices:
      raise ValueError(
        f"{part}.batch_size = {batch_size} cannot be split evenly across {devices} devices "
        f"per run; use a multiple of {devices} or set --config.devices_per_run to a divisor "
        "of it."
      )


def _check_datasets(config) -> None:
  targets = data_lib.dataset_names()
  if config.target_dataset not in targets:
    raise ValueError(
      f"unknown target dataset {config.target_dataset!r}; choose one of {', '.join(targets)}, "
      'or register yours in a --config file (data.register_dataset; README, "Your own '
      'experiment").'
    )
  sources = (*targets, data_lib.GENERATED_MNIST)
  if config.source_dataset not in sources:
    raise ValueError(
      f"unknown source dataset {config.source_dataset!r}; choose one of {', '.join(sources)}, "
      "or register yours in a --config file (data.register_dataset)."
    )
  if config.source_dataset == data_lib.GENERATED_MNIST and config.mapping not in (
    "generated",
    "generated_full",
  ):
    raise ValueError(
      "source_dataset='generated_mnist' is made by φ_vae from Fashion-MNIST: it needs "
      "mapping 'generated' or 'generated_full' and target_dataset 'fashion_mnist'."
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


def _check_grid(config) -> None:
  if not config.lams or not config.temperatures:
    raise ValueError("lams and temperatures need at least one value each.")
  for lam in config.lams:
    losses.check_lam_temperature(float(lam), 1.0)
  for temperature in config.temperatures:
    losses.check_lam_temperature(0.0, float(temperature))
  if config.seeds < 1:
    raise ValueError(f"seeds must be >= 1, got {config.seeds}.")
  if config.student_seeds not in students.STUDENT_SEED_DESIGNS:
    raise ValueError(
      f"unknown student_seeds {config.student_seeds!r}; set --config.student_seeds to one of "
      f"{', '.join(students.STUDENT_SEED_DESIGNS)}."
    )
  if not isinstance(config.effect_epochs, int) or config.effect_epochs < 1:
    raise ValueError(
      f"effect_epochs must be an int >= 1 (the effects average each run's last n epochs), got "
      f"{config.effect_epochs!r}."
    )
  if config.checkpoint_every < 1 or config.eval_batch_size < 1:
    raise ValueError(
      f"checkpoint_every and eval_batch_size must be >= 1; got {config.checkpoint_every}, "
      f"{config.eval_batch_size}."
    )


def _check_training(section, where: str) -> None:
  """A ``teacher`` / ``student`` section: model, epochs, batches, optimizer, dispatch."""
  models.validate(section, where)
  if section.epochs < 1 or section.batch_size < 1:
    raise ValueError(
      f"{where}: epochs and batch_size must be >= 1; got {section.epochs}, {section.batch_size}."
    )
  optim.validate_optimizer(section.optimizer, f"{where}.optimizer")
  if section.steps_per_call is not None and section.steps_per_call < 1:
    raise ValueError(f"{where}.steps_per_call must be >= 1 or None, got {section.steps_per_call}.")
  if section.eval_every < 1:
    raise ValueError(
      f"{where}.eval_every must be >= 1 (evaluate after every k-th epoch), got "
      f"{section.eval_every}."
    )
