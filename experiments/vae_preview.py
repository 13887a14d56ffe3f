"""Preview of the two-decoder VAE (issue 3, until ``--mapping=vae`` exists in the CLI).

  python -m experiments.vae_preview --data_dir=../shared/data --out=runs/vae_preview

Trains a latent-2 VAE on Fashion-MNIST-Big paired with MNIST train by class (5 epochs, ~2.5 min on
2 CPU cores), prints the test −ELBO per epoch and writes the latent-grid and translation figures.
"""

import os

import jax
import numpy as np
from absl import app, flags

from distill_jax import parallel, vae
from distill_jax.data import load_splits, resolve_data_dir

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder with mnist/ and fashion_mnist/.")
_TFDS_DIR = flags.DEFINE_string(
  "tfds_dir", os.path.expanduser("~/tensorflow_datasets"), "tfds dir."
)
_OUT = flags.DEFINE_string("out", "runs/vae_preview", "Where the figures go.")
_EPOCHS = flags.DEFINE_integer("epochs", 5, "Training epochs.")


def main(argv):
  del argv
  data_dir = resolve_data_dir(_DATA_DIR.value)
  fashion = load_splits("fashion_mnist", data_dir=data_dir, tfds_dir=_TFDS_DIR.value)
  mnist = load_splits("mnist", data_dir=data_dir, tfds_dir=_TFDS_DIR.value)
  mnist_train = tuple(np.concatenate([a, b]) for a, b in zip(mnist["big"], mnist["small"]))
  model = vae.TwoDecoderVAE(latent_dim=2)
  result = vae.fit_vae(
    model,
    fashion_train=fashion["big"],
    fashion_test=fashion["test"],
    mnist_train=mnist_train,
    mnist_test=mnist["test"],
    epochs=_EPOCHS.value,
    batch_size=100,
    learning_rate=1e-3,
    mesh=parallel.make_mesh(),
    on_epoch=lambda epoch, m: print(
      f"epoch {epoch}: test -ELBO {m['test_neg_elbo'][0]:.1f} (KL {m['test_kl'][0]:.2f}, "
      f"log p(m|z) {m['test_mnist_log_lik'][0]:.1f}, log p(x|z) {m['test_fashion_log_lik'][0]:.1f})",
      flush=True,
    ),
  )
  params = jax.tree.map(lambda leaf: leaf[0], result.params)
  os.makedirs(_OUT.value, exist_ok=True)
  vae.plot_latent_grids(model, params, os.path.join(_OUT.value, "latent_grids.png"))
  vae.plot_translations(
    model, params, fashion["test"][0][:12], os.path.join(_OUT.value, "translations.png")
  )
  print(f"figures in {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
