"""Figures: each writes a PNG; the VAE figures draw what the VAE module computes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distill_jax import figures
from distill_jax import vae


def _vae(latent_dim):
  model = vae.TwoDecoderVAE(latent_dim=latent_dim, encoder_hidden=(32,), decoder_hidden=(32,))
  return model, model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), jax.random.key(1))


def _is_png(path):
  return path.read_bytes()[:4] == b"\x89PNG"


def test_vae_figures(tmp_path):
  model, params = _vae(latent_dim=2)
  images = np.random.default_rng(0).random((5, 28, 28, 1), np.float32)
  figures.vae_latent_grids(model, params, str(tmp_path / "grid.png"), steps=4)
  figures.vae_translations(model, params, images, str(tmp_path / "tr.png"))
  assert _is_png(tmp_path / "grid.png") and _is_png(tmp_path / "tr.png")
  decoded = vae.decode_latent_grid(model, params, steps=4)
  assert [a.shape for a in decoded.values()] == [(16, 28, 28, 1)] * 2
  rows = vae.translate(model, params, images)
  phi_rows = np.asarray(vae.make_phi(model, params)(jnp.asarray(images), None))
  np.testing.assert_allclose(next(iter(rows.values())), phi_rows, rtol=1e-6)  # row 1 is φ_vae(x)
  with pytest.raises(ValueError, match="latent_dim=2"):
    figures.vae_latent_grids(*_vae(latent_dim=16), str(tmp_path / "x.png"))


def test_mosaic_layout():
  images = np.arange(6 * 2 * 3).reshape(6, 2, 3, 1)
  mosaic = figures._mosaic(images, rows=2)
  assert mosaic.shape == (4, 9)
  np.testing.assert_array_equal(mosaic[:2, 3:6], images[1, ..., 0])  # row 0, column 1
  np.testing.assert_array_equal(mosaic[2:, :3], images[3, ..., 0])  # row 1, column 0


@pytest.mark.parametrize("num_styles", [1, 2])
def test_style_examples(tmp_path, num_styles):
  rng = np.random.default_rng(0)
  images = rng.random((6, 8, 8, 3), np.float32)
  labels = np.array([0, 1, 1, 2, 0, 2])
  style_images = rng.random((num_styles, 8, 8, 3), np.float32)
  path = figures.style_examples(
    images, labels, 1 - images, style_images, np.arange(6) % num_styles, str(tmp_path / "s.png")
  )
  assert _is_png(tmp_path / "s.png") and path == str(tmp_path / "s.png")


def test_curves_have_whole_epoch_ticks(tmp_path, monkeypatch):
  """A 3-epoch run: ticks 1, 2, 3 (matplotlib's default would put 1.5, 2.5 between them)."""
  from distill_jax import figures as figures_lib

  saved = []
  monkeypatch.setattr(figures_lib, "_save", lambda fig, path, **options: saved.append(fig))
  arm = {"test_accuracy": [[0.5, 0.6, 0.7], [0.4, 0.6, 0.8]]}
  results = {"experiment": "toy", "arms": {"no_teacher": arm, "teacher_phi": arm}}
  figures_lib.curves(results, "test_accuracy", str(tmp_path / "c.png"))
  (fig,) = saved
  for ax in fig.axes:
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_teacher_gains_give_each_arm_its_own_scale(tmp_path, monkeypatch):
  """φ_vae's teacher arm loses ~0.3 while teacher_phi gains ~0.006: each arm gets its own row
  of panels, whose x range spans its own dots and interval (and 0) and not the other arm's."""
  saved = []
  monkeypatch.setattr(figures, "_save", lambda fig, path, **options: saved.append(fig))

  def effect(per_teacher, low, high):
    mean = float(np.mean(per_teacher))
    return {
      "per_teacher": per_teacher,
      "low": low,
      "high": high,
      "mean": mean,
      "teachers": 3,
      "seeds": 2,
      "unit": "teacher",
      "last_epochs": 10,
    }

  effects = {
    "teacher": {
      m: effect([-0.35, -0.33, -0.29], -0.38, -0.27)
      for m in ("test_accuracy", "test_cross_entropy")
    },
    "teacher_phi": {
      m: effect([0.004, 0.006, 0.008], 0.002, 0.010)
      for m in ("test_accuracy", "test_cross_entropy")
    },
  }
  figures.teacher_gains({"experiment": "toy", "effects": effects}, str(tmp_path / "g.png"))
  (fig,) = saved
  axes = np.asarray(fig.axes).reshape(2, 2)
  for ax in axes[0]:  # teacher
    low, high = ax.get_xlim()
    assert low < -0.38 and high >= 0.0
  for ax in axes[1]:  # teacher_phi: its interval fills the panel, not 0.3 of room
    low, high = ax.get_xlim()
    assert low <= 0.0 and 0.010 < high < 0.02
    assert [t.get_text() for t in ax.get_yticklabels()] == ["teacher_phi"]
