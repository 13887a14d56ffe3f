"""One distillation experiment, end to end: data → φ → teacher → students → report.

``run_experiment(config, workdir, data_dir=..., tfds_dir=..., cache_dir=...)`` is what
``experiments/distill.py`` calls. Read top to bottom:

1. Check the whole config (``validation``), then load the source and target sets (``data``).
2. Build φ with its family (``maps``): a fixed map, the VAE (trained or reused from
   ``<cache_dir>/vae``; GeneratedMNIST made once), or style transfer (cached under
   ``<cache_dir>/phi``).
3. Train the teacher on φ(source Big), or reuse it from ``<cache_dir>/teachers`` (``teacher``);
   score it on φ(target test) with the target labels: how well φ keeps the class.
4. Per arm, all teachers × seeds × λ × T of the students in one vmapped program, resumable
   from ``<workdir>/students`` (``students``); each arm against no_teacher, paired by seed, with
   intervals over teachers (``effects``).
5. ``results.json``, ``results.md`` and the figures in ``workdir`` (``report``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import time

import jax
import ml_collections
from absl import logging

from distill_jax import checkpoints
from distill_jax import data as data_lib
from distill_jax import effects as effects_lib
from distill_jax import files
from distill_jax import fingerprints
from distill_jax import locks
from distill_jax import maps
from distill_jax import parallel
from distill_jax import provenance
from distill_jax import report
from distill_jax import students as students_lib
from distill_jax import teacher as teacher_lib
from distill_jax import validation


def run_experiment(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  data_dir: str | None,
  tfds_dir: str,
  cache_dir: str | None = None,
) -> dict:
  """Runs the whole experiment and writes its results into ``workdir``; returns the results.

  Teachers, VAEs and stylized sets are cached under ``cache_dir`` (default: ``workdir``) so
  that experiments in other workdirs can share them; students always live in ``workdir``.
  """
  validation.validate_config(config)
  cache_dir = cache_dir or workdir
  for what, folder in (("workdir", workdir), ("cache_dir", cache_dir), ("tfds_dir", tfds_dir)):
    files.ensure_writable_folder(folder, what)
  with _outputs_of_one_run(workdir):
    return _run(config, workdir, data_dir=data_dir, tfds_dir=tfds_dir, cache_dir=cache_dir)


FAILED = "FAILED.txt"  # in a workdir whose latest run did not finish: what stopped it


@contextlib.contextmanager
def _outputs_of_one_run(workdir: str):
  """The workdir's outputs for one run at a time: its lock is held for the run (another
  experiment in the same workdir waits, so results.json, results.md, the figures and
  TensorBoard never mix two configs). A run that fails or is interrupted leaves ``FAILED.txt``
  saying so and whether the results files there are an earlier run's; a run that finishes
  removes it."""
  if not parallel.is_primary():  # process 0 writes the outputs
    yield
    return
  lock_path = os.path.join(workdir, ".locks", "outputs.lock")
  with locks.hold(workdir, what="workdir", lock_path=lock_path):
    try:
      yield
    except BaseException as error:
      _mark_failed(workdir, error)
      raise
    with contextlib.suppress(FileNotFoundError):
      os.remove(os.path.join(workdir, FAILED))


def _mark_failed(workdir: str, error: BaseException) -> None:
  what = str(error).splitlines()[0] if str(error) else ""
  if isinstance(error, KeyboardInterrupt):
    what = "interrupted (Ctrl-C or SIGTERM)"
  results = os.path.join(workdir, "results.json")
  earlier = "No results were written."
  if os.path.exists(results):
    written = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.path.getmtime(results)))
    earlier = (
      "results.json, results.md, the figures and tensorboard/ here are from an earlier run "
      f"(results.json written {written}), not from this one."
    )
  text = (
    f"The latest run in this workdir did not finish ({time.strftime('%Y-%m-%d %H:%M:%S')}): "
    f"{type(error).__name__}: {what}\n{earlier}\nFinished work (checkpoints) is kept: "
    "rerun the command to resume; this file is removed when a run finishes.\n"
  )
  with contextlib.suppress(OSError):  # e.g. the disk is full: the error itself says enough
    files.write_text(os.path.join(workdir, FAILED), text)


def _run(
  config: ml_collections.ConfigDict,
  workdir: str,
  *,
  data_dir: str | None,
  tfds_dir: str,
  cache_dir: str,
) -> dict:
  """``run_experiment`` once the config is checked and the workdir is this run's."""
  started = time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  mesh = parallel.make_mesh(config.num_devices, config.get("devices_per_run", 1))
  logging.info(
    "experiment: mapping=%s on %d %s device(s) (%d run groups × %d devices per run); workdir %s",
    config.mapping,
    mesh.devices.size,
    jax.devices()[0].platform,
    parallel.run_groups(mesh),
    parallel.data_devices(mesh),
    os.path.abspath(workdir),
  )

  load = _loader(config, data_dir=data_dir, tfds_dir=tfds_dir)
  loaded = {config.source_dataset, config.target_dataset} - {data_lib.GENERATED_MNIST}
  datasets = {name: _subsets(load(name, subsets=True), config) for name in sorted(loaded)}
  data_seconds = time.perf_counter() - started
  for name, splits in datasets.items():
    sizes = " / ".join(f"{split} {len(arrays.labels):,}" for split, arrays in splits.items())
    registered = data_lib.registry.get(name)
    about = f" ({registered.description})" if registered and registered.description else ""
    logging.info("data: %s%s %s", name, about, sizes)
  logging.info("data: loaded in %.1f s", data_seconds)
  if config.source_dataset in datasets:  # a registered dataset's shapes and sizes, checked now
    validation.check_loaded(
      config, datasets[config.source_dataset], datasets[config.target_dataset]
    )
  num_classes = _num_classes(config, load)

  context = maps.MapContext(
    load=load, mesh=mesh, cache_dir=cache_dir, tfds_dir=tfds_dir, workdir=workdir
  )
  stage = time.perf_counter()
  built = maps.family_for(config.mapping).build(config, datasets, context)
  if built.source_splits is not None:
    datasets[config.source_dataset] = _subsets(built.source_splits, config)
  source, target = datasets[config.source_dataset], datasets[config.target_dataset]
  # φ in the teachers' and students' keys: what names it and what it does (a changed map body
  # under the same name gives other outputs on the probe, so nothing computed with the old one
  # is reused).
  phi_key = checkpoints.config_key(
    {
      "key": built.key,
      "behaviour": fingerprints.of_map(built.phi, target["small"].images.shape[1:]),
    }
  )
  logging.info("φ: %s ready in %.1f s", built.phi.name, time.perf_counter() - stage)
  eval_size = config.teacher.eval_size

  stage = time.perf_counter()
  teacher = teacher_lib.fit_teacher(
    config,
    phi=built.phi,
    phi_key=phi_key,
    big=source["big"],
    test=data_lib.subset(source["test"], eval_size),
    mesh=mesh,
    cache_dir=cache_dir,
    source_key=built.source_key,
    summary_dir=workdir,
    num_classes=num_classes,
  )
  phi_info = dict(built.info)
  phi_info.update(
    teacher_lib.score_through_phi(
      teacher, built.phi, data_lib.subset(target["test"], eval_size), mesh
    )
  )

  logging.info(
    "teacher: %s in %.1f s",
    "reused" if teacher.info["reused_checkpoint"] else "trained",
    time.perf_counter() - stage,
  )

  small, test = target["small"], target["test"]
  arm_results = _train_students(
    config,
    built,
    phi_key,
    teacher,
    small,
    test,
    mesh=mesh,
    workdir=workdir,
    num_classes=num_classes,
  )
  arm_effects = effects_lib.effects(arm_results, config.effect_epochs)
  results = {
    "experiment": (
      f"{config.source_dataset} -> {config.target_dataset} through phi = {built.phi.name}"
    ),
    "config": _config_for_results(config),
    "datasets": {
      role: _dataset_facts(name, datasets[name], num_classes)
      for role, name in (("source", config.source_dataset), ("target", config.target_dataset))
    },
    "teacher": teacher.info,
    "phi": phi_info,
    "arms": arm_results,
    "effects": arm_effects,
    "contrasts": effects_lib.contrasts(arm_effects),  # through φ against without φ
    "num_examples": {
      "big": len(source["big"].labels),
      "small": len(small.labels),
      "test": len(test.labels),
    },
    "diverged": report.diverged_runs(arm_results, num_classes),
    "devices": [str(d) for d in mesh.devices.flat],
    # the command line (a Python caller's own argv), the commit and the machine
    "provenance": provenance.record(),
    "seconds": {"data": data_seconds, "total": time.perf_counter() - started},
  }
  for item in results["diverged"]:
    logging.warning("students %s.", report.diverged_text(item))
  stage = time.perf_counter()
  report.write(results, workdir, other_figures=tuple(built.figures))
  for path in built.figures:
    logging.info("figure: %s", path)
  logging.info(
    "report: results.json, results.md, figures and tensorboard/ written in %.1f s",
    time.perf_counter() - stage,
  )
  logging.info(
    "experiment done in %.1fs: %s", results["seconds"]["total"], os.path.join(workdir, "results.md")
  )
  return results


