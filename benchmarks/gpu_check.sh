#!/usr/bin/env bash
# One GPU, one prepared check: the default conv experiment and a subset of
# experiments/configs/style_gpu.py, timed, in at most 8 minutes of wall time.
#
#   bash benchmarks/gpu_check.sh --data_dir=../shared/data --out=/tmp/gpu_check
#   bash benchmarks/gpu_check.sh --cpu_smoke          # tiny sizes on the CPU (the tests run it)
#
# Prints the devices (nvidia-smi, jax.devices(), a measured float32 matmul peak), then per part
# its wall time, steps/s and achieved FLOP/s (XLA cost analysis of one step × steps / seconds),
# the test accuracies, and one `JSON {...}` line; then the total wall time and a last JSON
# line. Every python command runs under `timeout`, cut to what is left of --budget_s (default
# 450 s, so the whole script, kill grace included, stays under 8 minutes). Without a GPU
# visible to jax (or with --cpu_smoke) both parts run at tiny sizes on the CPU (~1.5 minutes).
# Exit status: 0 when every part that ran finished (the style part is skipped, with the reason,
# when Imagenette is missing), 1 when a part failed or ran out of time, 2 for a usage or setup
# error (no Fashion-MNIST, a GPU that jax cannot use, a non-empty --out).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"

usage() {
  cat <<EOF
usage: bash benchmarks/gpu_check.sh [--data_dir=DIR] [--out=DIR] [--tfds_dir=DIR] [--cpu_smoke]
                                    [--vgg_weights=FILE] [--parts=conv,style] [--budget_s=450]

  --data_dir     folder with fashion_mnist/ (IDX .gz) and imagenette/{train,val}/
                 (default: <repo>/../shared/data)
  --out          output folder, empty or new (default: a fresh mktemp -d); holds each part's
                 workdir (results.json, results.md, figures), its log and the XLA cache
  --tfds_dir     where tfds keeps prepared datasets (default: \$TFDS_DATA_DIR, else <out>/tfds)
  --cpu_smoke    tiny sizes on the CPU (JAX_PLATFORMS=cpu), even where a GPU is visible
  --vgg_weights  VGG-19 weights for φ_style (torchvision .pth, Keras notop .h5 or .npz);
                 default: random ranVGG weights (same FLOPs; pretrained ones are not offline)
  --parts        which parts to run, in order (default conv,style; add scaling for the runs
                 axis: the sweep on 1 GPU and on all visible GPUs, benchmarks/devices_scaling.py)
  --budget_s     wall-time budget of the whole script in seconds (default 450)
  PYTHON=...     the interpreter (default: python on PATH, e.g. the activated .venv)
EOF
}

die() {
  echo "error: $*" >&2
  exit 2
}

absolute() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}

DATA_DIR="$REPO_ROOT/../shared/data"
OUT=""
TFDS_DIR="${TFDS_DATA_DIR:-}"
CPU_SMOKE=0
VGG_WEIGHTS=""
PARTS="conv,style"
BUDGET_S=450
while (($#)); do
  arg="$1"
  shift
  case "$arg" in
    --data_dir=* | --out=* | --tfds_dir=* | --vgg_weights=* | --parts=* | --budget_s=*)
      name="${arg%%=*}"
      value="${arg#*=}"
      ;;
    --data_dir | --out | --tfds_dir | --vgg_weights | --parts | --budget_s)
      (($#)) || die "$arg needs a value (e.g. $arg=VALUE); see --help"
      name="$arg"
      value="$1"
      shift
      ;;
    --cpu_smoke)
      CPU_SMOKE=1
      continue
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument '$arg'; see --help" ;;
  esac
  case "$name" in
    --data_dir) DATA_DIR="$(absolute "$value")" ;;
    --out) OUT="$(absolute "$value")" ;;
    --tfds_dir) TFDS_DIR="$(absolute "$value")" ;;
    --vgg_weights) VGG_WEIGHTS="$(absolute "$value")" ;;
    --parts) PARTS="$value" ;;
    --budget_s) BUDGET_S="$value" ;;
  esac
