"""Imagenette students taught through φ_style, VGG-19 style transfer (CPU config).

Sized for a 2-core CPU: 40 student epochs, students scored
on the test set every 2nd epoch (on CPU scoring 3,925 images is half of a student epoch) and the
teacher scored on φ_style of a seeded 1,000 of the test images (so only those are stylized);
neither changes the trained parameters. Data: Imagenette at 32×32 px (train 9,469 →
Big 8,469 + Small 1,000 by a seeded split; Test = val, 3,925). φ_style: Gatys transfer towards
``distill_jax.style.default_style_image`` on VGG-19 features, 8 Adam steps (lr 0.05) per image,
style layers relu1_1 + relu2_1, content relu2_1 — shallow and short so that stylizing
Big, Small and the teacher's test images (10,469) fits a 2-core CPU. Without
``--config.style.weights=<file>`` VGG-19 has random weights (ranVGG, per-layer normalized style losses; said in the logs and results.json).
Teacher: CNN (32, 64, 128) + global average pooling + dense 128 on φ_style(Big), 10 epochs.
Students: CNN (16, 32) + dense 64 on raw Small, 40 epochs, 5 seeds; arms ``no_teacher``,
``teacher`` (f(x)) and ``teacher_phi`` (f(φ_style(x))). Stylized sets are cached under
``<cache_dir>/phi``; ``style_examples.png`` shows originals and their stylized versions.

  python -m experiments.distill --config=experiments/configs/style.py --data_dir=../shared/data

(``--mapping=style`` picks this file too.)

Expected (measured inside ``python -m experiments.reproduce`` on a 2-core CPU, docs/REPORT.md's
run at 0a9e680 from a fresh workdir: 560 s for this experiment, stylizing included, the teacher
80 s; random ranVGG weights, PyTorch's default initialization, one teacher × 5 seeds): teacher
on φ_style(1,000 test images) 0.453; teacher_phi − no_teacher +0.0252 [+0.0081, +0.0423]
accuracy, −0.0577 [−0.0813, −0.0342] cross-entropy (each run's mean over its last 10 epochs;
interval over student seeds). One teacher, because on this CPU each CNN teacher and each arm's
students cost minutes. GPU: style_gpu.py.

<!-- numbers: ../../docs/report.json; constants: 0.05, 95% -->
"""

import ml_collections

from experiments.configs import default


def style_section() -> ml_collections.ConfigDict:
  """φ_style: Gatys transfer on VGG-19 features towards a style image, sized for a 2-core CPU
  (32 px, shallow layers, 8 Adam steps); see style_gpu.py for the classic settings."""
  style = ml_collections.ConfigDict()
  style.weights = ""  # VGG-19 weights: torchvision .pth, Keras notop .h5 or .npz; "":
  # random weights (ranVGG, He et al. 2016) with per-layer normalized style losses
  style.weights_seed = 0
  # An image file, or several separated by commas (each image then gets one, picked by a hash
  # of its pixels: maps.style.style_index); "": distill_jax.style.default_style_image.
  style.style_image = ""
  style.steps = 8
  style.learning_rate = 0.05
  style.content_weight = 1.0
  style.style_weight = 10.0
  style.content_layers = ("relu2_1",)
  style.style_layers = ("relu1_1", "relu2_1")
  style.normalize_style = True
  style.pool = "avg"
  style.batch_size = 128  # images stylized per call
  style.loop = "auto"  # "python" (a jitted step per call; CPU), "scan", "auto"
  return style


def get_config() -> ml_collections.ConfigDict:
  config = default.get_config()
  config.mapping = "style"
  config.source_dataset = config.target_dataset = "imagenette"
  config.data.image_size = 32
  config.teacher.model = "cnn"
  config.teacher.features = (32, 64, 128)
  config.teacher.dense = 128
  config.teacher.global_pool = True
  config.teacher.eval_size = 1000  # stylize 1,000 test images for the teacher, not 3,925
  # One teacher: a CNN teacher costs ~3.5 min and 5 students of an arm ~3.5 min on this CPU, so
  # K teachers multiply both; the interval then covers student seeds only (results.md says so).
  config.teacher.count = 1
  config.student.model = "cnn"
  config.student.features = (16, 32)
  config.student.dense = 64
  config.student.global_pool = True
  config.student.epochs = 40
  config.student.eval_every = 2  # scoring 3,925 test images is half of a student epoch on CPU
  config.style = style_section()
  return config