def _num_classes(config, load) -> int:
  """The class count of the source and target sets, which must agree (the teacher's outputs
  are the student's soft targets)."""
  counts = {
    name: data_lib.num_classes(name, functools.partial(load, name))
    for name in (config.source_dataset, config.target_dataset)
  }
  if len(set(counts.values())) > 1:
    listed = " and ".join(f"{name} {count}" for name, count in counts.items())
    raise ValueError(
      f"the source and target sets need the same classes: {listed} classes; relabel one, or "
      "declare num_classes= when registering it."
    )
  return counts[config.target_dataset]


def _dataset_facts(name: str, splits, num_classes: int) -> dict:
  """``results.json``'s ``datasets`` entry of a source or target set."""
  registered = data_lib.registry.get(name)
  return {
    "name": name,
    "registered": registered is not None,
    "description": registered.description if registered else "built in",
    "num_classes": num_classes,
    "image_shape": list(next(iter(splits.values())).images.shape[1:]),
    "sizes": {split: len(arrays.labels) for split, arrays in splits.items()},
  }


def _train_students(
  config, built, phi_key, teacher, small, test, *, mesh, workdir, num_classes=10
) -> dict:
  """Every arm's students; ``results.json``'s ``arms`` (one entry per arm and λ, T)."""
  arm_results = {}
  for arm in students_lib.arms_for(built.phi, small.images.shape[1:]):
    stage = time.perf_counter()
    runs = students_lib.fit_students(
      config,
      arm,
      phi=built.phi,
      phi_key=phi_key,
      teacher=teacher,
      small=small,
      test=test,
      mesh=mesh,
      workdir=workdir,
      live_summaries=True,
      num_classes=num_classes,
    )
    arm_results.update(
      report.group_runs(arm.name, runs.grid, runs.result.history, runs.result.seconds)
    )
    logging.info(
      "students[%s]: %d runs in %.1f s", arm.name, len(runs.grid), time.perf_counter() - stage
    )
  return arm_results


