"""The conv experiment's teacher and students run through the library, for the benchmarks."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from distill_jax import epochs as epochs_lib
from distill_jax import losses, maps, models, parallel
from distill_jax import students as students_lib
from distill_jax import teacher as teacher_lib
from distill_jax.data import read_idx_pair

PHI = maps.get_map("conv")


def load_fashion(data_dir):
  """Big / Small / Test as float32 NHWC in [0, 1], straight from the IDX files."""
  folder = os.path.join(data_dir, "fashion_mnist")
  train_x, train_y = read_idx_pair(
    os.path.join(folder, "train-images-idx3-ubyte.gz"),
    os.path.join(folder, "train-labels-idx1-ubyte.gz"),
  )
  test_x, test_y = read_idx_pair(
    os.path.join(folder, "t10k-images-idx3-ubyte.gz"),
    os.path.join(folder, "t10k-labels-idx1-ubyte.gz"),
  )
  as_float = lambda x: (x.astype(np.float32) / 255.0)[..., None]  # noqa: E731
  train_x, test_x = as_float(train_x), as_float(test_x)
  train_y, test_y = train_y.astype(np.int32), test_y.astype(np.int32)
  return {
    "big": (train_x[:59000], train_y[:59000]),
    "small": (train_x[59000:], train_y[59000:]),
    "test": (test_x, test_y),
  }


def fit_teacher(config, data, mesh, workdir, on_epoch=None) -> teacher_lib.TrainedTeacher:
  """The teacher on φ_conv(Big), scored on φ_conv(Test); checkpoints in ``workdir``."""
  return teacher_lib.fit_teacher(
    config,
    phi=PHI,
    phi_key=None,
    big=data["big"],
    test=data["test"],
    mesh=mesh,
    cache_dir=workdir,
    on_epoch=on_epoch,
  )


def fit_students(config, data, teacher, mesh, workdir, on_epoch=None, before_arm=None) -> dict:
  """``{arm: train.FitResult}`` for both arms (no_teacher, teacher_phi), all seeds of an arm in
  one vmapped program; ``before_arm(arm)`` is called before each arm starts."""
  results = {}
  for arm in students_lib.arms_for(PHI, data["small"][0].shape[1:]):
    if before_arm is not None:
      before_arm(arm)
    results[arm.name] = students_lib.fit_students(
      config,
      arm,
      phi=PHI,
      phi_key=None,
      teacher=teacher,
      small=data["small"],
      test=data["test"],
      mesh=mesh,
      workdir=workdir,
      on_epoch=on_epoch,
    ).result
  return results


def teacher_loss(model):
  """The teachers' ``loss_fn``: mean cross-entropy of ``model``'s logits on the batch."""

  def loss_fn(params, batch, key, hparams, context):
    return jnp.mean(losses.cross_entropy(model.apply(params, batch["image"]), batch["label"]))

  return loss_fn


def epoch_program(loss_fn, model, images, labels, runs, batch_size, mesh, hparams=None, test=None):
  """The library's scanned epoch (``epochs.make_epoch_fn``, the program ``train.fit`` runs) for
  ``runs`` vmapped runs of ``model`` under Adam(1e-3), compiled, with its arguments for epoch 1:
  ``compiled(*args)`` runs an epoch; pass the returned states (and another epoch) for the next.
  ``test``: ``(extra training columns, the test argument)`` to evaluate, else no evaluation."""
  tx = optax.adam(1e-3)
  epoch_fn = epochs_lib.make_epoch_fn(
    loss_fn,
    losses.classification_metrics(model.apply),
    tx,
    num_examples=len(labels),
    batch_size=batch_size,
    mesh=mesh,
  )
  init_keys, keys = epochs_lib.split_run_keys(jax.random.split(jax.random.key(0), runs))
  put = lambda tree: parallel.put_replicated(tree, mesh)  # noqa: E731
  states = put(epochs_lib.init_states(models.init_fn(model, images.shape[1:]), tx, init_keys))
  train_data = {"image": images, "label": labels, **({} if test is None else test[0])}
  train_data = parallel.put_rows(train_data, mesh)
  hparams = put({k: jnp.asarray(v, jnp.float32) for k, v in (hparams or {}).items()})
  test_arg = None if test is None else test[1]
  args = (states, train_data, put(keys), 1, hparams, None, test_arg)
  compiled = epoch_fn.lower(*args, evaluate=test is not None).compile()
  return compiled, args
