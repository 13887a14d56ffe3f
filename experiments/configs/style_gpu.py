"""Imagenette through φ_style at full resolution, for one GPU (e.g. an H200).

Imagenette at 224 px; φ_style: Gatys transfer with the classic layers (style relu1_1 … relu5_1,
content relu4_2), 100 Adam steps (learning rate 2e-2), 32 images per call (``fori_loop`` on the device).
Pass pretrained VGG-19 weights if you have them (nothing is downloaded):

  python -m experiments.distill --config=experiments/configs/style_gpu.py \\
    --data_dir=../shared/data --config.style.weights=/path/to/vgg19.pth

(torchvision's ``vgg19`` state dict, or Keras ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``,
or an ``.npz`` written by ``distill_jax.vgg.save_npz``; without it, random ranVGG weights.)
Teacher: CNN (64, 128, 256, 512) + global pooling + dense 256, 30 epochs; students: CNN
(32, 64, 128) + dense 128, 100 epochs, 5 seeds. Whole-epoch programs (no ``steps_per_call``).

Not yet run on a GPU: none was available to this project when it was written; only a CPU smoke
run on 16-image subsets (``--config.data.max_big=16`` …, CHANGELOG.md) has run it end to end. The
whole training set lives on the device: 8,469 × 224² × 3 float32 ≈ 5.1 GB (plus the stylized
copy for the teacher).
"""

from experiments.configs import style


def get_config():
  config = style.get_config()
  config.student.epochs = 100
  config.student.eval_every = 1
  config.teacher.eval_size = None
  config.data.image_size = 224
  config.style.steps = 100
  config.style.learning_rate = 0.02
  config.style.content_layers = ("relu4_2",)
  config.style.style_layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
  config.style.batch_size = 32
  config.teacher.features = (64, 128, 256, 512)
  config.teacher.dense = 256
  config.teacher.epochs = 30
  config.student.features = (32, 64, 128)
  config.student.dense = 128
  config.eval_batch_size = 500
  return config