def _config_for_results(config) -> dict:
  """The config as a dict, with only this mapping's options under ``maps`` (a conv run does not
  carry the noise map's settings)."""
  as_dict = config.to_dict()
  as_dict["maps"] = {
    name: options for name, options in as_dict.get("maps", {}).items() if name == config.mapping
  }
  return as_dict


def _max_sizes(config) -> dict:
  return {"big": config.data.max_big, "small": config.data.max_small, "test": config.data.max_test}


def _loader(config, *, data_dir: str | None, tfds_dir: str):
  """``load(name, subsets=False)``: a dataset's splits, each loaded once per experiment;
  ``subsets=True`` decodes only the ``data.max_*`` subsets (what matters for Imagenette at
  224 px), ``False`` the whole splits (what the VAE learns from)."""
  max_sizes = _max_sizes(config)
  any_subset = any(size is not None for size in max_sizes.values())

  # A registered dataset is read whole (its load returns every split), once; built-in ones
  # decode only the subsets when asked for them.
  def subsets_for(name: str) -> bool:
    return any_subset and data_lib.registry.get(name) is None

  @functools.cache
  def load_once(name: str, subsets: bool):
    return data_lib.load(
      name,
      data_dir=data_dir,
      tfds_dir=tfds_dir,
      image_size=config.data.image_size,
      imagenette_small=config.data.imagenette_small,
      small_pool=config.data.get("small_pool", data_lib.IDX_SPLIT_SIZES["small"]),
      max_sizes=max_sizes if subsets else None,
    )

  return lambda name, subsets=False: load_once(name, subsets and subsets_for(name))


def _subsets(splits, config) -> dict:
  """The ``data.max_*`` subsets of a dataset's splits (a no-op on splits already subset)."""
  sizes = _max_sizes(config)
  return {split: data_lib.subset(arrays, sizes[split]) for split, arrays in splits.items()}
