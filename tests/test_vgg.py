"""VGG-19 feature extractor and its weight loaders (all offline, on random weights)."""

import flax
import jax
import numpy as np
import pytest

from distill_jax import vgg

IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def weights():
  variables, preprocessing = vgg.random_weights(jax.random.key(0))
  return variables, preprocessing


@pytest.fixture(scope="module")
def images():
  return np.random.default_rng(0).uniform(size=(2, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)


@jax.jit
def _all_activations(variables, images):
  return vgg.VGG19(preprocessing="torch").apply(variables, images, vgg.ACTIVATION_NAMES)


def _assert_same_params(actual, expected):
  assert sorted(actual["params"]) == sorted(vgg.CONV_NAMES)
  for name in vgg.CONV_NAMES:
    for kind in ("kernel", "bias"):
      np.testing.assert_array_equal(
        np.asarray(actual["params"][name][kind]), np.asarray(expected["params"][name][kind])
      )


def _assert_same_activations(actual, expected, images):
  got, want = _all_activations(actual, images), _all_activations(expected, images)
  for name in vgg.ACTIVATION_NAMES:
    np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]))


def _torchvision_state_dict(variables, to_tensor=np.asarray):
  """Exports like torchvision's vgg19: features.{i}.weight [out, in, 3, 3] plus classifier."""
  state_dict = {}
  for name, index in zip(vgg.CONV_NAMES, vgg.TORCHVISION_INDICES):
    layer = variables["params"][name]
    kernel = np.ascontiguousarray(np.transpose(np.asarray(layer["kernel"]), (3, 2, 0, 1)))
    state_dict[f"features.{index}.weight"] = to_tensor(kernel)
    state_dict[f"features.{index}.bias"] = to_tensor(np.array(layer["bias"]))
  state_dict["classifier.0.weight"] = to_tensor(np.ones((4, 3), np.float32))
  state_dict["classifier.0.bias"] = to_tensor(np.ones((4,), np.float32))
  return state_dict


def _write_keras_h5(path, variables, naming, skip=()):
  """Writes Keras's save_weights layout: old (`block1_conv1_W_1:0` in the layer group) or
  Keras 2 (`block1_conv1/kernel:0` inside the layer group), with the non-conv layer groups."""
  h5py = pytest.importorskip("h5py")
  with h5py.File(path, "w") as file:
    layer_names = ["input_1"]
    file.create_group("input_1").attrs["weight_names"] = np.array([], dtype="S")
    for block, count, _ in vgg.BLOCKS:
      for index in range(1, count + 1):
        group_name = f"block{block}_conv{index}"
        layer_names.append(group_name)
        if group_name in skip:
          continue
        group = file.create_group(group_name)
        layer = variables["params"][f"conv{block}_{index}"]
        if naming == "old":
          names = [f"{group_name}_W_1:0", f"{group_name}_b_1:0"]
        else:
          names = [f"{group_name}/kernel:0", f"{group_name}/bias:0"]
        group.attrs["weight_names"] = np.array([n.encode() for n in names])
        group.create_dataset(names[0], data=np.asarray(layer["kernel"]))
        group.create_dataset(names[1], data=np.asarray(layer["bias"]))
      pool_name = f"block{block}_pool"
      file.create_group(pool_name).attrs["weight_names"] = np.array([], dtype="S")
      layer_names.append(pool_name)
    file.attrs["layer_names"] = np.array([n.encode() for n in layer_names])


