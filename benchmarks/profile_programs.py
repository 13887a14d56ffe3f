"""Where the hot programs spend their time: jax.profiler traces of the conv experiment's epochs.

  python benchmarks/profile_programs.py --data_dir=../shared/data          # ~1 minute on 2 cores
  python benchmarks/profile_programs.py --data_dir=../shared/data --smoke  # seconds (the tests)

Traces (``jax.profiler.trace``, with a Perfetto JSON next to the TensorBoard one) one epoch of
each hot program of the default conv experiment, the library's own programs
(``epochs.make_epoch_fn``, what ``train.fit`` runs):

* the teacher's training epoch (no evaluation) for 1 teacher and for K vmapped teachers
  (MLP 576-256-128-64-64-10, batch 64, Adam);
* a student arm's epoch: K·S vmapped linear students, 10 steps and the test evaluation.

Every XLA operation the trace records is put in a class by what its (fused) computation in the
compiled HLO contains: ``matmul`` (a dot or convolution), ``optimizer`` (Adam's update: a square
root), ``gather`` (gather / dynamic slice: the batch), ``reduction`` and ``elementwise`` (the
rest). Prints per program the microseconds per step of each class, their share of the epoch's
wall time, and what is left (dispatch, loop control, threads waiting): a table, then one
``JSON {...}`` line. The traces stay in ``--out`` (TensorBoard's profile plugin or
ui.perfetto.dev open them).
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
import re
import tempfile
import time

import jax
import numpy as np

import conv_experiment  # benchmarks/conv_experiment.py: the data, next to this script
import sizes  # benchmarks/sizes.py: --max_big, --max_test, --smoke
from distill_jax import maps
from distill_jax import models
from distill_jax import parallel
from distill_jax import students
from experiments.configs import default as default_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ("matmul", "optimizer", "gather", "reduction", "elementwise")
CONTROL = {"while", "call", "conditional", "tuple", "get-tuple-element", "parameter", "constant"}
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = [^=]*? ([\w\-]+)\(")
_COMPUTATION = re.compile(r"^\s*%?([\w.\-]+) .*\{\s*$")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")


def classify_instructions(hlo_text: str) -> dict[str, str]:
  """``{instruction name: class}`` for every instruction of a compiled module's text, a fusion
  classed by the operations of the computation it calls (nested calls included)."""
  body_ops: dict[str, set] = collections.defaultdict(set)
  body_calls: dict[str, set] = collections.defaultdict(set)
  instructions = {}
  current = None
  for line in hlo_text.splitlines():
    computation = _COMPUTATION.match(line)
    if computation and " = " not in line:
      current = computation.group(1)
      continue
    instruction = _INSTRUCTION.match(line)
    if not instruction or current is None:
      continue
    name, opcode = instruction.groups()
    called = _CALLS.findall(line)
    body_ops[current].add(opcode)
    body_calls[current].update(called)
    instructions[name] = (opcode, called)

  def ops_of(computation, seen=()):
    ops = set(body_ops[computation])
    for callee in body_calls[computation] - set(seen):
      ops |= ops_of(callee, (*seen, computation))
    return ops

  classes = {}
  for name, (opcode, called) in instructions.items():
    if opcode in CONTROL:
      continue
    ops = {opcode}
    for callee in called:
      ops |= ops_of(callee)
    if ops & {"dot", "convolution"} or name.startswith(("dot", "ynn_")):
      classes[name] = "matmul"
    elif ops & {"sqrt", "rsqrt"}:
      classes[name] = "optimizer"
    elif ops & {"gather", "dynamic-slice", "dynamic-update-slice", "scatter"}:
      classes[name] = "gather"
    elif ops & {"reduce", "reduce-window", "sort"}:
      classes[name] = "reduction"
    else:
      classes[name] = "elementwise"
  return classes


def profile(name: str, compiled, args: tuple, steps: int, out_dir: str) -> dict:
  """Runs the epoch ``compiled(*args)`` once warm, then once under the profiler (its states are
  donated: each call continues from the last one's); returns the breakdown."""
  states, rest = args[0], args[1:]
  states, metrics = compiled(states, *rest)
  jax.block_until_ready(metrics)
  trace_dir = os.path.join(out_dir, name)
  with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
    started = time.perf_counter()
    jax.block_until_ready(compiled(states, *rest))
    wall = time.perf_counter() - started
  classes = classify_instructions(compiled.as_text())
  path = max(  # this trace's Perfetto file (the newest, should the folder hold older ones)
    glob.glob(os.path.join(trace_dir, "**", "perfetto_trace.json.gz"), recursive=True),
    key=os.path.getmtime,
  )
  with gzip.open(path) as f:
    trace = json.load(f)
  seconds = collections.Counter()
  for event in trace["traceEvents"] if isinstance(trace, dict) else trace:
    what = classes.get(event.get("name")) if event.get("ph") == "X" else None
    if what is not None:
      seconds[what] += event.get("dur", 0) / 1e6
  busy = sum(seconds.values())
  return {
    "program": name,
    "wall_seconds": wall,
    "steps": steps,
    "us_per_step": {c: 1e6 * seconds[c] / steps for c in CLASSES},
    "share_of_wall": {c: seconds[c] / wall for c in CLASSES},
    "unaccounted_share": max(0.0, 1 - busy / wall),
    "trace": trace_dir,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=os.path.join(REPO_ROOT, "..", "shared", "data"))
  parser.add_argument("--teachers", type=int, default=5)
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--out", default=None, help="trace folder (default: a new temporary one)")
  sizes.add_size_flags(parser, "2 teachers")
  sizes.add_json_flag(parser)
  args = parser.parse_args()
  sizes.apply_smoke(args)
  if args.smoke:
    args.teachers = 2
  out_dir = args.out or tempfile.mkdtemp(prefix="profile_programs_")
  data = sizes.subset(conv_experiment.load_fashion(args.data_dir), args.max_big, args.max_test)
  mesh = parallel.make_mesh()
  config = default_config.get_config()
  phi = maps.get_map("conv")
  results = []

  teacher = models.from_config(config.teacher)
  source = phi.map_array(data["big"][0], jax.random.key(0))

  steps = len(source) // config.teacher.batch_size
  for k in sorted({1, args.teachers}):
    compiled, call_args = conv_experiment.epoch_program(
      conv_experiment.teacher_loss(teacher),
      teacher,
      source,
      data["big"][1],
      k,
      config.teacher.batch_size,
      mesh,
    )
    results.append(profile(f"teacher_epoch_k{k}", compiled, call_args, steps, out_dir))

  student = models.from_config(config.student)
  arm = students.Arm("teacher_phi", uses_teacher=True, through_phi=True)
  student_loss = students.student_loss(
    student.apply, arm, online_phi=None, teacher_apply=teacher.apply, t_squared=False
  )
  runs = args.teachers * args.seeds
  images, labels = data["small"]
  rng = np.random.default_rng(0)  # soft targets: their values do not change the cost
  soft = {"teacher_logits": rng.standard_normal((len(labels), args.teachers, 10), np.float32)}
  devices = mesh.devices.size
  chunk = config.eval_batch_size // devices
  test_x, test_y = data["test"]
  test_chunks = parallel.put_rows({"image": test_x, "label": test_y}, mesh, chunk_rows=chunk)
  weight = parallel.put_rows({"w": np.ones(len(test_y), np.float32)}, mesh, chunk_rows=chunk)
  hparams = {
    "lam": np.ones(runs),
    "temperature": np.ones(runs),
    "teacher": np.repeat(np.arange(args.teachers), args.seeds),
  }
  compiled, call_args = conv_experiment.epoch_program(
    student_loss,
    student,
    images,
    labels,
    runs,
    config.student.batch_size,
    mesh,
    hparams,
    test=(soft, (test_chunks, weight["w"])),
  )
  steps = len(labels) // config.student.batch_size
  results.append(profile(f"student_epoch_{runs}_runs", compiled, call_args, steps, out_dir))

  header = "".join(f"{c:>13}" for c in CLASSES)
  print("\nµs per step by class of XLA operation (share of the epoch's wall time)\n")
  print(f"{'program':<24}{'wall s':>8}{header}{'unaccounted':>13}")
  for r in results:
    cells = "".join(f"{r['us_per_step'][c]:>7.0f} ({r['share_of_wall'][c]:>3.0%})" for c in CLASSES)
    print(f"{r['program']:<24}{r['wall_seconds']:>8.3f}{cells}{r['unaccounted_share']:>12.0%}")
  print(f"\ntraces: {out_dir}")
  sizes.emit({"benchmark": "profile_programs", "programs": results}, args.json)


if __name__ == "__main__":
  main()
