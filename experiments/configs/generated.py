"""The talk's GeneratedMNIST: a teacher learns digits the VAE generates from FashionMNIST-Small.

The two-decoder VAE of ``vae.py`` encodes each of the 1,000 FashionMNIST-Small garments and
decodes 70 independent draws z ~ q(z | x) with its MNIST decoder: 70,000 digits, each labelled
with its garment's class, shuffled (``generated.seed``) and split into GeneratedMNIST-Big 59,000
+ Small 1,000 and Test 10,000, stored once as the tfds dataset
``distill_generated_mnist/vae_<VAE key>_small_<recipe key>``. The teacher MLP trains on
GeneratedMNIST-Big, so its labels are the 1,000 Small labels; the students (linear) on
FashionMNIST-Small, arms ``no_teacher``, ``teacher`` (f on raw garments) and ``teacher_phi``
(f(φ_vae(x)), φ_vae decoding the encoder mean).

  python -m experiments.distill --mapping=generated --data_dir=../shared/data --cache_dir=runs/cache

(``--mapping=generated`` picks this file.) ``generated_full.py`` is the ablation that translates
all 70,000 Fashion-MNIST images instead.

Expected (docs/REPORT.md's run at 0a9e680 from a fresh workdir, a 2-core CPU without GPU; Δ of
``teacher_phi`` against ``no_teacher``, each run's mean over its last 10 epochs, 95% interval over
the 5 teachers × 5 seeds; another machine may give other digits, with intervals alike): teachers on
φ_vae(test) 0.8763 ± 0.0013; Δ accuracy +0.0062 [+0.0054, +0.0070], Δ cross-entropy −0.0235
[−0.0267, −0.0202] (holds / holds); 58 s with the VAE cached.

The VAE learns Fashion-MNIST-Big's garments (as for ``vae.py``); with
``--config.vae.train_on=small --config.vae.epochs=1770 --config.vae.eval_every=59`` it learns
only the 1,000 Small garments, and the gain does not hold (docs/vae.md: GeneratedMNIST
without the Big labels).

<!-- numbers: ../../docs/report.json; constants: 95% -->
"""

import ml_collections

from distill_jax import data as data_lib
from experiments.configs import vae


def generated_section() -> ml_collections.ConfigDict:
  """How GeneratedMNIST is made from FashionMNIST-Small (the talk's recipe)."""
  generated = ml_collections.ConfigDict()
  generated.samples_per_image = 70  # independent draws z ~ q(z|x) per Small image
  # "mean": the decoder's pixel probabilities as grey levels, like the real digits and like
  # φ_vae(x), which the teacher grades; "bernoulli": a 0/255 sample of them.
  generated.pixels = "mean"
  generated.split = data_lib.TALK_SPLIT  # (big, small, test); must add up to 1,000 × 70
  generated.seed = 0  # the draws and the shuffle before the split
  return generated


def get_config():
  config = vae.get_config()
  config.mapping = "generated"  # φ_vae, with the teacher on the GeneratedMNIST it makes
  config.source_dataset = "generated_mnist"
  config.generated = generated_section()
  return config
