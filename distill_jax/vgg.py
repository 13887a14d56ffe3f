"""VGG-19's convolutional part as a feature extractor, with offline weight loaders.

VGG-19 (Simonyan & Zisserman, 2015) without its classifier is 16 3×3 convolutions (stride 1,
SAME padding, each followed by a ReLU) in five blocks of 2, 2, 4, 4, 4 layers with 64, 128,
256, 512, 512 channels; a 2×2 pooling (stride 2, VALID: odd sizes are floored) follows every
block. Style transfer (Gatys et al., 2016) reads the post-ReLU activations

    relu{b}_{c} = max(0, conv{b}_{c}(previous)),   b = block 1..5, c = layer in the block,

and a pooled activation is ``pool{b}``. ``pool5`` (after the last block) is only computed when
it is requested: VGG19 stops after the deepest requested activation, so e.g. asking for
``relu2_1`` runs three convolutions and needs only ``conv1_1``, ``conv1_2`` and ``conv2_1``.

Parameters are a Flax variables dict ``{"params": {"conv1_1": {"kernel": [3,3,in,out],
"bias": [out]}, ..., "conv5_4": ...}}`` (Flax's HWIO layout, the same cross-correlation as
PyTorch's and Keras's convolutions).

Inputs are NHWC RGB images in [0, 1]; the module applies the preprocessing its weights were
trained with (the field ``preprocessing``):

* ``"torch"`` (torchvision's weights, and ``random_weights``): x' = (x − μ) / σ per RGB
  channel, μ = (0.485, 0.456, 0.406), σ = (0.229, 0.224, 0.225).
* ``"caffe"`` (the original Caffe weights as converted for Keras): x' = 255·x in BGR channel
  order minus the mean pixel (103.939, 116.779, 123.68) (B, G, R).

Pooling is max-pooling as in the trained network, or ``pool="avg"`` (Gatys et al. replace it by
average pooling for image synthesis: smoother gradients).

Weights are never downloaded; the loaders read files the user already has:

* ``from_torchvision_state_dict``: torchvision's ``vgg19`` (``features.{i}.weight/bias``) as a
  mapping of arrays/tensors or a ``.pth``/``.pt`` file (reading the file needs torch).
* ``from_keras_h5``: Keras's ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`` (needs h5py).
* ``from_npz`` / ``save_npz``: this project's own format (numpy only).
* ``load_weights``: one of the above by file extension.
* ``random_weights``: ranVGG (He, Wang & Hopcroft, NeurIPS 2016): the untrained architecture
  with random He-normal weights already gives usable style statistics. With random weights the
  Gram matrices of different layers differ in scale by orders of magnitude, so the style loss
  must normalize each layer's term (``style.style_loss(..., normalize=True)``).

Every loader returns ``(variables, preprocessing)`` and checks that all 16 layers are present
with the right shapes.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# (block, number of conv layers, output channels) of VGG-19.
BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))


def _conv_layers() -> tuple[tuple[str, int, int], ...]:
  layers, in_channels = [], 3
  for block, count, width in BLOCKS:
    for index in range(1, count + 1):
      layers.append((f"conv{block}_{index}", in_channels, width))
      in_channels = width
  return tuple(layers)


# (name, input channels, output channels) of the 16 conv layers, in order.
CONV_LAYERS = _conv_layers()
CONV_NAMES = tuple(name for name, _, _ in CONV_LAYERS)
# Every activation VGG19 can return, in network order.
ACTIVATION_NAMES = tuple(
  name
  for block, count, _ in BLOCKS
  for name in [f"relu{block}_{index}" for index in range(1, count + 1)] + [f"pool{block}"]
)
# torchvision's vgg19.features index of each conv layer (ReLUs and pools take the other indices).
TORCHVISION_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34)
PREPROCESSINGS = ("torch", "caffe")
POOLS = ("max", "avg")
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
WEIGHT_EXTENSIONS = (".pth", ".pt", ".h5", ".npz")


def preprocess(images: jax.Array, preprocessing: str) -> jax.Array:
  """RGB images in [0, 1] → the network's input for weights of kind ``preprocessing``."""
  if preprocessing == "torch":
    return (images - jnp.asarray(TORCH_MEAN)) / jnp.asarray(TORCH_STD)
  if preprocessing == "caffe":
    return images[..., ::-1] * 255.0 - jnp.asarray(CAFFE_MEAN_BGR)
  raise ValueError(
    f"unknown VGG preprocessing {preprocessing!r}; use 'torch' (torchvision or random weights) "
    "or 'caffe' (Keras/Caffe weights) — the loaders return the right one."
  )