def test_activation_shapes_at_32x32(weights, images):
  variables, _ = weights
  activations = _all_activations(variables, images)
  assert set(activations) == set(vgg.ACTIVATION_NAMES)  # jit returns the dict key-sorted
  for block, count, width in vgg.BLOCKS:
    size = IMAGE_SIZE // 2 ** (block - 1)
    for index in range(1, count + 1):
      assert activations[f"relu{block}_{index}"].shape == (2, size, size, width)
      assert float(activations[f"relu{block}_{index}"].min()) >= 0.0  # post-ReLU
    assert activations[f"pool{block}"].shape == (2, size // 2, size // 2, width)
  assert len(vgg.CONV_LAYERS) == 16


def test_random_weights_he_scale_and_determinism(weights, images):
  variables, preprocessing = weights
  assert preprocessing == "torch"
  again, _ = vgg.random_weights(jax.random.key(0))
  other, _ = vgg.random_weights(jax.random.key(1))
  _assert_same_params(again, variables)
  assert not np.array_equal(
    other["params"]["conv1_1"]["kernel"], variables["params"]["conv1_1"]["kernel"]
  )
  for name, in_channels, out_channels in vgg.CONV_LAYERS:
    layer = variables["params"][name]
    assert layer["kernel"].shape == (3, 3, in_channels, out_channels)
    np.testing.assert_array_equal(layer["bias"], np.zeros(out_channels))
  kernel = np.asarray(variables["params"]["conv5_4"]["kernel"])  # 2.4M draws
  np.testing.assert_allclose(kernel.std(), np.sqrt(2 / (9 * 512)), rtol=0.01)
  # He scaling keeps the activations O(1) through the whole network.
  deepest = np.asarray(_all_activations(variables, images)["relu5_1"])
  assert 0.1 < np.sqrt(np.mean(deepest**2)) < 10


def test_matches_torch_network(weights, images):
  """A torch nn.Sequential laid out like torchvision's vgg19.features gives our activations."""
  torch = pytest.importorskip("torch")
  torch.manual_seed(0)
  layers, in_channels = [], 3
  for _, count, width in vgg.BLOCKS:
    for _ in range(count):
      layers += [torch.nn.Conv2d(in_channels, width, 3, padding=1), torch.nn.ReLU()]
      in_channels = width
    layers.append(torch.nn.MaxPool2d(2, 2))
  features = torch.nn.Sequential(*layers)
  state_dict = {f"features.{key}": value for key, value in features.state_dict().items()}
  variables, preprocessing = vgg.from_torchvision_state_dict(state_dict)
  assert preprocessing == "torch"

  mean, std = np.array(vgg.TORCH_MEAN, np.float32), np.array(vgg.TORCH_STD, np.float32)
  torch_input = torch.from_numpy(((images - mean) / std).transpose(0, 3, 1, 2).copy())
  with torch.no_grad():
    expected = {}
    x = torch_input
    for index, layer in enumerate(features):
      x = layer(x)
      expected[index] = x.numpy().transpose(0, 2, 3, 1)
  ours = _all_activations(variables, images)
  # relu1_1 is torch index 1, relu3_1 index 11, relu5_4 index 35, pool5 index 36.
  for name, index in (("relu1_1", 1), ("relu3_1", 11), ("relu5_4", 35), ("pool5", 36)):
    scale = np.abs(expected[index]).max()
    np.testing.assert_allclose(ours[name], expected[index], atol=1e-4 * scale, rtol=1e-4)


def test_preprocessing_formulas():
  rgb = np.array([[[[0.2, 0.5, 0.9]]]], np.float32)
  caffe = np.asarray(vgg.preprocess(rgb, "caffe"))
  np.testing.assert_allclose(
    caffe[0, 0, 0], [0.9 * 255 - 103.939, 0.5 * 255 - 116.779, 0.2 * 255 - 123.68], rtol=1e-6
  )
  torch_style = np.asarray(vgg.preprocess(rgb, "torch"))
  np.testing.assert_allclose(
    torch_style[0, 0, 0],
    [(0.2 - 0.485) / 0.229, (0.5 - 0.456) / 0.224, (0.9 - 0.406) / 0.225],
    rtol=1e-6,
  )
  with pytest.raises(ValueError, match="unknown VGG preprocessing 'bgr'"):
    vgg.preprocess(rgb, "bgr")


def test_stops_after_deepest_requested_layer(weights, images):
  model = vgg.VGG19()
  shallow = model.init(jax.random.key(0), images, ("relu2_1",))
  assert sorted(shallow["params"]) == ["conv1_1", "conv1_2", "conv2_1"]
  # Only those three layers' parameters are needed to compute relu1_2 and relu2_1 ...
  variables, _ = weights
  three = {
    "params": {name: variables["params"][name] for name in ("conv1_1", "conv1_2", "conv2_1")}
  }
  out = model.apply(three, images, ("relu2_1", "relu1_2"))
  assert list(out) == ["relu2_1", "relu1_2"]
  full = _all_activations(variables, images)
  np.testing.assert_allclose(out["relu2_1"], full["relu2_1"], rtol=1e-5, atol=1e-5)
  # ... while pool2 needs conv2_2.
  with pytest.raises(flax.errors.ScopeParamNotFoundError):
    model.apply(three, images, ("pool2",))


def test_jit_equals_eager_and_avg_pool(weights, images):
  variables, _ = weights
  layers = ("relu1_2", "pool1", "relu2_2")
  eager = vgg.VGG19(pool="avg").apply(variables, images, layers)
  jitted = jax.jit(lambda v, x: vgg.VGG19(pool="avg").apply(v, x, layers))(variables, images)
  for name in layers:
    np.testing.assert_allclose(eager[name], jitted[name], rtol=1e-5, atol=1e-5)
  relu = np.asarray(eager["relu1_2"])
  pooled = relu.reshape(2, 16, 2, 16, 2, 64).mean(axis=(2, 4))
  np.testing.assert_allclose(eager["pool1"], pooled, rtol=1e-5, atol=1e-6)


def test_bad_layer_names_and_inputs(weights, images):
  variables, _ = weights
  with pytest.raises(ValueError, match="use 'relu1_1'"):
    vgg.VGG19().apply(variables, images, ("conv1_1",))
  with pytest.raises(ValueError, match="at least one"):
    vgg.VGG19().apply(variables, images, ())
  with pytest.raises(ValueError, match="grayscale"):
    vgg.VGG19().apply(variables, images[..., :1], ("relu1_1",))


def test_torchvision_numpy_state_dict_round_trip(weights, images):
  variables, _ = weights
  loaded, preprocessing = vgg.from_torchvision_state_dict(_torchvision_state_dict(variables))
  assert preprocessing == "torch"
  _assert_same_params(loaded, variables)
  _assert_same_activations(loaded, variables, images)


def test_torchvision_pth_round_trip(weights, images, tmp_path):
  torch = pytest.importorskip("torch")
  variables, _ = weights
  state_dict = _torchvision_state_dict(variables, torch.from_numpy)
  loaded, _ = vgg.from_torchvision_state_dict(state_dict)  # a mapping of tensors
  _assert_same_params(loaded, variables)
  path = tmp_path / "vgg19.pth"
  torch.save(state_dict, path)
  loaded, preprocessing = vgg.load_weights(path)
  assert preprocessing == "torch"
  _assert_same_params(loaded, variables)
  _assert_same_activations(loaded, variables, images)


@pytest.mark.parametrize("naming", ["old", "keras2"])
def test_keras_h5_round_trip(weights, images, tmp_path, naming):
  variables, _ = weights
  path = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
  _write_keras_h5(path, variables, naming)
  loaded, preprocessing = vgg.load_weights(str(path))
  assert preprocessing == "caffe"
  _assert_same_params(loaded, variables)
  _assert_same_activations(loaded, variables, images)


@pytest.mark.parametrize("preprocessing", ["torch", "caffe"])
def test_npz_round_trip(weights, images, tmp_path, preprocessing):
  variables, _ = weights
  path = tmp_path / "vgg19.npz"
  vgg.save_npz(path, variables, preprocessing)
  assert path.exists()
  loaded, loaded_preprocessing = vgg.from_npz(path)
  assert loaded_preprocessing == preprocessing
  _assert_same_params(loaded, variables)
  loaded, _ = vgg.load_weights(str(path))
  _assert_same_activations(loaded, variables, images)


def test_load_weights_errors_name_file_and_fix(weights, tmp_path):
  variables, _ = weights
  with pytest.raises(ValueError, match=r"weights\.bin: unknown VGG19 weights extension"):
    vgg.load_weights(tmp_path / "weights.bin")
  with pytest.raises(ValueError, match=r"absent\.npz: VGG19 weights file not found"):
    vgg.load_weights(tmp_path / "absent.npz")

  # Wrong shape: conv3_2's kernel transposed (a theano-ordered or foreign file).
  broken = {"params": dict(variables["params"])}
  broken["params"]["conv3_2"] = {
    "kernel": np.transpose(np.asarray(variables["params"]["conv3_2"]["kernel"]), (3, 2, 0, 1)),
    "bias": variables["params"]["conv3_2"]["bias"],
  }
  arrays = {
    f"{name}/{kind}": np.asarray(value)
    for name, layer in broken["params"].items()
    for kind, value in layer.items()
  }
  path = tmp_path / "wrong_shape.npz"
  np.savez(path, preprocessing=np.asarray("torch"), **arrays)
  with pytest.raises(
    ValueError, match=r"wrong_shape\.npz: layer conv3_2 has kernel \(256, 256, 3, 3\)"
  ):
    vgg.load_weights(path)

  path = tmp_path / "missing_layer.h5"
  _write_keras_h5(path, variables, "keras2", skip=("block5_conv4",))
  with pytest.raises(ValueError, match=r"missing_layer\.h5: no layer group 'block5_conv4'"):
    vgg.load_weights(path)

  state_dict = _torchvision_state_dict(variables)
  del state_dict["features.34.bias"]
  with pytest.raises(ValueError, match=r"missing features\.34\.bias \(layer conv5_4\)"):
    vgg.from_torchvision_state_dict(state_dict)

  not_npz = tmp_path / "garbage.npz"
  not_npz.write_bytes(b"not a zip file")
  with pytest.raises(ValueError, match=r"garbage\.npz: not a readable \.npz file"):
    vgg.load_weights(not_npz)
  with pytest.raises(ValueError, match="unknown preprocessing"):
    vgg.save_npz(tmp_path / "x.npz", variables, "tf")
