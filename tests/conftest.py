"""Test setup: two fake CPU devices, so every test also exercises the sharded code path."""

import os
import pathlib

# Must be set before JAX initializes its backends. Two devices (not 8): on a 2-core machine
# many fake devices with queued steps can abort ("only 7 of 8 arrived").
os.environ["XLA_FLAGS"] = (
  os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402


def _compilation_cache_dir() -> str:
  """One folder per test run: shared by the pytest-xdist workers (same run id) and, through the
  environment, by the subprocesses the tests start (CLI runs, benchmarks)."""
  run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
  if not run:
    return tempfile.mkdtemp(prefix="distill_jax_xla_")
  folder = os.path.join(tempfile.gettempdir(), f"distill_jax_xla_{run}")
  os.makedirs(folder, exist_ok=True)
  return folder


# Many tests compile the same programs from fresh closures or in fresh processes; a persistent
# compilation cache (keyed by the program, not the Python function) lets them share the code.
os.environ["JAX_COMPILATION_CACHE_DIR"] = _compilation_cache_dir()
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

# DISTILL_JAX_SUITE_JSON=<path>: the run's counts and time written there (tests/suite_record.py).
pytest_plugins = ["tests.suite_record"]

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir():
  """The offline copies of MNIST / Fashion-MNIST; skips when this checkout has none."""
  if not (SHARED_DATA / "fashion_mnist").is_dir():
    pytest.skip(f"no offline data at {SHARED_DATA}")
  return str(SHARED_DATA)


@pytest.fixture(scope="session")
def shared_tfds_dir(tmp_path_factory):
  """One tfds folder for the tests that read MNIST / Fashion-MNIST (and GeneratedMNIST, keyed by
  its VAE) prepared from ``shared_data_dir``: the first test that needs a dataset prepares it
  under the dataset's lock, the others (in every pytest-xdist worker of this run: the folder sits
  in the run's base temporary folder) wait for it and read it, instead of each spending ~4 s
  preparing its own copy. Tests of preparation itself, and tests with their own fake trees, keep
  their own folders."""
  base = tmp_path_factory.getbasetemp()
  run_base = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
  folder = run_base / "shared_tfds"
  folder.mkdir(exist_ok=True)
  return str(folder)