def check_layers(layers: Sequence[str] | str) -> tuple[str, ...]:
  """The requested activation names as a tuple; ValueError for an unknown name."""
  layers = (layers,) if isinstance(layers, str) else tuple(layers)
  if not layers:
    raise ValueError(f"request at least one VGG19 activation, e.g. 'relu1_1'; valid: {_names()}.")
  for name in layers:
    if name not in ACTIVATION_NAMES:
      hint = f" (use 'relu{name[4:]}', the post-ReLU output)" if name[:4] == "conv" else ""
      raise ValueError(f"unknown VGG19 activation {name!r}{hint}; valid: {_names()}.")
  return layers


def _names() -> str:
  return ", ".join(ACTIVATION_NAMES)


class VGG19(nn.Module):
  """VGG-19's 16 conv layers; ``__call__(images, layers)`` → ``{name: activation}``.

  Attributes:
    preprocessing: ``"torch"`` or ``"caffe"``, matching the weights (see the module docstring).
    pool: ``"max"`` (as trained) or ``"avg"`` (Gatys et al.'s choice for synthesis).
  """

  preprocessing: str = "torch"
  pool: str = "max"

  @nn.compact
  def __call__(self, images: jax.Array, layers: Sequence[str] | str) -> dict[str, jax.Array]:
    """Activations of ``layers`` (``relu{b}_{c}`` / ``pool{b}``) for NHWC RGB ``images`` in
    [0, 1]; computation stops after the deepest requested layer."""
    layers = check_layers(layers)
    if self.pool not in POOLS:
      raise ValueError(f"unknown VGG19 pool {self.pool!r}; use 'max' or 'avg'.")
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(
        f"VGG19 expects RGB images [N, H, W, 3] in [0, 1], got shape {images.shape}; "
        "repeat a grayscale channel 3 times first."
      )
    deepest = max(ACTIVATION_NAMES.index(name) for name in layers)
    pool = nn.max_pool if self.pool == "max" else nn.avg_pool
    x = preprocess(images, self.preprocessing)
    outputs = {}  # filled in ACTIVATION_NAMES order: done once it holds the deepest one
    for block, count, width in BLOCKS:
      for index in range(1, count + 1):
        x = nn.relu(nn.Conv(width, (3, 3), padding="SAME", name=f"conv{block}_{index}")(x))
        outputs[f"relu{block}_{index}"] = x
        if len(outputs) > deepest:
          return {name: outputs[name] for name in layers}
      x = pool(x, window_shape=(2, 2), strides=(2, 2))
      outputs[f"pool{block}"] = x
      if len(outputs) > deepest:
        return {name: outputs[name] for name in layers}
    raise AssertionError("unreachable: every activation name is in the loop")


def random_weights(key: jax.Array) -> tuple[dict, str]:
  """ranVGG: He-normal kernels (std √(2 / (9·in))), zero biases; preprocessing ``"torch"``.

  He initialization keeps the activations' scale roughly constant through the 16 ReLU layers.
  Random features suit style statistics only with per-layer normalization of the style loss
  (``style.style_loss(..., normalize=True)``).
  """
  return {"params": _random_params(key)}, "torch"


@jax.jit
def _random_params(key: jax.Array) -> dict:
  # One draw for all kernels, then sliced: one random-bits op compiles ~10x faster than 16.
  sizes = [9 * in_channels * out_channels for _, in_channels, out_channels in CONV_LAYERS]
  draws = jax.random.normal(key, (sum(sizes),), jnp.float32)
  params, start = {}, 0
  for size, (name, in_channels, out_channels) in zip(sizes, CONV_LAYERS):
    std = np.sqrt(2.0 / (9 * in_channels))
    kernel = std * draws[start : start + size].reshape(3, 3, in_channels, out_channels)
    params[name] = {"kernel": kernel, "bias": jnp.zeros((out_channels,), jnp.float32)}
    start += size
  return params


