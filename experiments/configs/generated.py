"""Fashion-MNIST students taught by a teacher trained on GeneratedMNIST = φ_vae(Fashion-MNIST).

The two-decoder VAE of ``vae.py`` translates all 70,000 Fashion-MNIST images into digits, stored
once as the tfds dataset ``distill_generated_mnist/vae_<VAE key>_mean`` (Big 59,000 + Small 1,000
+ Test 10,000, Fashion's order and labels). The teacher MLP trains on GeneratedMNIST-Big; the
students (linear) on Fashion-MNIST-Small, arms ``no_teacher``, ``teacher`` (f on raw garments)
and ``teacher_phi`` (f(φ_vae(x))). The same as ``--mapping=generated`` on the default config:

  python -m experiments.distill --config=experiments/configs/generated.py --data_dir=../shared/data

Measured results and wall time: BUILD_NOTES.md ("Experiments (issue 3)").
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.mapping = "generated"  # φ = vae, source_dataset -> generated_mnist, train_on -> source
  return config
