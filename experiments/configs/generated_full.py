"""Ablation of the talk's GeneratedMNIST: a teacher learns φ_vae of all 70,000 Fashion-MNIST images.

Not the talk's experiment (that is ``generated.py``): here the VAE of ``vae.py`` translates every
Fashion-MNIST image (Big, Small and test) into one digit (decoded at the encoder mean), in
Fashion's order and with its labels, stored once as ``distill_generated_mnist/vae_<VAE key>_mean``.
The teacher MLP trains on those 59,000 Big digits, so it has seen 59,000 labelled garments
through φ_vae, where the talk's teacher has seen the 1,000 of Small. Students and arms as in
``generated.py``.

  python -m experiments.distill --mapping=generated_full --data_dir=../shared/data --cache_dir=runs/cache

(``--mapping=generated_full`` picks this file.)

Expected (docs/REPORT.md's run at 0a9e680 from a fresh workdir, a 2-core CPU without GPU; Δ of
``teacher_phi`` against ``no_teacher``, each run's mean over its last 10 epochs, 95% interval over
the 5 teachers × 5 seeds; another machine may give other digits, with intervals alike): teachers on
φ_vae(test) 0.8889 ± 0.0009; Δ accuracy +0.0070 [+0.0062, +0.0079], Δ cross-entropy −0.0358
[−0.0380, −0.0337] (holds / holds); 57 s with the VAE cached.

<!-- numbers: ../../docs/report.json; constants: 95% -->
"""

from experiments.configs import vae


def get_config():
  config = vae.get_config()
  config.mapping = "generated_full"  # φ_vae, with the teacher on φ_vae(all of Fashion-MNIST)
  config.source_dataset = "generated_mnist"
  return config