def from_torchvision_state_dict(state_dict_or_path) -> tuple[dict, str]:
  """torchvision ``vgg19`` weights → ``(variables, "torch")``.

  Args:
    state_dict_or_path: a mapping with keys ``features.{i}.weight`` ``[out, in, 3, 3]`` and
      ``features.{i}.bias`` ``[out]`` for i in ``TORCHVISION_INDICES`` (numpy arrays or torch
      tensors; ``classifier.*`` and other keys are ignored), or the path of a ``.pth``/``.pt``
      file holding one (``torch.save(model.state_dict(), path)``; reading it needs torch).
  """
  source = "the state dict"
  if isinstance(state_dict_or_path, (str, os.PathLike)):
    source = os.fspath(state_dict_or_path)
    state_dict = _read_torch_file(source)
  else:
    state_dict = state_dict_or_path
  if not isinstance(state_dict, Mapping):
    raise ValueError(
      f"{source}: expected a mapping of torchvision vgg19 weights (model.state_dict()), got "
      f"{type(state_dict).__name__}."
    )
  params = {}
  for (name, _, _), index in zip(CONV_LAYERS, TORCHVISION_INDICES):
    weight_key, bias_key = f"features.{index}.weight", f"features.{index}.bias"
    missing = [key for key in (weight_key, bias_key) if key not in state_dict]
    if missing:
      raise ValueError(
        f"{source}: missing {', '.join(missing)} (layer {name}); expected torchvision's vgg19 "
        "(not vgg19_bn) state dict: torch.save(torchvision.models.vgg19(weights=...)"
        ".state_dict(), path)."
      )
    weight = _to_numpy(state_dict[weight_key])
    if weight.ndim != 4:
      raise ValueError(
        f"{source}: {weight_key} has shape {weight.shape}, expected [out, in, 3, 3] for "
        f"{name}; is this a vgg19 state dict?"
      )
    params[name] = {
      "kernel": np.transpose(weight, (2, 3, 1, 0)),  # [out, in, kh, kw] → [kh, kw, in, out]
      "bias": _to_numpy(state_dict[bias_key]),
    }
  return _checked({"params": params}, source), "torch"


def from_keras_h5(path) -> tuple[dict, str]:
  """Keras's VGG19 weights (``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``, or the full
  model's file) → ``(variables, "caffe")``.

  Layer groups ``block{b}_conv{c}`` (at the root, or under ``model_weights`` in a saved model)
  hold a 4-D kernel ``[3, 3, in, out]`` and a 1-D bias, named ``block{b}_conv{c}_W_1:0`` /
  ``_b_1:0`` (old Keras) or ``block{b}_conv{c}/kernel:0`` / ``bias:0`` (Keras 2); both are found
  by their rank, whatever the names. Needs h5py.
  """
  path = os.fspath(path)
  _check_file(path)
  try:
    import h5py
  except ImportError as error:
    raise ImportError(f"{path}: reading Keras .h5 weights needs h5py: pip install h5py") from error
  params = {}
  try:
    with h5py.File(path, "r") as file:
      root = file["model_weights"] if "model_weights" in file else file
      for name, _, _ in CONV_LAYERS:
        block, index = name[4:].split("_")
        group_name = f"block{block}_conv{index}"
        if group_name not in root:
          raise ValueError(
            f"{path}: no layer group {group_name!r} (for {name}); expected Keras's VGG19 "
            "weights (vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5), found groups "
            f"{sorted(root.keys())[:8]}."
          )
        datasets = []
        root[group_name].visititems(
          lambda _, item: datasets.append(item) if isinstance(item, h5py.Dataset) else None
        )
        kernels = [item for item in datasets if item.ndim == 4]
        biases = [item for item in datasets if item.ndim == 1]
        if len(kernels) != 1 or len(biases) != 1:
          raise ValueError(
            f"{path}: layer group {group_name!r} should hold one 4-D kernel and one 1-D bias, "
            f"found datasets {[item.name for item in datasets]}; is this a VGG19 weights file?"
          )
        params[name] = {"kernel": np.asarray(kernels[0]), "bias": np.asarray(biases[0])}
  except OSError as error:
    raise ValueError(
      f"{path}: not a readable HDF5 file ({error}); re-download the Keras VGG19 weights."
    ) from error
  return _checked({"params": params}, path, kernel_hint=_KERAS_KERNEL_HINT), "caffe"


_KERAS_KERNEL_HINT = (
  "Keras 'tf' kernels are [3, 3, in, out]; a 'th_dim_ordering' file is not supported — use "
  "the tf_dim_ordering one"
)


def save_npz(path, variables: dict, preprocessing: str) -> None:
  """Writes ``variables`` to this project's ``.npz`` format: one array per
  ``"{layer}/kernel"`` / ``"{layer}/bias"`` key plus ``"preprocessing"``."""
  path = os.fspath(path)
  if preprocessing not in PREPROCESSINGS:
    raise ValueError(
      f"save_npz: unknown preprocessing {preprocessing!r}; use one of {PREPROCESSINGS}."
    )
  variables = _checked(variables, path)
  arrays = {
    f"{name}/{kind}": np.asarray(value)
    for name, layer in variables["params"].items()
    for kind, value in layer.items()
  }
  with open(path, "wb") as file:  # a file object: np.savez would append ".npz" to a bare path
    np.savez(file, preprocessing=np.asarray(preprocessing), **arrays)


