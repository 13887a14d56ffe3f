"""Fashion-MNIST → Fashion-MNIST distillation through a map φ (identity, noise or conv).

Teacher: MLP 784-256-128-64-64-10 (576 inputs for conv, whose φ(x) is 24×24) trained on
φ(Fashion-MNIST-Big) (59,000 images), Adam 1e-3,
batch 64, 10 epochs. Students: linear 784→10 on Fashion-MNIST-Small (1,000 images), Adam 1e-3,
batch 100, 100 epochs, 5 seeds; arms ``no_teacher`` (λ = 0), ``teacher`` (the teacher applied to
x without φ, where shapes allow) and ``teacher_phi`` (soft targets f(φ(x))), λ = 1, T = 1.

Command (offline, from the repository root):

  python -m experiments.distill --mapping=conv --data_dir=../shared/data --workdir=runs/conv

Expected results are in README.md ("Results"), each with the command that measured it.

``--mapping=vae`` and ``--mapping=generated`` use the learned map φ_vae (Fashion → MNIST) with an
MNIST teacher or a GeneratedMNIST teacher: see ``vae.py`` and ``generated.py`` in this folder.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.mapping = "identity"  # a name in distill_jax.maps.map_names()
  config.maps = ml_collections.ConfigDict(
    {  # options of each map φ
      "noise": {"variance": 0.1},
      "conv": {"dilation": 2},
    }
  )
  # The teacher's set; None: the mapping's (generated: generated_mnist, vae: mnist, else
  # the target dataset).
  config.source_dataset = ml_collections.FieldReference(None, field_type=str)
  # The students' set (Small / Test); None: imagenette for style, else fashion_mnist.
  config.target_dataset = ml_collections.FieldReference(None, field_type=str)
  config.seeds = 5  # student runs per arm, trained at once with vmap
  config.seed_offset = 0  # seeds are seed_offset, ..., seed_offset + seeds - 1
  config.lams = (1.0,)  # distillation weights λ (a grid is vmapped too)
  config.temperatures = (1.0,)  # temperatures T
  config.t_squared = False  # Hinton's T² factor on the soft term

  # The learned map φ_vae (mapping "vae"): trained on Fashion-MNIST-Big paired with MNIST train.
  config.vae = ml_collections.ConfigDict()
  config.vae.encoder_type = "mlp"  # "mlp": dense layers encoder_hidden; "conv": 2 convs first
  config.vae.latent_dim = 16
  config.vae.encoder_hidden = (512, 256)
  config.vae.decoder_hidden = (256, 512)
  config.vae.epochs = 30
  config.vae.batch_size = 100
  config.vae.learning_rate = 1e-3
  config.vae.prior_std = 1.0
  config.vae.sample = False  # φ_vae decodes the encoder mean (True: a sampled z)
  # A second, 2-D VAE (other settings as above) draws the latent-grid figure; 0: no figure.
  config.vae.figure_latent_dim = 2
  config.vae.figure_epochs = 10
  config.vae.seed = 0
  # None: each epoch is one jitted program; 1: one jitted call per step, faster for the conv
  # encoder on CPU (XLA runs convolutions inside loops slowly there). Same numbers either way.
  config.vae.steps_per_call = ml_collections.FieldReference(None, field_type=int)

  config.teacher = ml_collections.ConfigDict()
  # "phi": φ(source Big); "source": source Big as is; None: "source" for vae / generated, else "phi"
  config.teacher.train_on = ml_collections.FieldReference(None, field_type=str)
  config.teacher.model = ml_collections.FieldReference(None, field_type=str)  # None: cnn on
  # Imagenette, else mlp
  config.teacher.hidden = (256, 128, 64, 64)
  config.teacher.features = (32, 64, 128)  # cnn only: conv widths, dense width, global pooling
  config.teacher.dense = 128
  config.teacher.global_pool = True
  # None: each epoch is one jitted program; k: k steps per jitted call (same numbers; 1 is faster
  # for conv nets on CPU, where XLA runs convolutions inside loops slowly).
  config.teacher.steps_per_call = ml_collections.FieldReference(None, field_type=int)
  config.teacher.eval_every = 1  # evaluate on the test set after every k-th epoch and the last
  # Score the teacher (its test curve and φ's class check) on a seeded random subset of this
  # many test images (None: all): for a φ that is expensive to apply to the whole test set.
  config.teacher.eval_size = ml_collections.FieldReference(None, field_type=int)
  config.teacher.epochs = 10
  config.teacher.batch_size = 64
  config.teacher.learning_rate = 1e-3
  config.teacher.seed = 0

  config.student = ml_collections.ConfigDict()
  config.student.model = ml_collections.FieldReference(None, field_type=str)  # None: cnn on
  # Imagenette, else linear
  config.student.hidden = ()
  config.student.features = (16, 32)  # cnn only: a smaller CNN than the teacher's
  config.student.dense = 64
  config.student.global_pool = True
  config.student.steps_per_call = ml_collections.FieldReference(None, field_type=int)
  config.student.eval_every = 1  # the curves then have a point every k epochs
  config.student.epochs = 100
  config.student.batch_size = 100
  config.student.learning_rate = 1e-3

  # Use only N examples of a split (None = all), drawn by a seeded permutation and kept in their
  # original order (Imagenette's files are sorted by class, so the first N would be one class).
  # For smoke tests and quick looks.
  config.data = ml_collections.ConfigDict(
    {
      "max_big": ml_collections.FieldReference(None, field_type=int),
      "max_small": ml_collections.FieldReference(None, field_type=int),
      "max_test": ml_collections.FieldReference(None, field_type=int),
      "image_size": 32,  # Imagenette only: images are resized and center-cropped to S×S
      "imagenette_small": 1000,  # Imagenette only: train images drawn (seeded) as Small
    }
  )

  # φ_style (mapping "style"): Gatys transfer on VGG-19 features towards a style image. The
  # defaults fit a 2-core CPU (32 px, shallow layers, 8 Adam steps); see configs/style_gpu.py.
  config.style = ml_collections.ConfigDict()
  config.style.weights = ""  # VGG-19 weights: torchvision .pth, Keras notop .h5 or .npz; "":
  # random weights (ranVGG, He et al. 2016) with per-layer normalized style losses
  config.style.weights_seed = 0
  # An image file, or several separated by commas (each image then gets one, picked by a hash
  # of its pixels: maps.style_index); "": distill_jax.style.default_style_image.
  config.style.style_image = ""
  config.style.steps = 8
  config.style.learning_rate = 0.05
  config.style.content_weight = 1.0
  config.style.style_weight = 10.0
  config.style.content_layers = ("relu2_1",)
  config.style.style_layers = ("relu1_1", "relu2_1")
  config.style.normalize_style = True
  config.style.pool = "avg"
  config.style.batch_size = 128  # images stylized per call
  config.style.loop = "auto"  # "python" (a jitted step per call; CPU), "scan", "auto"

  config.eval_batch_size = 1000
  config.checkpoint_every = 10  # student epochs between checkpoints
  config.num_devices = 0  # 0 = all local devices
  return config