done

[[ "$BUDGET_S" =~ ^[0-9]+$ ]] || die "--budget_s must be a whole number of seconds, got '$BUDGET_S'"
IFS=',' read -r -a PART_LIST <<<"$PARTS"
((${#PART_LIST[@]})) || die "--parts is empty; pass e.g. --parts=conv,style"
for part in "${PART_LIST[@]}"; do
  [[ "$part" == conv || "$part" == style || "$part" == scaling ]] ||
    die "--parts: unknown part '$part' (conv, style, scaling)"
done
if [[ -n "$VGG_WEIGHTS" && ! -f "$VGG_WEIGHTS" ]]; then
  die "--vgg_weights=$VGG_WEIGHTS: no such file"
fi
if [[ ",$PARTS," == *",conv,"* && ! -d "$DATA_DIR/fashion_mnist" ]]; then
  die "no Fashion-MNIST at $DATA_DIR/fashion_mnist (the four IDX .gz files): pass --data_dir=<folder \
holding fashion_mnist/ and imagenette/>; nothing is downloaded here"
fi
command -v "$PYTHON" >/dev/null || die "no '$PYTHON' on PATH: activate the venv (source .venv/bin/activate) or set PYTHON="
command -v timeout >/dev/null || die "this script needs coreutils' timeout"

if [[ -z "$OUT" ]]; then
  OUT="$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")"
fi
mkdir -p "$OUT" || die "cannot create --out=$OUT"
if [[ -n "$(ls -A "$OUT")" ]]; then
  die "--out=$OUT is not empty: an earlier run's checkpoints would be reused and the timings \
would mean nothing; pass a new or empty folder"
fi
TFDS_DIR="${TFDS_DIR:-$OUT/tfds}"
# A cold XLA cache in the output folder: compile time is part of what is measured.
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$OUT/xla_cache}"
export PYTHONUNBUFFERED=1
cd "$REPO_ROOT"

START="$(date +%s.%N)"
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
remaining() { awk -v s="$START" -v b="$BUDGET_S" -v n="$(date +%s.%N)" \
  'BEGIN { r = int(b - (n - s)); print (r > 0 ? r : 0) }'; }
# limit CAP RESERVE: seconds a command may run: at most CAP, leaving RESERVE for what follows
# (at least 1: `timeout 0` would mean no limit).
limit() {
  local left=$(($(remaining) - $2))
  left=$((left < $1 ? left : $1))
  echo $((left > 1 ? left : 1))
}
KILL_GRACE=5
TIMEOUT=(timeout --kill-after="$KILL_GRACE")

echo "gpu_check: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname 2>/dev/null || echo '?');" \
  "repo $REPO_ROOT" \
  "(commit $(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown))"
echo "data $DATA_DIR; out $OUT; tfds $TFDS_DIR; XLA cache $JAX_COMPILATION_CACHE_DIR;" \
  "budget ${BUDGET_S} s"

# --------------------------------------------------------------------------- devices
echo
echo "== devices =="
GPU_SEEN=0
GPU_LIST=""
if command -v nvidia-smi >/dev/null; then
  if "${TIMEOUT[@]}" 30 nvidia-smi; then
    GPU_LIST="$("${TIMEOUT[@]}" 30 nvidia-smi --query-gpu=name,memory.total,driver_version \
      --format=csv,noheader 2>/dev/null || true)"
    [[ -n "$GPU_LIST" ]] && GPU_SEEN=1
  else
    echo "nvidia-smi failed (exit $?): no usable NVIDIA driver"
  fi
else
  echo "nvidia-smi: not installed"
fi
if ((CPU_SMOKE)); then
  export JAX_PLATFORMS=cpu
fi
DEVICE_JSON="$OUT/device.json"
rc=0
GC_OUT="$DEVICE_JSON" GC_GPUS="$GPU_LIST" "${TIMEOUT[@]}" "$(limit 90 0)" "$PYTHON" - <<'PY' || rc=$?
"""jax's devices and a float32 matmul peak measured now (the reference for achieved FLOP/s)."""

import json
import os
import time

import jax
import jax.numpy as jnp

backend = jax.default_backend()
devices = jax.devices()
size = 2048 if backend == "cpu" else 8192
a = jnp.ones((size, size), jnp.float32)
product = jax.jit(jnp.dot)
product(a, a).block_until_ready()
best = float("inf")
for _ in range(10):
  started = time.perf_counter()
  product(a, a).block_until_ready()
  best = min(best, time.perf_counter() - started)
info = {
  "benchmark": "gpu_check",
  "part": "device",
  "jax": jax.__version__,
  "backend": backend,
  "devices": [str(d) for d in devices],
  "device_kind": devices[0].device_kind,
  "matmul_peak_gflops": 2 * size**3 / best / 1e9,
  "matmul_size": size,
  "cpu_cores": os.cpu_count(),
  "nvidia_smi": [line.strip() for line in os.environ["GC_GPUS"].splitlines() if line.strip()],
}
print(f"jax {jax.__version__}, backend {backend}: {info['devices']} ({info['device_kind']})")
print(
  f"float32 matmul peak (jitted {size}² jnp.dot, default precision, best of 10): "
  f"{info['matmul_peak_gflops']:.0f} GFLOP/s"
)
with open(os.environ["GC_OUT"], "w") as f:
  json.dump(info, f)
print("JSON " + json.dumps(info))
PY
((rc == 0)) || die "python could not start jax (exit $rc): is the venv active (source .venv/bin/activate)?"
BACKEND="$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["backend"])' "$DEVICE_JSON")"
PEAK="$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["matmul_peak_gflops"])' "$DEVICE_JSON")"

if ((CPU_SMOKE)); then
  MODE=cpu_smoke
  echo "mode: cpu_smoke (--cpu_smoke: tiny sizes on the CPU)"
elif [[ "$BACKEND" == cpu ]]; then
  if ((GPU_SEEN)); then
    why="a CPU-only jax: install the CUDA build, pip install -U 'jax[cuda12]'"
    [[ -n "${JAX_PLATFORMS:-}" ]] && why="JAX_PLATFORMS=$JAX_PLATFORMS is set: unset it"
    die "nvidia-smi sees a GPU ($GPU_LIST) but jax's backend is cpu ($why), or pass --cpu_smoke \
for the CPU sizes"
  fi
  MODE=cpu_smoke
  echo "mode: cpu_smoke (no GPU visible to jax: tiny sizes on the CPU)"
else
  MODE=gpu
  echo "mode: gpu (backend $BACKEND)"
fi

# --------------------------------------------------------------------------- the parts
# Common: the experiment's own command line; sizes per mode. The GPU sizes of the style part
# are multiples of style.batch_size (32), so the stylizing loop compiles once.
CONV_ARGS=(--mapping=conv)
STYLE_ARGS=(--config=experiments/configs/style_gpu.py)
if [[ "$MODE" == gpu ]]; then
  CONV_CAP=150
  CONV_ABOUT="the default experiment: 5 teachers × 10 epochs on 59,000 images, 2 arms × 25 students × 100 epochs"
  STYLE_ARGS+=(
    --config.data.max_big=256 --config.data.max_small=128 --config.data.max_test=128
    --teacher_epochs=2 --epochs=10
  )
  # φ_style dominates: 512 images × 100 steps × 75.6 GFLOP (VGG-19 to relu5_1 and back at
  # 224 px) = 3.9 PFLOP, ~100 s at 40 TFLOP/s; Imagenette's 224 px tfds preparation (13,394
  # JPEGs, 2 GB) and the compilations come on top.
  STYLE_ABOUT="style_gpu.py at 224 px, 100 transfer steps, on 256 Big / 128 Small / 128 test images; teacher 2 epochs, students 10 epochs × 5 seeds"
else
  CONV_CAP=120
  CONV_ARGS+=(
    --config.data.max_big=500 --config.data.max_small=100 --config.data.max_test=200
    --teacher_epochs=1 --epochs=2 --teachers=1 --seeds=1
  )
  CONV_ABOUT="CPU smoke: 500 / 100 / 200 images, 1 teacher × 1 epoch, 1 seed × 2 epochs"
  STYLE_ARGS+=(
    --config.data.image_size=16 --config.data.imagenette_small=20 --config.data.max_big=16
    --config.data.max_small=8 --config.data.max_test=8 --config.style.steps=1 --config.style.batch_size=8
    --config.teacher.batch_size=8 --config.student.batch_size=8 --config.eval_batch_size=8
    --teacher_epochs=1 --epochs=2 --seeds=1
  )
  STYLE_ABOUT="CPU smoke: style_gpu.py's models and VGG layers at 16 px, 1 transfer step, Small drawn as 20 train images, 16 / 8 / 8 images, 1 teacher epoch, 1 seed × 2 epochs"
fi
if [[ -n "$VGG_WEIGHTS" ]]; then
  STYLE_ARGS+=("--config.style.weights=$VGG_WEIGHTS")
fi

SUMMARY_CAP=60
STATUSES=()
FAILED=0

# summarize PART STATUS RC WALL WORKDIR LOG COMMAND REASON: the part's numbers and JSON line
summarize() {
  local rc=0
  GC_PART="$1" GC_STATUS="$2" GC_RC="$3" GC_WALL="$4" GC_WORKDIR="$5" GC_LOG="$6" \
    GC_COMMAND="$7" GC_REASON="$8" GC_MODE="$MODE" GC_PEAK="$PEAK" GC_BACKEND="$BACKEND" \
    JAX_PLATFORMS=cpu "${TIMEOUT[@]}" "$SUMMARY_CAP" "$PYTHON" - <<'PY' || rc=$?
"""One part's numbers from its results.json and log; ends with its JSON line."""

import json
import os
import re

env = os.environ
part, workdir, log = env["GC_PART"], env["GC_WORKDIR"], env["GC_LOG"]
peak = float(env["GC_PEAK"]) if env.get("GC_PEAK") else None
summary = {
  "benchmark": "gpu_check",
  "part": part,
  "mode": env["GC_MODE"],
  "backend": env["GC_BACKEND"],
  "status": env["GC_STATUS"],
  "exit_code": int(env["GC_RC"]),
  "wall_seconds": float(env["GC_WALL"]),
  "command": env["GC_COMMAND"],
  "workdir": workdir,
  "log": log,
}
if env.get("GC_REASON"):
  summary["reason"] = env["GC_REASON"]
lines = []


def rate(work, seconds):
  return work / seconds if seconds and seconds > 0 else None


def gflops(flops, seconds):
  value = rate(flops, seconds)
  return None if value is None else value / 1e9


def of_peak(value):
  return value / peak if value is not None and peak else None


def add_achieved_flops(entry, per_unit_key, count_flops, units, seconds):
  """entry[per_unit_key] (GFLOP of one unit of work), "gflops" and "fraction_of_peak" from
  count_flops() FLOP per unit × units in seconds; a failure to count the FLOPs is recorded as
  "flops_error" (the timing stays useful without them). Returns whether the FLOPs were added."""
  try:
    flops = count_flops()
  except Exception as error:  # noqa: BLE001
    entry["flops_error"] = f"{type(error).__name__}: {error}"
    return False
  entry[per_unit_key] = flops / 1e9
  entry["gflops"] = gflops(flops * units, seconds)
  entry["fraction_of_peak"] = of_peak(entry["gflops"])
  return True


def percent(fraction):
  return "?" if fraction is None else f"{fraction:.1%}"


def section(config_dict):
  import ml_collections

  return ml_collections.ConfigDict(config_dict)


def train_step_flops(model_config, input_shape, batch_size):
  """XLA's FLOP count of one training step of one model (forward, backward, Adam), from the
  lowered program (cost analysis without compiling)."""
  import jax
  import jax.numpy as jnp
  import optax

  from distill_jax import losses, models

  model = models.from_config(model_config)
  params = jax.eval_shape(models.init_fn(model, tuple(input_shape)), jax.random.key(0))
  tx = optax.adam(1e-3)
  images = jax.ShapeDtypeStruct((batch_size, *input_shape), jnp.float32)
  labels = jax.ShapeDtypeStruct((batch_size,), jnp.int32)

  def step(params, opt_state, images, labels):
    loss = lambda p: losses.cross_entropy(model.apply(p, images), labels).mean()  # noqa: E731
    updates, opt_state = tx.update(jax.grad(loss)(params), opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  cost = jax.jit(step).lower(params, jax.eval_shape(tx.init, params), images, labels)
  cost = cost.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost["flops"])


def style_step_flops(style_config, size):
  """XLA's FLOP count of one Adam step of the style transfer for one image (VGG-19 forward and
  backward through the deepest layer used; distill_jax.style's own step function)."""
  import jax
  import jax.numpy as jnp
  import optax

  from distill_jax import style, vgg

  settings, weights = style.loss_settings(
    preprocessing="torch",
    content_weight=style_config["content_weight"],
    style_weight=style_config["style_weight"],
    content_layers=style_config["content_layers"],
    style_layers=style_config["style_layers"],
    normalize_style=style_config["normalize_style"],
    pool=style_config["pool"],
  )
  variables = {"params": jax.eval_shape(vgg._random_params, jax.random.key(0))}
  image = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  targets = jax.eval_shape(lambda v, x: style._targets(v, x, x, settings), variables, image)
  opt_state = jax.eval_shape(optax.adam(0.0).init, image)
  hyper = (jnp.float32(style_config["learning_rate"]), *weights)
  lowered = style._jitted_step.lower(image, opt_state, variables, targets, hyper, settings)
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return float(cost["flops"])


def teacher_input_shape(config):
  if config["target_dataset"] == "imagenette":
    size = config["data"]["image_size"]
    return (size, size, 3) if config["mapping"] == "style" else None
  import jax
  import numpy as np

  from distill_jax import maps
  from distill_jax.maps import fixed

  phi = maps.get_map(config["mapping"], **fixed.map_options(section(config)))
  return phi.map_array(np.zeros((1, 28, 28, 1), np.float32), jax.random.key(0)).shape[1:]


results_path = os.path.join(workdir, "results.json")
results = None
if os.path.exists(results_path):
  with open(results_path) as f:
    results = json.load(f)
  summary["results_json"] = results_path
if results is not None:
  config = results["config"]
  sizes = results["num_examples"]
  summary["num_examples"] = sizes
  summary["experiment_seconds"] = results["seconds"]
  summary["devices"] = results["devices"]
  lines.append(
    f"  experiment {results['seconds']['total']:.1f} s (data {results['seconds']['data']:.1f} s)"
    f" on {', '.join(results['devices'])}; images big {sizes['big']} / small {sizes['small']}"
    f" / test {sizes['test']}"
  )
  small_shape = (28, 28, 1)
  if config["target_dataset"] == "imagenette":
    small_shape = (config["data"]["image_size"],) * 2 + (3,)

  # Teacher: K teachers vmapped, epochs × (big // batch) steps of one program.
  tc, teacher = config["teacher"], results["teacher"]
  steps = tc["epochs"] * (sizes["big"] // tc["batch_size"])
  seconds = teacher["train_seconds"]
  entry = {
    "count": tc["count"],
    "model": tc["model"],
    "epochs": tc["epochs"],
    "steps": steps,
    "train_seconds": seconds,
    "steps_per_s": rate(steps, seconds),
    "reused_checkpoint": teacher["reused_checkpoint"],
    "test_accuracy_mean": teacher["test_accuracy_mean"],
  }
  add_achieved_flops(
    entry,
    "gflop_per_step",
    lambda: tc["count"]
    * train_step_flops(section(tc), teacher_input_shape(config), tc["batch_size"]),
    steps,
    seconds,
  )
  summary["teacher"] = entry
  line = (
    f"  teacher: {tc['count']} × {tc['model']}, {steps} steps of batch {tc['batch_size']} in "
    f"{seconds:.1f} s = {entry['steps_per_s'] or 0:.1f} steps/s"
  )
  if "gflops" in entry and entry["gflops"] is not None:
    line += (
      f"; {entry['gflop_per_step']:.3g} GFLOP/step ({tc['count']} teachers) → "
      f"{entry['gflops']:.1f} GFLOP/s = {percent(entry['fraction_of_peak'])} of the matmul peak"
    )
  lines.append(line + " (compile and each epoch's test evaluation included: a lower bound)")

  # Students: per arm, all runs in one vmapped program of epochs × (small // batch) steps.
  sc = config["student"]
  steps = sc["epochs"] * (sizes["small"] // sc["batch_size"])
  runs, arm_seconds, accuracy = {}, {}, {"teacher": teacher["test_accuracy_mean"]}
  for label, arm in results["arms"].items():
    runs[arm["arm"]] = runs.get(arm["arm"], 0) + len(arm["seeds"])
    arm_seconds[arm["arm"]] = arm["train_seconds"]
    accuracy[label] = arm["final"]["test_accuracy"]["mean"]
  run_steps, seconds = sum(runs.values()) * steps, sum(arm_seconds.values())
  entry = {
    "arms": list(runs),
    "runs": sum(runs.values()),
    "steps_per_run": steps,
    "train_seconds": seconds,
    "run_steps_per_s": rate(run_steps, seconds),
  }
  add_achieved_flops(
    entry,
    "gflop_per_run_step",
    lambda: train_step_flops(section(sc), small_shape, sc["batch_size"]),
    run_steps,
    seconds,
  )
  summary["students"] = entry
  line = (
    f"  students: {len(runs)} arms, {entry['runs']} runs × {steps} steps in {seconds:.1f} s = "
    f"{entry['run_steps_per_s'] or 0:.1f} run-steps/s"
  )
  if entry.get("gflops") is not None:
    line += f"; {entry['gflops']:.1f} GFLOP/s = {percent(entry['fraction_of_peak'])} of the peak"
  lines.append(line + " (compile and evaluation included)")
  summary["test_accuracy"] = accuracy
  lines.append(
    "  test accuracy: " + ", ".join(f"{name} {value:.4f}" for name, value in accuracy.items())
  )
  summary["effects"] = {
    arm: {
      metric: {"mean": value["mean"], "verdict": value["verdict"]}
      for metric, value in effect.items()
      if isinstance(value, dict) and "verdict" in value
    }
    for arm, effect in results["effects"].items()
  }

# φ_style: the cache logs "φ(style): i/n images mapped (Ts)" per chunk of each mapped array.
if part == "style" and os.path.exists(log):
  pattern = re.compile(r"φ\(style\): (\d+)/(\d+) images mapped \((\d+)s\)")
  arrays, current = [], None
  with open(log, errors="replace") as f:
    for text in f:
      match = pattern.search(text)
      if match:
        done, total, seconds = (int(g) for g in match.groups())
        if current is None or done <= current[0] or total != current[1]:
          current = [done, total, seconds]
          arrays.append(current)
        else:
          current[:] = [done, total, seconds]
  if arrays:
    images = sum(a[0] for a in arrays)
    seconds = sum(a[2] for a in arrays)
    entry = {
      "arrays": [{"images": a[0], "of": a[1], "seconds": a[2]} for a in arrays],
      "images": images,
      "seconds": seconds,
      "images_per_s": rate(images, seconds),
    }
    if results is not None:
      style_config, size = results["config"]["style"], results["config"]["data"]["image_size"]
      weights = results["phi"].get("vgg_weights")
    else:  # stopped before results.json: style_gpu.py with the command's overrides
      from experiments.configs import style_gpu

      config = style_gpu.get_config()
      style_config, size = config.style.to_dict(), config.data.image_size
      for name, value in re.findall(r"--config\.(\S+?)=(\S+)", env["GC_COMMAND"]):
        if name == "data.image_size":
          size = int(value)
        elif name == "style.steps":
          style_config["steps"] = int(value)
        elif name == "style.weights":
          style_config["weights"] = value
      weights = style_config["weights"] or "random (ranVGG: no weights file given)"
    if add_achieved_flops(
      entry,
      "gflop_per_image_step",
      lambda: style_step_flops(style_config, size),
      style_config["steps"] * images,
      seconds,
    ):
      entry["transfer_steps"] = style_config["steps"]
      entry["vgg_weights"] = weights
    summary["style_transfer"] = entry
    line = (
      f"  φ_style: {images} images in {seconds} s (whole seconds, compile included) = "
      f"{entry['images_per_s'] or 0:.2f} images/s"
    )
    if entry.get("gflops") is not None:
      line += (
        f"; {entry['gflop_per_image_step']:.3g} GFLOP per image and step × "
        f"{entry['transfer_steps']} steps → {entry['gflops']:.1f} GFLOP/s = "
        f"{percent(entry['fraction_of_peak'])} of the peak"
      )
    lines.append(line)

for line in lines:
  print(line)
print("JSON " + json.dumps(summary))
PY
  if ((rc != 0)); then
    echo "  (the summary of part $1 failed: exit $rc)"
    printf 'JSON {"benchmark": "gpu_check", "part": "%s", "status": "%s", "exit_code": %s, "wall_seconds": %s, "summary_failed": true}\n' \
      "$1" "$2" "$3" "$4"
  fi
}

# run_part NAME ABOUT CAP RESERVE ARGS...: one experiment under timeout, then its summary.
run_part() {
  local name="$1" about="$2" cap="$3" reserve="$4"
  shift 4
  local workdir="$OUT/$name" log="$OUT/$name.log"
  local command=("$PYTHON" -m experiments.distill "$@" "--data_dir=$DATA_DIR"
    "--workdir=$workdir" "--tfds_dir=$TFDS_DIR")
  local seconds
  seconds="$(limit "$cap" "$reserve")"
  echo
  echo "== $name: $about =="
  echo "command: ${command[*]}"
  echo "log: $log; time limit ${seconds} s"
  if ((seconds < 10)); then
    echo "SKIPPED $name: only ${seconds} s of the ${BUDGET_S} s budget left"
    summarize "$name" skipped 0 0 "$workdir" "$log" "${command[*]}" "no time left in the budget"
    STATUSES+=("$name=skipped")
    return
  fi
  local started rc=0 status
  started="$(date +%s.%N)"
  "${TIMEOUT[@]}" "$seconds" "${command[@]}" >"$log" 2>&1 || rc=$?
  local wall
  wall="$(since "$started")"
  if ((rc == 0)); then
    status=ok
  elif ((rc == 124 || rc == 137)); then
    status=timeout
    FAILED=1
    echo "TIMEOUT $name: stopped after ${seconds} s (the budget); what it finished is in $log"
  else
    status=failed
    FAILED=1
    echo "FAILED $name (exit $rc); the end of $log:"
    grep -v -e 'examples/s' -e '%|' "$log" | tail -n 15 | sed 's/^/  | /' || true
  fi
  echo "wall $wall s ($status)"
  summarize "$name" "$status" "$rc" "$wall" "$workdir" "$log" "${command[*]}" ""
  STATUSES+=("$name=$status")
}

# run_scaling: benchmarks/devices_scaling.py, 1 device vs every device on the runs axis (the
# sweep on GPUs; its smoke sizes on 2 fake CPU devices in cpu_smoke), under timeout.
run_scaling() {
  local log="$OUT/scaling.log" seconds rc=0 started wall status=ok
  local command=("$PYTHON" benchmarks/devices_scaling.py "--data_dir=$DATA_DIR"
    "--tfds_dir=$TFDS_DIR" --layouts=1,runs)
  if [[ "$MODE" == gpu ]]; then
    command+=(--workloads=sweep)
  else
    command+=(--smoke --workloads=main --devices=2 --cost=)
  fi
  seconds="$(limit 100000 "$KILL_GRACE")"
  echo
  echo "== scaling: the runs axis, 1 device vs all devices (benchmarks/devices_scaling.py) =="
  echo "command: ${command[*]}"
  echo "log: $log; time limit ${seconds} s"
  started="$(date +%s.%N)"
  "${TIMEOUT[@]}" "$seconds" "${command[@]}" >"$log" 2>&1 || rc=$?
  wall="$(since "$started")"
  if ((rc != 0)); then
    status=failed
    ((rc == 124 || rc == 137)) && status=timeout
    FAILED=1
    tail -n 15 "$log" | sed 's/^/  | /' || true
  fi
  grep -v '^JSON' "$log" | sed -n '/^workload: layout/,$p' || true
  echo "wall $wall s ($status)"
  printf 'JSON {"benchmark": "gpu_check", "part": "scaling", "status": "%s", "exit_code": %s, "wall_seconds": %s, "log": "%s"}\n' \
    "$status" "$rc" "$wall" "$log"
  STATUSES+=("scaling=$status")
}

for part in "${PART_LIST[@]}"; do
  if [[ "$part" == scaling ]]; then
    run_scaling
  elif [[ "$part" == conv ]]; then
    # Leave room for the conv summary and a useful style part when one follows.
    reserve=$((SUMMARY_CAP + KILL_GRACE))
    [[ " ${PART_LIST[*]} " == *" style "* ]] && reserve=$((reserve + 150))
    run_part conv "$CONV_ABOUT" "$CONV_CAP" "$reserve" "${CONV_ARGS[@]}"
  else
    if [[ ! -d "$DATA_DIR/imagenette/train" || ! -d "$DATA_DIR/imagenette/val" ]]; then
      reason="no Imagenette at $DATA_DIR/imagenette/{train,val}/<wnid>/*.JPEG: the style part needs it and nothing is downloaded here"
      echo
      echo "== style: $STYLE_ABOUT =="
      echo "SKIPPED style: $reason"
      summarize style skipped 0 0 "$OUT/style" "$OUT/style.log" "" "$reason"
      STATUSES+=("style=skipped")
      continue
    fi
    if [[ -z "$VGG_WEIGHTS" ]]; then
      echo
      echo "note: φ_style uses random ranVGG VGG-19 weights (no --vgg_weights; no pretrained" \
        "file is available offline): the same FLOPs and timings, other stylized images"
    fi
    run_part style "$STYLE_ABOUT" 100000 "$((SUMMARY_CAP + KILL_GRACE))" "${STYLE_ARGS[@]}"
  fi
done

TOTAL="$(since "$START")"
echo
echo "== total: $TOTAL s wall (budget $BUDGET_S s; mode $MODE; out $OUT) =="
"$PYTHON" -c '
import json, sys
mode, wall, budget, out, *parts = sys.argv[1:]
statuses = dict(part.split("=", 1) for part in parts)
print("JSON " + json.dumps({"benchmark": "gpu_check", "part": "total", "mode": mode,
  "wall_seconds": float(wall), "budget_seconds": int(budget), "parts": statuses, "out": out}))
' "$MODE" "$TOTAL" "$BUDGET_S" "$OUT" "${STATUSES[@]}"
exit "$FAILED"
