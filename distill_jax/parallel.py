"""Where runs and rows live: a 2-D device mesh ``(runs, data)``, run-sharded states,
row-sharded data sets.

The workload is many small independent runs (teachers × seeds × λ × T), each with a small batch.
The mesh has two axes:

- ``runs``: the stacked run axis of ``train.fit`` is split over it. Device group g (one row of
  the mesh) trains its own block of runs; nothing crosses groups during an epoch, so with
  ``data`` = 1 the compiled epoch holds no collective at all (``tests/test_runs_axis.py`` reads
  the HLO). Run counts that do not divide the groups are padded (``padded_runs``) with copies
  of the last run, dropped afterwards. By default every device is on ``runs``.
- ``data``: each run's batch is split over it (``shard_batch``), parameters replicated inside
  the group, so XLA inserts the gradient all-reduce: for one large run (e.g. a CNN at 224 px on
  GPUs), chosen with ``devices_per_run`` (``make_mesh(num_devices, devices_per_run=d)``).

Data sets are **sharded by rows over ``data``** and replicated over ``runs`` (``put_rows``): with
``D`` devices on ``data``, data position j holds rows ``[j·m, (j+1)·m)`` of an ``n``-row set,
``m = ⌈n / D⌉``, padded at the end of its own shard. So each process needs only the rows of
its own data positions (``local_rows``; all rows when ``data`` = 1): a loader can read just that
slice (e.g. a tfds split ``"train[a:b]"``) and pass it as ``ProcessRows``. A training step's
batch is gathered from the sharded set by XLA (each device takes the rows it holds, an
all-reduce of the batch assembles it). Test sets are cut into chunks on the host
(``chunk_rows``); evaluation chunk ``c`` is chunk ``c`` of every data position's shard
(``take_chunk``), so no data moves to evaluate.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import time
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from distill_jax import env

RUNS_AXIS = "runs"
DATA_AXIS = "data"
MESH_AXES = (RUNS_AXIS, DATA_AXIS)


HEARTBEAT_ENV = "DISTILL_HEARTBEAT_TIMEOUT_S"
HEARTBEAT_TIMEOUT_S = 100  # JAX's default; $DISTILL_HEARTBEAT_TIMEOUT_S overrides


def initialize_distributed(auto: bool = False) -> None:
  """Joins a ``jax.distributed`` job when there is one to join; otherwise nothing.

  - ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` all set (what
    ``--num_processes`` gives its children, or what a user exports on each host): joined with
    exactly these.
  - ``auto`` (the CLI's ``--distributed``), or only some of them set:
    ``jax.distributed.initialize()`` detects the cluster (SLURM, Open MPI, Kubernetes, Cloud
    TPU) from its environment.

  CPU collectives use gloo (GPUs use NCCL whatever this says). A peer silent for
  ``$DISTILL_HEARTBEAT_TIMEOUT_S`` seconds (default 100) counts as lost: JAX's coordination
  service then ends every process (measured here: the survivors abort within seconds of a
  process being killed, whichever process it was).
  """
  address = os.environ.get("JAX_COORDINATOR_ADDRESS")
  count, index = os.environ.get("JAX_NUM_PROCESSES"), os.environ.get("JAX_PROCESS_ID")
  if not (auto or address or count or index):
    return
  heartbeat_s = env.seconds(HEARTBEAT_ENV, HEARTBEAT_TIMEOUT_S, minimum=1, whole=True)
  barrier_timeout_s()  # a bad $DISTILL_BARRIER_TIMEOUT_S fails here, before any work
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU only
  if address and count and index:
    jax.distributed.initialize(
      coordinator_address=address, num_processes=int(count), process_id=int(index),
      heartbeat_timeout_seconds=heartbeat_s,
    )  # fmt: skip
  else:
    try:
      jax.distributed.initialize(heartbeat_timeout_seconds=heartbeat_s)
    except ValueError as error:  # e.g. "coordinator_address should be defined."
      raise ValueError(
        f"no jax.distributed job found to join ({error}): run under SLURM, Open MPI, "
        "Kubernetes or Cloud TPU, or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and "
        "JAX_PROCESS_ID; for local processes use --num_processes instead."
      ) from None
  warm_up_collectives()


def is_primary() -> bool:
  """Whether this is process 0, the one that writes shared files (always true alone)."""
  return jax.process_index() == 0


BARRIER_ENV = "DISTILL_BARRIER_TIMEOUT_S"
BARRIER_TIMEOUT_S = 4 * 3600  # > the 3 h lock timeout process 0 may wait out before it arrives


class BarrierTimeout(RuntimeError):
  """The other processes did not reach a barrier within the timeout."""


def barrier_timeout_s() -> float:
  """``$DISTILL_BARRIER_TIMEOUT_S`` seconds if set, else ``BARRIER_TIMEOUT_S`` (4 h)."""
  return env.seconds(BARRIER_ENV, BARRIER_TIMEOUT_S, minimum=0, strict=True)


def barrier(name: str, timeout_s: float | None = None) -> None:
  """Waits until every process reaches the barrier ``name`` (nothing with one process).

  A barrier of ``jax.distributed``'s coordination service (through orbax's
  ``multihost.get_barrier_sync_fn``), not a device collective: the others wait here while
  process 0 prepares data or maps φ, which can take minutes, and gloo gives up on a first
  collective after 30 s (measured: ``Gloo context initialization failed: DEADLINE_EXCEEDED``
  when one process reached ``multihost_utils.sync_global_devices`` 420 s before the other).
  Raises ``BarrierTimeout`` after ``timeout_s`` (default ``barrier_timeout_s()``).
  """
  if jax.process_count() == 1:
    return
  from orbax.checkpoint import multihost

  timeout_s = barrier_timeout_s() if timeout_s is None else timeout_s
  started = time.monotonic()
  try:
    multihost.get_barrier_sync_fn()(key=name, timeout_ms=max(1, int(timeout_s * 1000)))
  except Exception as error:  # jax.errors.JaxRuntimeError
    if "DEADLINE_EXCEEDED" not in str(error):
      raise
    raise BarrierTimeout(
      f"process {jax.process_index()} waited {time.monotonic() - started:.0f} s at barrier "
      f"{name!r} and the other processes did not all arrive: one is lost or still busy "
      f"(process 0 prepares data, maps φ and waits for locks alone); set ${BARRIER_ENV} "
      "(seconds) to wait longer."
    ) from None


def warm_up_collectives() -> None:
  """One device collective right after joining, while every process is at the same point: gloo
  sets up its connections on the first collective and waits only 30 s for its peers there."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices("distill_jax: collectives ready")


def free_port() -> int:
  """A TCP port free on this machine now (a local coordinator's, a local server's)."""
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def make_mesh(num_devices: int | None = None, devices_per_run: int = 1) -> Mesh:
  """A ``(runs, data)`` mesh over the first ``num_devices`` devices (all of them when None or
  0): ``devices_per_run`` devices on ``data`` (each run's batch split over them), the rest on
  ``runs`` (independent runs side by side). ``jax.devices()`` lists each process's devices
  together, so a process's devices form whole run groups when ``devices_per_run`` divides its
  device count."""
  devices = jax.devices()
  if num_devices:
    if num_devices > len(devices):
      raise ValueError(
        f"num_devices={num_devices} but only {len(devices)} devices are "
        f"visible ({devices[0].platform}); pass num_devices <= {len(devices)} "
        "or 0 for all."
      )
    devices = devices[:num_devices]
  if (
    isinstance(devices_per_run, bool)
    or not isinstance(devices_per_run, int)
    or not (devices_per_run >= 1 and len(devices) % devices_per_run == 0)
  ):
    raise ValueError(
      f"devices_per_run={devices_per_run!r} must be a whole number >= 1 that divides the "
      f"{len(devices)} devices of the mesh (runs × data = devices); 1 puts every device on runs."
    )
  grid = np.asarray(devices).reshape(len(devices) // devices_per_run, devices_per_run)
  return Mesh(grid, MESH_AXES)


def all_on_data(mesh: Mesh) -> Mesh:
  """The same devices as one run group (all on ``data``): for work without runs, such as
  ``train.predict`` of one model, which every device then shares."""
  return Mesh(mesh.devices.reshape(1, -1), MESH_AXES)


def for_runs(mesh: Mesh, num_runs: int) -> Mesh:
  """The mesh ``num_runs`` runs train on: ``mesh``, or with one process and fewer runs than run
  groups its first ``num_runs`` groups (a single VAE does not train once per idle group). With
  several processes every process keeps its place in the mesh (the runs are padded)."""
  if jax.process_count() > 1 or num_runs >= run_groups(mesh):
    return mesh
  return Mesh(mesh.devices[:num_runs], MESH_AXES)


def run_groups(mesh: Mesh) -> int:
  """How many device groups train runs side by side (the size of the ``runs`` axis)."""
  return mesh.shape[RUNS_AXIS]


def data_devices(mesh: Mesh) -> int:
  """How many devices split each run's batch (the size of the ``data`` axis)."""
  return mesh.shape[DATA_AXIS]


def padded_runs(num_runs: int, mesh: Mesh) -> int:
  """``num_runs`` rounded up to a multiple of the run groups (each group trains as many)."""
  groups = run_groups(mesh)
  return -(-num_runs // groups) * groups


def pad_runs(tree, num_runs: int):
  """Each leaf's leading (run) axis extended to ``num_runs`` with copies of its last run (whole
  runs with valid keys and hyper-parameters, whose results are dropped)."""

  def pad(leaf):
    extra = num_runs - leaf.shape[0]
    if extra == 0:
      return leaf
    xp = jnp if isinstance(leaf, jax.Array) else np  # keys stay typed key arrays
    return xp.concatenate([leaf, xp.repeat(leaf[-1:], extra, axis=0)])

  return jax.tree.map(pad, tree)


def runs_sharded(mesh: Mesh) -> NamedSharding:
  """The leading (run) axis split over ``runs``; replicated over ``data``."""
  return NamedSharding(mesh, P(RUNS_AXIS))


def put_runs(tree, mesh: Mesh):
  """Every leaf (leading axis = run, a multiple of ``run_groups``) as a global array split over
  ``runs``. Each process passes the same whole value (small: keys, hyper-parameters, fresh
  states) and keeps its devices' runs; a leaf that already lives on other processes' devices
  is resharded by a jitted copy."""
  return _put_whole(tree, runs_sharded(mesh))


def _put_whole(tree, sharding: NamedSharding):
  """Every leaf of ``tree``, a whole value on each process (or a global array), as a global
  array with ``sharding``; a global array over other processes' devices is kept if it already
  has that sharding, else resharded by a jitted copy."""

  def put(leaf):
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
      if leaf.sharding.is_equivalent_to(sharding, leaf.ndim):
        return leaf
      return _copy_program(sharding)(leaf)
    return jax.make_array_from_process_local_data(sharding, leaf, np.shape(leaf))

  return jax.tree.map(put, tree)


@dataclasses.dataclass(frozen=True)
class RunPlacement:
  """Where ``train.fit``'s runs train: ``padded`` runs in all (a multiple of the run groups),
  this process's block ``[start, stop)`` of them on ``mesh``.

  - One process: ``mesh`` is the whole mesh (or, with fewer runs than run groups, its first
    groups: ``for_runs``); the block is every run.
  - Several processes, each run group on one process (``devices_per_run`` at most a process's
    devices, the default): ``local``. ``mesh`` holds only this process's groups, its block is
    their runs, and its programs are its own (compiled for its devices, no collective): the
    processes exchange host values only, the metrics once per epoch and the states at a
    checkpoint (``gather_runs``), as independent jobs would.
  - Several processes with a run group spanning processes (one run's batch split over hosts):
    ``mesh`` is the whole mesh, global arrays, and the block is every run.
  """

  mesh: Mesh
  start: int
  stop: int
  padded: int
  local: bool


def place_runs(mesh: Mesh, num_runs: int) -> RunPlacement:
  """The ``RunPlacement`` of ``num_runs`` runs on ``mesh`` for this process."""
  if jax.process_count() == 1:
    mesh = for_runs(mesh, num_runs)
    padded = padded_runs(num_runs, mesh)
    return RunPlacement(mesh, 0, padded, padded, local=False)
  padded = padded_runs(num_runs, mesh)
  groups = _process_groups(mesh)
  if groups is None:
    return RunPlacement(mesh, 0, padded, padded, local=False)
  per_group = padded // run_groups(mesh)
  local_mesh = Mesh(mesh.devices[groups.start : groups.stop], MESH_AXES)
  start, stop = groups.start * per_group, groups.stop * per_group
  return RunPlacement(local_mesh, start, stop, padded, local=True)


def _process_groups(mesh: Mesh) -> slice | None:
  """This process's run groups (rows of the mesh) when every group lies on one process and
  every process holds the same number of groups, in process order; else None."""
  owners = [{d.process_index for d in row} for row in mesh.devices]
  if any(len(owner) != 1 for owner in owners):
    return None
  order = [owner.pop() for owner in owners]
  per_process = len(order) // jax.process_count()
  if order != [p for p in range(jax.process_count()) for _ in range(per_process)]:
    return None
  first = jax.process_index() * per_process
  return slice(first, first + per_process)


def process_mesh(mesh: Mesh) -> Mesh:
  """The part of ``mesh`` this process computes on alone: its own run groups when each group
  lies on one process (every process then repeats work without runs, e.g. ``train.predict``, on
  its own devices instead of compiling programs for every process's devices); else ``mesh``."""
  if jax.process_count() == 1:
    return mesh
  groups = _process_groups(mesh)
  return mesh if groups is None else Mesh(mesh.devices[groups], MESH_AXES)


@functools.lru_cache(maxsize=64)
def _copy_program(sharding: NamedSharding):
  """A jitted copy to ``sharding`` (one per sharding: each call of a new lambda would compile)."""
  return jax.jit(lambda x: x, out_shardings=sharding)


def gather_runs(tree, placement: RunPlacement | None = None):
  """Run-sharded (or replicated) device arrays as host NumPy arrays of every process's runs.

  One process: ``device_get``. Several: ``process_allgather``; with a ``local`` placement each
  process passes its own block as host values (one small compiled copy per shape, cached), so
  blocks join in process order into all ``placement.padded`` runs.
  """
  if jax.process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils

  if placement is not None and placement.local:
    return _gather_blocks(jax.device_get(tree), multihost_utils.process_allgather)
  return multihost_utils.process_allgather(tree, tiled=True)


def _gather_blocks(tree, allgather):
  """Each process's host block of runs (every leaf ``[block, ...]``) joined in process order, as
  one collective per dtype: the leaves are flattened side by side into ``[block, width]``, so a
  state of dozens of leaves costs one exchange, not one per leaf."""
  leaves, treedef = jax.tree.flatten(tree)
  if not leaves:
    return tree
  block = len(leaves[0])
  joined = [None] * len(leaves)
  for dtype in sorted({leaf.dtype for leaf in leaves}, key=str):  # the same order everywhere
    picks = [i for i, leaf in enumerate(leaves) if leaf.dtype == dtype]
    widths = [int(np.prod(leaves[i].shape[1:], dtype=np.int64)) for i in picks]
    flat = np.concatenate([leaves[i].reshape(block, w) for i, w in zip(picks, widths)], axis=1)
    everyone = allgather(flat, tiled=True)  # [processes · block, width]
    offsets = np.cumsum([0, *widths])
    for i, start, stop in zip(picks, offsets[:-1], offsets[1:]):
      joined[i] = everyone[:, start:stop].reshape(len(everyone), *leaves[i].shape[1:])
  return jax.tree.unflatten(treedef, joined)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def put_replicated(tree, mesh: Mesh):
  """Every leaf of ``tree`` (host or device arrays) as a global array replicated over ``mesh``.

  ``jax.make_array_from_process_local_data`` rather than ``jax.device_put``: with several
  processes (``jax.distributed``) the mesh spans devices this process cannot address, which
  ``device_put`` refuses; each process then passes the same full value. With one process it is
  the same as ``device_put``. A leaf that already is a global array over other processes'
  devices (e.g. a teacher's parameters returned by ``fit``) is kept if replicated over
  ``mesh``, else resharded by a jitted copy.
  """
  return _put_whole(tree, replicated(mesh))


def rows_per_device(num_rows: int, mesh: Mesh) -> int:
  """``m = ⌈num_rows / D⌉``: the rows of a row-sharded set each of the ``D`` data positions
  holds (every device of a position's column holds the same rows)."""
  return -(-num_rows // data_devices(mesh))


def _local_data_positions(mesh: Mesh) -> list[int]:
  """The ``data`` positions of this process's devices, contiguous and sorted."""
  process = jax.process_index()
  grid = mesh.devices  # [runs, data]
  positions = sorted({j for (_, j), d in np.ndenumerate(grid) if d.process_index == process})
  if not positions:
    raise ValueError(
      f"process {process} has no device in the mesh of {grid.size}; with several "
      "processes use every device (num_devices=0)."
    )
  if positions != list(range(positions[0], positions[-1] + 1)):
    raise ValueError(f"process {process}'s devices are not contiguous in the mesh {mesh}.")
  return positions


def local_rows(num_rows: int, mesh: Mesh) -> slice:
  """The rows ``[start, stop)`` of an ``num_rows``-row set this process's devices hold.

  All rows with one process or with ``data`` = 1 (every device holds the whole set for its own
  runs); with several processes on ``data``, a contiguous block, which a loader reads instead
  of the whole set.
  """
  positions = _local_data_positions(mesh)
  per_device = rows_per_device(num_rows, mesh)
  start = min(positions[0] * per_device, num_rows)
  return slice(start, min((positions[-1] + 1) * per_device, num_rows))


@dataclasses.dataclass(frozen=True)
class ProcessRows:
  """This process's rows of a data set: ``arrays`` hold rows ``local_rows(num_rows, mesh)`` of a
  set of ``num_rows`` rows (every process passes its own). ``fit`` and ``put_rows`` also take
  a plain mapping of whole arrays, of which each process keeps its rows."""

  arrays: Mapping[str, np.ndarray]
  num_rows: int


def num_rows(data: Mapping[str, np.ndarray] | ProcessRows) -> int:
  """The number of rows of the whole set (``ProcessRows`` or a mapping of whole arrays)."""
  if isinstance(data, ProcessRows):
    return data.num_rows
  return len(next(iter(data.values())))


def put_rows(
  data: Mapping[str, np.ndarray] | ProcessRows, mesh: Mesh, chunk_rows: int | None = None
) -> dict:
  """Arrays sharded by rows over ``data``, replicated over ``runs`` (see the module docstring).

  Each data position's shard is its ``m = rows_per_device`` rows, then zeros up to ``m'``, a
  multiple of ``chunk_rows`` (a ``weight`` of ones placed alike tells real rows from padding).
  Without ``chunk_rows``: ``[D · m, ...]`` (row i at position i: only the last shard is padded).
  With it: ``[D · m' / chunk_rows, chunk_rows, ...]``, each shard cut into chunks on the host
  (``take_chunk`` reads chunk c of every shard; no reshape of the whole set inside a program,
  which XLA CPU turned into a copy of the test set per evaluation). ``data``: whole arrays
  (each process keeps its rows) or ``ProcessRows``.
  """
  total = num_rows(data)
  rows = local_rows(total, mesh)
  arrays = data.arrays if isinstance(data, ProcessRows) else {k: v[rows] for k, v in data.items()}
  per_device = rows_per_device(total, mesh)
  chunk = chunk_rows or 1
  padded_rows = -(-per_device // chunk) * chunk
  local_positions = len(_local_data_positions(mesh))
  sharding = batch_sharded(mesh)
  out = {}
  for name, array in arrays.items():
    array = np.asarray(array)
    if len(array) != rows.stop - rows.start:
      raise ValueError(
        f"{name!r} has {len(array)} rows; this process holds rows {rows.start}:{rows.stop} "
        f"of {total} (parallel.local_rows)."
      )
    shards = []
    for j in range(local_positions):
      shard = array[j * per_device : (j + 1) * per_device]
      pad = np.zeros((padded_rows - len(shard), *array.shape[1:]), array.dtype)
      shards.append(np.concatenate([shard, pad]))
    local = np.concatenate(shards)
    shape = (padded_rows,) if chunk_rows is None else (padded_rows // chunk, chunk)
    local = local.reshape(local_positions * shape[0], *shape[1:], *array.shape[1:])
    global_shape = (data_devices(mesh) * shape[0], *shape[1:], *array.shape[1:])
    out[name] = jax.make_array_from_process_local_data(sharding, local, global_shape)
  return out


def num_chunks(chunked: jax.Array, mesh: Mesh) -> int:
  """How many chunks each data position holds of a ``put_rows(..., chunk_rows=c)`` array."""
  return chunked.shape[0] // data_devices(mesh)


def take_chunk(chunked: jax.Array, index, mesh: Mesh) -> jax.Array:
  """Chunk ``index`` (may be traced) of every data position's shard of a
  ``put_rows(..., chunk_rows=c)`` array, as one batch ``[D · c, ...]`` split over ``data``:
  device (g, j)'s part is its own rows, so no data moves between devices."""
  devices = data_devices(mesh)
  if devices == 1:
    return jax.lax.dynamic_index_in_dim(chunked, index, axis=0, keepdims=False)
  per_device = chunked.shape[0] // devices
  view = chunked.reshape(devices, per_device, *chunked.shape[1:])  # splits the leading axis
  batch = jax.lax.dynamic_index_in_dim(view, index, axis=1, keepdims=False)
  return batch.reshape(devices * chunked.shape[1], *chunked.shape[2:])


def rows_from_chunk_outputs(outputs: np.ndarray, num_rows: int, mesh: Mesh) -> np.ndarray:
  """The ``num_rows`` real rows, in order, of per-chunk outputs ``[chunks, D · c, ...]``
  computed on ``take_chunk`` batches (e.g. ``predict``'s logits)."""
  devices = data_devices(mesh)
  chunks, batch = outputs.shape[:2]
  per_chunk = batch // devices
  per_device = rows_per_device(num_rows, mesh)
  by_device = np.asarray(outputs).reshape(chunks, devices, per_chunk, *outputs.shape[2:])
  by_device = by_device.swapaxes(0, 1).reshape(devices, chunks * per_chunk, *outputs.shape[2:])
  return by_device[:, :per_device].reshape(-1, *outputs.shape[2:])[:num_rows]


def batch_sharded(mesh: Mesh, batch_dim: int = 0) -> NamedSharding:
  """Splits dimension ``batch_dim`` over ``data``, replicates the others (and over ``runs``)."""
  return NamedSharding(mesh, P(*([None] * batch_dim), DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, what: str) -> None:
  """Raises a clear error when a batch cannot be split evenly over the ``data`` axis."""
  n = data_devices(mesh)
  if batch_size % n:
    raise ValueError(
      f"{what} batch size {batch_size} is not divisible by the {n} devices per run "
      f"(the mesh's data axis); choose a multiple of {n} or set devices_per_run to a "
      f"divisor of {batch_size}."
    )


def shard_batch(tree, mesh: Mesh):
  """Constrains a batch (leading axis) to be split over the mesh's ``data`` axis.

  A no-op when ``data`` = 1: there the constraint only costs (measured on XLA CPU: a conv net's
  training step 101 → 374 ms with it). Inside ``jax.vmap(..., spmd_axis_name=RUNS_AXIS)`` the
  run axis stays split over ``runs``.
  """
  if data_devices(mesh) == 1:
    return tree
  return jax.lax.with_sharding_constraint(tree, batch_sharded(mesh))
