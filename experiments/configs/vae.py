"""Fashion-MNIST students taught by an MNIST teacher through the learned map φ_vae.

The two-decoder VAE (latent 16, 10 epochs) is trained on Fashion-MNIST-Big paired by class with
MNIST train; the teacher MLP trains on real MNIST-Big; students (linear) on Fashion-MNIST-Small
with arms ``no_teacher``, ``teacher`` (the MNIST teacher on raw garments) and ``teacher_phi``
(f(φ_vae(x))). Also writes ``vae_translations.png`` and ``vae_latent_grid.png`` (a latent-2 VAE).
The same as ``--mapping=vae`` on the default config:

  python -m experiments.distill --config=experiments/configs/vae.py --data_dir=../shared/data

Measured results and wall time: BUILD_NOTES.md ("Experiments (issue 3)").
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.mapping = "vae"  # source_dataset -> mnist, teacher.train_on -> source
  return config
