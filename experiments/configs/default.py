"""Fashion-MNIST → Fashion-MNIST distillation through a fixed map φ (identity, noise or conv).

Teacher: MLP 784-256-128-64-64-10 (576 inputs for conv, whose φ(x) is 24×24) trained on
φ(Fashion-MNIST-Big) (59,000 images), Adam 1e-3, batch 64, 10 epochs. Students: linear 784→10 on
Fashion-MNIST-Small (1,000 images), Adam 1e-3, batch 100, 100 epochs, 5 seeds; arms
``no_teacher`` (λ = 0), ``teacher`` (the teacher applied to x without φ, where shapes allow) and
``teacher_phi`` (soft targets f(φ(x))), λ = 1, T = 1. ``--mapping=noise`` / ``conv`` pick the
map; the other experiments have their own files here (``vae.py``, ``generated.py``,
``style.py``, ``style_gpu.py``), each starting from this one.

Command (offline, from the repository root):

  python -m experiments.distill --mapping=conv --data_dir=../shared/data --workdir=runs/conv

Expected (docs/REPORT.md's run at 0a9e680 from a fresh workdir, a 2-core CPU without GPU; Δ of
``teacher_phi`` against ``no_teacher``, each run's mean over its last 10 epochs, 95% interval over
the 5 teachers × 5 seeds; another machine may give other digits, with intervals alike):

- identity: teachers on φ(test) 0.8834 ± 0.0023; Δ accuracy +0.0053 [+0.0033, +0.0073], Δ
  cross-entropy −0.0369 [−0.0396, −0.0341] (holds / holds); 46 s.
- noise: 0.8493 ± 0.0019; +0.0076 [+0.0064, +0.0089], −0.0440 [−0.0459, −0.0421]; 89 s.
- conv: 0.8527 ± 0.0030; +0.0048 [+0.0021, +0.0076], −0.0367 [−0.0397, −0.0338]; 39 s.

More in docs/fixed_maps.md.

<!-- numbers: ../../docs/report.json; constants: 95% -->
"""

import ml_collections

from distill_jax import optim


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.mapping = "identity"  # a name of distill_jax.maps.mapping_names()
  config.maps = ml_collections.ConfigDict(
    {  # options of each fixed map φ (distill_jax/maps/fixed.py)
      # The talk's N(0, 1/10), unclipped; the authors' code: variance 0.0064 (0.08²), clip.
      "noise": {"variance": 0.1, "clip": False},
      "conv": {"dilation": 2},
    }
  )
  config.source_dataset = "fashion_mnist"  # the teacher's set (Big / Test)
  config.target_dataset = "fashion_mnist"  # the students' set (Small / Test)
  config.seeds = 5  # student seeds per teacher and arm; all K × seeds runs of an arm at once
  config.seed_offset = 0  # teacher k's student seeds: seed_offset + k * seeds + (0 ... seeds - 1)
  # "per_teacher": each teacher its own student seeds, so the per-teacher gains are independent
  # and the interval over teachers covers seed noise too; "shared": the same seeds under every
  # teacher (distill_jax/students.py).
  config.student_seeds = "per_teacher"
  # The effects compare each run's mean test metric over its last n epochs (1: the final epoch,
  # which moves ±0.002-0.003 in accuracy from one epoch to the next; distill_jax/effects.py).
  config.effect_epochs = 10
  config.lams = (1.0,)  # distillation weights λ (a grid is vmapped too)
  config.temperatures = (1.0,)  # temperatures T
  config.t_squared = False  # Hinton's T² factor on the soft term

  config.teacher = ml_collections.ConfigDict()
  config.teacher.train_on = "phi"  # "phi": φ(source Big); "source": source Big as is
  config.teacher.model = "mlp"  # mlp | linear | cnn (distill_jax/models.py)
  config.teacher.hidden = (256, 128, 64, 64)  # mlp widths
  config.teacher.features = (32, 64, 128)  # cnn only: conv widths, dense width, global pooling
  config.teacher.dense = 128
  config.teacher.global_pool = True
  # Layer initialization: "torch" (PyTorch's nn.Linear / nn.Conv2d defaults, as the reference
  # code) or "flax" (lecun_normal kernels, zero biases); see distill_jax/models.py.
  config.teacher.init = "torch"
  # None: the epochs module picks (1 for a cnn on CPU, else the whole epoch in one program);
  # k: k steps per jitted call. Same numbers either way.
  config.teacher.steps_per_call = ml_collections.FieldReference(None, field_type=int)
  config.teacher.eval_every = 1  # evaluate on the test set after every k-th epoch and the last
  # Score the teacher (its test curve and φ's class check) on a seeded random subset of this
  # many test images (None: all): for a φ that is expensive to apply to the whole test set.
  config.teacher.eval_size = ml_collections.FieldReference(None, field_type=int)
  config.teacher.epochs = 10
  config.teacher.batch_size = 64
  config.teacher.optimizer = optim.default_optimizer_config(learning_rate=1e-3)
  config.teacher.seed = 0  # teachers are seeds teacher.seed, ..., teacher.seed + count - 1
  config.teacher.count = 5  # K teachers, trained at once with vmap: the teacher is a random draw

  config.student = ml_collections.ConfigDict()
  config.student.model = "linear"
  config.student.hidden = ()
  config.student.features = (16, 32)  # cnn only: a smaller CNN than the teacher's
  config.student.dense = 64
  config.student.global_pool = True
  config.student.init = "torch"
  config.student.steps_per_call = ml_collections.FieldReference(None, field_type=int)
  config.student.eval_every = 1  # the curves then have a point every k epochs
  config.student.epochs = 100
  config.student.batch_size = 100
  config.student.optimizer = optim.default_optimizer_config(learning_rate=1e-3)

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
      # MNIST / Fashion-MNIST only: Small is drawn from the last N training images and Big is
      # the first 60,000 − N (the talk: 1,000 / 59,000). Raise it for |Small| > 1,000, e.g.
      # 10,000 with data.max_small=3000: Big becomes 50,000 and the teachers change with it.
      "small_pool": 1000,
    }
  )

  config.eval_batch_size = 1000
  config.checkpoint_every = 10  # student epochs between checkpoints
  config.num_devices = 0  # 0 = all local devices
  # Devices that split each run's batch (the mesh's data axis); the others train other runs side
  # by side (the runs axis, no communication). 1 suits many small runs; more for one large run.
  config.devices_per_run = 1
  return config
