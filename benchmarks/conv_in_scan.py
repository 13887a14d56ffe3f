"""How much slower a conv net's training step runs inside ``lax.scan`` than as its own jitted call.

XLA CPU runs convolutions inside while loops much slower than outside (jax-ml/jax#12868);
``train.fit`` scans over an epoch's steps, which is what the dense models want. This prints
ms/step for one Adam step of a small conv net (the conv-encoder VAE, batch 100, 28×28) run (a)
as 60 separate calls of a jitted step and (b) as one jitted ``lax.scan`` over 60 steps, and the
ratio, then one ``JSON {...}`` line with the numbers.

  PYTHONPATH=. python benchmarks/conv_in_scan.py [--encoder_type=mlp]
  PYTHONPATH=. python benchmarks/conv_in_scan.py --steps=3     # seconds (the tests run this)
"""

import json
import time

import jax
import optax
from absl import app, flags

from distill_jax import vae

_ENCODER = flags.DEFINE_enum("encoder_type", "conv", ["conv", "mlp"], "VAE encoder.")
_STEPS = flags.DEFINE_integer("steps", 60, "Steps per measurement.")


def main(argv):
  del argv
  model = vae.TwoDecoderVAE(latent_dim=16, encoder_type=_ENCODER.value)
  batches = jax.random.uniform(jax.random.key(0), (_STEPS.value, 100, 28, 28, 1))
  params = model.init(jax.random.key(1), batches[0, :1], jax.random.key(2))
  tx = optax.adam(1e-3)

  def step(carry, images):
    params, opt_state = carry
    grads = jax.grad(lambda p: vae.negative_elbo(model, p, images, images, jax.random.key(3))[0])(
      params
    )
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), None

  one_step = jax.jit(lambda carry, images: step(carry, images)[0])
  scanned = jax.jit(lambda carry, batches: jax.lax.scan(step, carry, batches)[0])
  carry = (params, tx.init(params))

  jax.block_until_ready(one_step(carry, batches[0]))
  started = time.perf_counter()
  looped = carry
  for images in batches:
    looped = one_step(looped, images)
  jax.block_until_ready(looped)
  loop_ms = (time.perf_counter() - started) / _STEPS.value * 1e3

  jax.block_until_ready(scanned(carry, batches))
  started = time.perf_counter()
  jax.block_until_ready(scanned(carry, batches))
  scan_ms = (time.perf_counter() - started) / _STEPS.value * 1e3

  print(f"{_ENCODER.value} VAE step on {jax.devices()[0].platform}:")
  print(f"  python loop over a jitted step: {loop_ms:7.1f} ms/step")
  print(f"  one jitted lax.scan:            {scan_ms:7.1f} ms/step")
  print(f"  scan / loop:                    {scan_ms / loop_ms:7.2f}x")
  summary = {
    "benchmark": "conv_in_scan",
    "encoder_type": _ENCODER.value,
    "steps": _STEPS.value,
    "loop_ms_per_step": loop_ms,
    "scan_ms_per_step": scan_ms,
    "ratios": {"scan / loop": scan_ms / loop_ms},
  }
  print("JSON " + json.dumps(summary))


if __name__ == "__main__":
  app.run(main)
