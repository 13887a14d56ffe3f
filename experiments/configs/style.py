"""Imagenette students taught through φ_style, VGG-19 style transfer (CPU config).

``--mapping=style`` on the default config with 40 student epochs instead of 100, students scored
on the test set every 2nd epoch (on CPU scoring 3,925 images is half of a student epoch) and the
teacher scored on φ_style of a seeded 1,000 of the test images (so only those are stylized);
neither changes the trained parameters. Data: Imagenette at 32×32 px (train 9,469 →
Big 8,469 + Small 1,000 by a seeded split; Test = val, 3,925). φ_style: Gatys transfer towards
``distill_jax.style.default_style_image`` on VGG-19 features, 8 Adam steps (lr 0.05) per image,
style layers relu1_1 + relu2_1, content relu2_1 — shallow and short so that stylizing
Big, Small and the teacher's test images (10,469; ~60 ms each) fits a 2-core CPU. Without ``--config.style.weights=<file>`` VGG-19 has random
weights (ranVGG, per-layer normalized style losses; said in the logs and results.json).
Teacher: CNN (32, 64, 128) + global average pooling + dense 128 on φ_style(Big), 10 epochs.
Students: CNN (16, 32) + dense 64 on raw Small, 40 epochs, 5 seeds; arms ``no_teacher``,
``teacher`` (f(x)) and ``teacher_phi`` (f(φ_style(x))). Stylized sets are cached under
``<cache_dir>/phi``; ``style_examples.png`` shows originals and their stylized versions.

  python -m experiments.distill --config=experiments/configs/style.py --data_dir=../shared/data

Expected (measured cold on the 2-core CPU, random ranVGG weights, 24 min 30 s): teacher on
φ_style(1,000 test images) 0.529; final student test accuracy no_teacher 0.2924 ± 0.0132,
teacher 0.2798 ± 0.0151, teacher_phi 0.3109 ± 0.0150 (BUILD_NOTES.md, "Experiments (issue 4)").
GPU: style_gpu.py.
"""

from experiments.configs import default


def get_config():
  config = default.get_config()
  config.mapping = "style"  # target/source imagenette, cnn teacher and student
  config.student.epochs = 40
  config.student.eval_every = 2  # scoring 3,925 test images is half of a student epoch on CPU
  config.teacher.eval_size = 1000  # stylize 1,000 test images for the teacher, not 3,925
  return config
