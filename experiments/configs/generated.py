"""Fashion-MNIST students taught by a teacher trained on GeneratedMNIST = φ_vae(Fashion-MNIST).

The two-decoder VAE of ``vae.py`` translates all 70,000 Fashion-MNIST images into digits, stored
once as the tfds dataset ``distill_generated_mnist/vae_<VAE key>_mean`` (Big 59,000 + Small 1,000
+ Test 10,000, Fashion's order and labels). The teacher MLP trains on GeneratedMNIST-Big; the
students (linear) on Fashion-MNIST-Small, arms ``no_teacher``, ``teacher`` (f on raw garments)
and ``teacher_phi`` (f(φ_vae(x))).

  python -m experiments.distill --mapping=generated --data_dir=../shared/data --cache_dir=runs/cache

(``--mapping=generated`` picks this file.) Measured results and wall time: README.md ("The VAE
map") and BUILD_NOTES.md ("Experiments (issue 3)").
"""

from experiments.configs import vae


def get_config():
  config = vae.get_config()
  config.mapping = "generated"  # φ_vae, with the teacher on the source set it makes
  config.source_dataset = "generated_mnist"
  return config
