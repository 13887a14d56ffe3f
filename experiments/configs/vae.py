"""Fashion-MNIST students taught by an MNIST teacher through the learned map φ_vae.

The two-decoder VAE (latent 16) is trained on Fashion-MNIST-Big paired by class with MNIST train;
the teacher MLP trains on real MNIST-Big; students (linear) on Fashion-MNIST-Small with arms
``no_teacher``, ``teacher`` (the MNIST teacher on raw garments) and ``teacher_phi`` (f(φ_vae(x))).

  python -m experiments.distill --config=experiments/configs/vae.py --data_dir=../shared/data

Not yet measured at full size: see BUILD_NOTES.md (issue 3).
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.mapping = "vae"
  config.source_dataset = "mnist"
  config.target_dataset = "fashion_mnist"
  config.teacher.train_on = "source"
  return config