def from_npz(path) -> tuple[dict, str]:
  """Reads a file written by ``save_npz`` → ``(variables, preprocessing)``."""
  path = os.fspath(path)
  _check_file(path)
  try:
    with np.load(path, allow_pickle=False) as archive:
      arrays = {key: archive[key] for key in archive.files}
  except (OSError, ValueError, zipfile.BadZipFile) as error:
    raise ValueError(
      f"{path}: not a readable .npz file ({error}); write it with save_npz."
    ) from error
  if "preprocessing" not in arrays:
    raise ValueError(
      f"{path}: no 'preprocessing' entry; this is not a VGG19 file written by vgg.save_npz."
    )
  preprocessing = str(arrays.pop("preprocessing"))
  if preprocessing not in PREPROCESSINGS:
    raise ValueError(
      f"{path}: unknown preprocessing {preprocessing!r} (expected one of {PREPROCESSINGS}); "
      "rewrite the file with vgg.save_npz."
    )
  params: dict[str, dict] = {}
  for key, value in arrays.items():
    name, _, kind = key.partition("/")
    params.setdefault(name, {})[kind] = value
  return _checked({"params": params}, path), preprocessing


def load_weights(path) -> tuple[dict, str]:
  """``(variables, preprocessing)`` from a weights file, the loader chosen by extension:
  ``.pth``/``.pt`` (torchvision), ``.h5`` (Keras), ``.npz`` (``save_npz``)."""
  path = os.fspath(path)
  extension = os.path.splitext(path)[1].lower()
  if extension not in WEIGHT_EXTENSIONS:
    raise ValueError(
      f"{path}: unknown VGG19 weights extension {extension!r}; use a torchvision state dict "
      "(.pth/.pt), Keras's vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (.h5) or a file "
      "written by vgg.save_npz (.npz)."
    )
  _check_file(path)
  if extension in (".pth", ".pt"):
    return from_torchvision_state_dict(path)
  if extension == ".h5":
    return from_keras_h5(path)
  return from_npz(path)


def _check_file(path: str) -> None:
  if not os.path.isfile(path):
    raise ValueError(
      f"{path}: VGG19 weights file not found; nothing is downloaded — put the file there "
      "(torchvision .pth, Keras .h5 or vgg.save_npz .npz) or use vgg.random_weights."
    )


def _read_torch_file(path: str):
  _check_file(path)
  try:
    import torch
  except ImportError as error:
    raise ImportError(
      f"{path}: reading a .pth state dict needs torch: pip install torch (or convert it once "
      "to .npz with vgg.save_npz where torch is installed)."
    ) from error
  try:
    loaded = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as error:  # torch raises many types for corrupt or pickled-model files
    raise ValueError(
      f"{path}: torch.load failed ({error}); save the weights as a plain state dict: "
      "torch.save(model.state_dict(), path)."
    ) from error
  if isinstance(loaded, Mapping) and "state_dict" in loaded:
    loaded = loaded["state_dict"]
  return loaded


def _to_numpy(value) -> np.ndarray:
  if hasattr(value, "detach"):  # a torch tensor
    value = value.detach().cpu().numpy()
  return np.asarray(value)


def _checked(variables: dict, source: str, kernel_hint: str = "") -> dict:
  """Checks all 16 layers' shapes; returns float32 jax arrays in Flax's variables layout.

  Accepts the variables dict ``{"params": {...}}`` or its ``params`` part."""
  if isinstance(variables, Mapping) and "params" not in variables and CONV_NAMES[0] in variables:
    variables = {"params": variables}
  if not isinstance(variables, Mapping) or "params" not in variables:
    raise ValueError(
      f"{source}: expected VGG19 variables {{'params': {{'conv1_1': ...}}}} (as the loaders and "
      f"random_weights return), got {type(variables).__name__}."
    )
  params = variables["params"]
  checked = {}
  for name, in_channels, out_channels in CONV_LAYERS:
    layer = params.get(name)
    if layer is None or "kernel" not in layer or "bias" not in layer:
      raise ValueError(
        f"{source}: layer {name} (kernel and bias) is missing; a VGG19 weights file needs all "
        f"16 conv layers {CONV_NAMES[0]}..{CONV_NAMES[-1]}."
      )
    kernel, bias = np.asarray(layer["kernel"]), np.asarray(layer["bias"])
    expected = (3, 3, in_channels, out_channels)
    if kernel.shape != expected or bias.shape != (out_channels,):
      hint = f"; {kernel_hint}" if kernel_hint else ""
      raise ValueError(
        f"{source}: layer {name} has kernel {kernel.shape} and bias {bias.shape}, expected "
        f"{expected} and ({out_channels},) — not VGG-19 weights{hint}."
      )
    checked[name] = {
      "kernel": jnp.asarray(kernel, jnp.float32),
      "bias": jnp.asarray(bias, jnp.float32),
    }
  return {"params": checked}
