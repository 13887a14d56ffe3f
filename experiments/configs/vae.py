"""Fashion-MNIST students taught by an MNIST teacher through the learned map φ_vae.

The two-decoder VAE (latent 16, dense encoder 512-256, decoders 256-512, 30 epochs) is trained
on Fashion-MNIST-Big paired by class with MNIST train; the teacher MLP trains on real MNIST-Big
(as is: ``teacher.train_on = "source"``); students (linear) on Fashion-MNIST-Small with arms
``no_teacher``, ``teacher`` (the MNIST teacher on raw garments) and ``teacher_phi``
(f(φ_vae(x))). Also writes ``vae_translations.png`` and ``vae_latent_grid.png`` (a latent-2 VAE).

  python -m experiments.distill --mapping=vae --data_dir=../shared/data --cache_dir=runs/cache

(``--mapping=vae`` picks this file.)

Expected (docs/REPORT.md's run at 0a9e680 from a fresh workdir, a 2-core CPU without GPU; Δ of
``teacher_phi`` against ``teacher``, the same teachers without φ (the talk's comparison), each
run's mean over its last 10 epochs, 95% interval over the 5 teachers × 5 seeds; another machine may
give other digits, with intervals alike): teachers on φ_vae(test) 0.8458 ± 0.0247; Δ accuracy
+0.3349 [+0.2945, +0.3753], Δ cross-entropy −0.6485 [−0.6863, −0.6107] (holds / holds); 278 s, the
VAE trained in it. Against ``no_teacher`` it does not hold: docs/vae.md.

<!-- numbers: ../../docs/report.json; constants: 95% -->
"""

import ml_collections

from distill_jax import optim
from experiments.configs import default


def vae_section() -> ml_collections.ConfigDict:
  """The learned map φ_vae: trained on Fashion-MNIST-Big paired with MNIST train."""
  vae = ml_collections.ConfigDict()
  # The garments it learns: "big" (Fashion-MNIST-Big, 59,000 labelled) or "small" (only the
  # students' FashionMNIST-Small: no garment label beyond Small anywhere; give it ~59× the
  # epochs, e.g. 1770 with eval_every=59, for as many steps as Big's 30 epochs)
  vae.train_on = "big"
  vae.encoder_type = "mlp"  # "mlp": dense layers encoder_hidden; "conv": 2 convs first
  vae.latent_dim = 16
  vae.encoder_hidden = (512, 256)
  vae.decoder_hidden = (256, 512)
  vae.epochs = 30
  vae.batch_size = 100
  vae.optimizer = optim.default_optimizer_config(learning_rate=1e-3)
  vae.prior_std = 1.0
  # Decoder probabilities clamped to [c, 1 - c]: 0 (off) as the talk; the authors' code: 0.01.
  vae.decoder_clamp = 0.0
  vae.sample = False  # φ_vae decodes the encoder mean (True: a sampled z)
  # A second, 2-D VAE (other settings as above) draws the latent-grid figure; 0: no figure.
  vae.figure_latent_dim = 2
  vae.figure_epochs = 10
  vae.seed = 0
  vae.eval_every = 1  # epochs between test −ELBO evaluations and checkpoints (and the last)
  # None: each epoch is one jitted program; 1: one jitted call per step, faster for the conv
  # encoder on CPU (XLA runs convolutions inside loops slowly there). Same numbers either way.
  vae.steps_per_call = ml_collections.FieldReference(None, field_type=int)
  return vae


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.mapping = "vae"
  config.source_dataset = "mnist"  # the teacher learns real digits ...
  config.teacher.train_on = "source"  # ... as they are (φ_vae maps garments, not digits)
  config.vae = vae_section()
  return config
