"""distill-jax: multi-domain knowledge distillation in JAX/Flax.

A teacher ``f`` trained on a large source set teaches a student ``g`` on a small target set
through a known map ``φ: X_t → X_s``:

  L(w) = -Σ_i log g_{y_i}(x_i) - λ Σ_i Σ_r f_r(φ(x_i)) log g_r(x_i)

Modules: ``losses`` (the loss), ``maps`` (the maps φ), ``models``, ``train`` (the trainer),
``data`` (tfds datasets), ``parallel`` (mesh/sharding), ``checkpoints``, ``report`` and
``experiment`` (the whole flow: ``run_experiment``), ``logs``.
"""

from distill_jax.experiment import run_experiment
from distill_jax.logs import show_progress_only
from distill_jax.losses import accuracy
from distill_jax.losses import cross_entropy
from distill_jax.losses import distillation_loss
from distill_jax.losses import soft_cross_entropy
from distill_jax.maps import Map
from distill_jax.maps import get_map
from distill_jax.maps import map_names
from distill_jax.maps import register_map
from distill_jax.models import get_model
from distill_jax.train import fit
from distill_jax.train import predict

__version__ = "0.1.0"

__all__ = [
  "accuracy",
  "cross_entropy",
  "distillation_loss",
  "soft_cross_entropy",
  "Map",
  "get_map",
  "map_names",
  "register_map",
  "get_model",
  "fit",
  "predict",
  "run_experiment",
  "show_progress_only",
]
