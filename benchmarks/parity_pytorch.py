"""Parity with PyTorch: the same K teachers × S students in distill-jax and in plain PyTorch.

  pip install -e '.[test]'   # includes torch==2.13.0 (CPU)
  python benchmarks/parity_pytorch.py --data_dir=../shared/data                 # K = 5, ~25 min
  python benchmarks/parity_pytorch.py --data_dir=../shared/data --maps=conv --teachers=20
  python benchmarks/parity_pytorch.py --data_dir=../shared/data --smoke         # seconds
  python benchmarks/parity_pytorch.py --from_json=a.json,b.json   # tables of saved runs

For each map φ (identity, noise, conv), distill-jax runs the experiment through the library
(``experiment.run_experiment``: the default config with ``teacher.count = K``, ``seeds = S``,
once per ``--jax_inits`` scheme, default ``torch``) and ``benchmarks/torch_reference.py`` runs
the same design in PyTorch as a user would write it. Both give each teacher its own S student
seeds (``--shared_seeds``: the same S under every teacher) and pair every taught run with the
``no_teacher`` run of its seed. Per framework it prints the teachers' accuracy on φ(test) (mean ± sd) and
the gain of ``teacher_phi`` over ``no_teacher`` (paired by student seed, averaged per teacher)
in test accuracy and cross-entropy, with 95% t intervals over the K teachers, for two
estimators: the final epoch (``final``) and the mean of the last 10 epochs (``last10``), and
whether the intervals of distill-jax and PyTorch overlap.

Diagnostics (the spread of the gain): ``sd(d_k)`` is the spread of the K per-teacher gains,
``seed part`` the part of it that student-seed noise alone explains (√(mean_k var_s(d_ks) / S)),
``r(teacher acc)`` / ``r(teacher CE)`` the Pearson correlation of d_k with the teacher's test
accuracy / cross-entropy, and Levene's test
(``scipy.stats.levene``) compares the spread of d_k between each distill-jax scheme and PyTorch.

``--json=path`` writes everything (per-teacher numbers included); the last line printed is a
JSON summary. Not a test: no assertions (``tests/test_benchmarks.py`` runs ``--smoke``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
import scipy.stats
import torch
from absl import logging as absl_logging

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch_reference  # noqa: E402  benchmarks/torch_reference.py
from distill_jax import effects  # noqa: E402
from distill_jax import experiment  # noqa: E402
from distill_jax import files  # noqa: E402
from distill_jax import provenance  # noqa: E402
from experiments.configs import default as default_config  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("test_accuracy", "test_cross_entropy")
ESTIMATORS = {"final": 1, "last10": 10}  # name -> epochs averaged at the end
BLOCK = 5  # with K >= 2 · BLOCK teachers: sd(d_k) within each block of 5 (what K = 5 would show)
SMOKE = dict(teachers=2, seeds=2, teacher_epochs=1, student_epochs=3)
SMOKE_SIZES = {"big": 640, "small": 200, "test": 500}


def jax_run(map_name, args, init, workdir, tfds_dir, max_sizes) -> dict:
  """The experiment through distill-jax, in the framework-neutral form of ``torch_reference.run``."""
  config = default_config.get_config()
  config.mapping = map_name
  config.teacher.count = args.teachers
  config.seeds = args.seeds
  config.teacher.epochs = args.teacher_epochs
  config.student.epochs = args.student_epochs
  config.teacher.init = config.student.init = init
  config.student_seeds = "shared" if args.shared_seeds else "per_teacher"
  config.checkpoint_every = 10**9  # only at the end
  for split, size in max_sizes.items():
    config.data[f"max_{split}"] = size
  results = experiment.run_experiment(
    config,
    os.path.join(workdir, f"jax_{init}", map_name),
    data_dir=args.data_dir,
    tfds_dir=tfds_dir,
    cache_dir=os.path.join(workdir, f"jax_{init}", "cache"),
  )
  out = {"teachers": [], "arms": {"no_teacher": [], "teacher_phi": []}}
  info = results["teacher"]
  for seed, accuracy, cross_entropy in zip(
    info["seeds"], info["test_accuracy"], info["test_cross_entropy"]
  ):
    out["teachers"].append(
      {"seed": seed, "test_accuracy": accuracy, "test_cross_entropy": cross_entropy}
    )
  base = results["arms"]["no_teacher"]
  out["arms"]["no_teacher"] = [
    {"seed": seed, **{m: base[m][i] for m in METRICS}} for i, seed in enumerate(base["seeds"])
  ]
  taught = results["arms"]["teacher_phi"]
  for k in range(len(info["seeds"])):  # the run grid numbers teachers 0 … K − 1
    out["arms"]["teacher_phi"].append(
      [
        {"seed": seed, **{m: taught[m][i] for m in METRICS}}
        for i, (seed, teacher) in enumerate(zip(taught["seeds"], taught["teachers"]))
        if teacher == k
      ]
    )
  out["seconds"] = results["seconds"]["total"]
  return out


def gains(run: dict, metric: str, last: int) -> np.ndarray:
  """``d[k, j]``: teacher k's j-th teacher_phi run (by seed) − the no_teacher run of that seed, each
  the mean of the last ``last`` epochs of ``metric``."""
  end = lambda history: float(np.mean(history[metric][-last:]))  # noqa: E731
  base = {h["seed"]: end(h) for h in run["arms"]["no_teacher"]}
  return np.array(
    [
      [end(h) - base[h["seed"]] for h in sorted(per_teacher, key=lambda h: h["seed"])]
      for per_teacher in run["arms"]["teacher_phi"]
    ]
  )


def summarize(run: dict) -> dict:
  """Teachers' accuracy, and per metric and estimator the interval over teachers and the
  spread diagnostics."""
  teacher_acc = np.array([t["test_accuracy"] for t in run["teachers"]])
  teacher_ce = np.array([t.get("test_cross_entropy", np.nan) for t in run["teachers"]])
  seed_sets = [sorted(h["seed"] for h in runs) for runs in run["arms"]["teacher_phi"]]
  shared = len(seed_sets) >= 2 and all(seeds == seed_sets[0] for seeds in seed_sets)
  out = {
    "shared_seeds": shared,
    "teacher_accuracy": teacher_acc.tolist(),
    "teacher_accuracy_mean": float(teacher_acc.mean()),
    "teacher_accuracy_sd": float(teacher_acc.std(ddof=1)) if teacher_acc.size > 1 else None,
  }
  for metric, alternative in effects.CLAIMED.items():
    for estimator, last in ESTIMATORS.items():
      d = gains(run, metric, last)
      per_teacher = d.mean(axis=1)
      result = effects.interval(per_teacher, alternative)
      result["verdict"] = effects.verdict(result, alternative)
      result["per_teacher"] = per_teacher.tolist()
      result["sd"] = float(per_teacher.std(ddof=1)) if per_teacher.size > 1 else None
      if per_teacher.size >= 2 * BLOCK:
        blocks = per_teacher[: per_teacher.size // BLOCK * BLOCK].reshape(-1, BLOCK)
        result["block_sds"] = blocks.std(axis=1, ddof=1).tolist()
      if d.shape[1] > 1:  # what student-seed noise alone gives the per-teacher means
        result["seed_part_sd"] = float(np.sqrt(d.var(axis=1, ddof=1).mean() / d.shape[1]))
        if shared:  # noise of the S seeds common to every teacher: missing from the interval
          result["shared_seed_se"] = float(d.mean(axis=0).std(ddof=1) / np.sqrt(d.shape[1]))
          result["teacher_se"] = float(per_teacher.std(ddof=1) / np.sqrt(per_teacher.size))
      if per_teacher.size > 2 and np.ptp(per_teacher) > 0:
        for name, values in (("accuracy", teacher_acc), ("cross_entropy", teacher_ce)):
          if np.isfinite(values).all() and np.ptp(values) > 0:
            r = scipy.stats.pearsonr(values, per_teacher)[0]
            result[f"r_teacher_{name}"] = float(r)
      out[f"{metric}/{estimator}"] = result
  return out


def overlap(a: dict, b: dict) -> bool | None:
  if a["low"] is None or b["low"] is None:
    return None
  return a["low"] <= b["high"] and b["low"] <= a["high"]


def fmt(effect: dict) -> str:
  if effect["low"] is None:
    return f"{effect['mean']:+.4f} [no interval]"
  return f"{effect['mean']:+.4f} [{effect['low']:+.4f}, {effect['high']:+.4f}]"


def report(summaries: dict) -> str:
  """The printed tables: one row per (map, framework)."""
  lines = [
    "| map | framework | teachers on φ(test) | Δacc final | Δacc last10 | ΔCE final | ΔCE last10 |",
    "|---|---|---|---|---|---|---|",
  ]
  for map_name, per_framework in summaries.items():
    for framework, s in per_framework.items():
      sd = s["teacher_accuracy_sd"]
      teachers = f"{s['teacher_accuracy_mean']:.4f} ± {sd:.4f}" if sd is not None else "—"
      cells = [fmt(s[f"{m}/{e}"]) for m in METRICS for e in ESTIMATORS]
      lines.append(f"| {map_name} | {framework} | {teachers} | " + " | ".join(cells) + " |")
  lines += [
    "",
    "Spread of the per-teacher accuracy gain d_k (sd over teachers; the part student-seed noise",
    "alone explains; Pearson r with the teacher's test accuracy and cross-entropy; Levene p",
    "against PyTorch; with shared seeds, the standard error of the interval over teachers and",
    "the one the seeds common to all teachers add, sd_s(mean_k d_ks)/√S, which it misses):",
    "",
    "| map | framework | estimator | sd(d_k) | seed part | r(teacher acc) | r(teacher CE) "
    "| Levene p vs pytorch | se over teachers | shared-seed se |",
    "|---|---|---|---|---|---|---|---|---|---|",
  ]
  for map_name, per_framework in summaries.items():
    reference = per_framework.get("pytorch")
    for framework, s in per_framework.items():
      for estimator in ESTIMATORS:
        e = s[f"test_accuracy/{estimator}"]
        levene = "—"
        theirs = reference[f"test_accuracy/{estimator}"]["per_teacher"] if reference else []
        if framework != "pytorch" and min(len(e["per_teacher"]), len(theirs)) >= 3:
          levene = f"{scipy.stats.levene(e['per_teacher'], theirs).pvalue:.3f}"
        cells = [
          f"{e[k]:.4f}" if e.get(k) is not None else "—"
          for k in ("sd", "seed_part_sd", "r_teacher_accuracy", "r_teacher_cross_entropy")
        ]
        shared = [
          f"{e[k]:.4f}" if e.get(k) is not None else "—" for k in ("teacher_se", "shared_seed_se")
        ]
        lines.append(
          f"| {map_name} | {framework} | {estimator} | "
          + " | ".join([*cells, levene, *shared])
          + " |"
        )
  blocks = [
    f"| {map_name} | {framework} | {estimator} | "
    + " ".join(f"{v:.4f}" for v in s[f"test_accuracy/{estimator}"]["block_sds"])
    + " |"
    for map_name, per_framework in summaries.items()
    for framework, s in per_framework.items()
    for estimator in ESTIMATORS
    if "block_sds" in s[f"test_accuracy/{estimator}"]
  ]
  if blocks:
    lines += [
      "",
      f"sd(d_k) of accuracy within each block of {BLOCK} consecutive teachers (what K = {BLOCK} "
      "would have shown):",
      "",
      "| map | framework | estimator | sd per block |",
      "|---|---|---|---|",
      *blocks,
    ]
  return "\n".join(lines)


def levene(summaries: dict) -> dict:
  """``{map: {jax framework: {estimator: Levene's p}}}``: do the per-teacher accuracy gains
  spread alike in distill-jax and PyTorch (needs 3 teachers or more on each side)."""
  out = {}
  for map_name, per_framework in summaries.items():
    reference = per_framework.get("pytorch")
    if reference is None:
      continue
    out[map_name] = {}
    for framework, s in per_framework.items():
      if framework == "pytorch":
        continue
      out[map_name][framework] = {}
      for estimator in ESTIMATORS:
        ours = s[f"test_accuracy/{estimator}"]["per_teacher"]
        theirs = reference[f"test_accuracy/{estimator}"]["per_teacher"]
        if min(len(ours), len(theirs)) >= 3:
          out[map_name][framework][estimator] = float(scipy.stats.levene(ours, theirs).pvalue)
  return out


def published(saved: dict, summaries: dict) -> dict:
  """What docs/results/parity.json keeps of a saved run: everything but the raw runs."""
  kept = {key: value for key, value in saved.items() if key not in ("runs", "summaries")}
  return {
    **kept,
    "overlap_with_pytorch": overlaps(summaries),
    "levene_p_vs_pytorch": levene(summaries),
    "summaries": summaries,
  }


def overlaps(summaries: dict) -> dict:
  """``{map: {jax framework: {metric/estimator: intervals overlap with PyTorch's}}}``."""
  out = {}
  for map_name, per_framework in summaries.items():
    reference = per_framework.get("pytorch")
    if reference is None:
      continue
    out[map_name] = {
      framework: {key: overlap(s[key], reference[key]) for key in s if "/" in key}
      for framework, s in per_framework.items()
      if framework != "pytorch"
    }
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--data_dir", default=os.path.join(REPO_ROOT, "..", "shared", "data"))
  parser.add_argument("--maps", default="identity,noise,conv")
  parser.add_argument("--teachers", type=int, default=5)
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--teacher_epochs", type=int, default=10)
  parser.add_argument("--student_epochs", type=int, default=100)
  parser.add_argument(
    "--jax_inits", default="torch", help="distill-jax init schemes, e.g. torch,flax"
  )
  parser.add_argument("--no_pytorch", action="store_true", help="distill-jax side only")
  parser.add_argument(
    "--torch_drop_last", action="store_true", help="PyTorch drops partial batches"
  )
  parser.add_argument(
    "--shared_seeds", action="store_true", help="the same S student seeds under every teacher"
  )
  parser.add_argument("--workdir", default=None, help="default: a temporary directory")
  parser.add_argument("--tfds_dir", default=None, help="default: <workdir>/tfds")
  parser.add_argument(
    "--json", default=None,
    help="write the full results here; with --from_json: the summaries without the raw runs",
  )  # fmt: skip
  parser.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, for the tests")
  parser.add_argument(
    "--from_json", default=None, help="no training: the tables of runs saved with --json (merged)"
  )
  args = parser.parse_args(argv)
  if args.from_json:
    runs, saved = {}, {}
    for path in args.from_json.split(","):
      with open(path) as f:
        saved = json.load(f)
      runs.update(saved["runs"])
    summaries = {m: {f: summarize(run) for f, run in per.items()} for m, per in runs.items()}
    print(report(summaries))
    print(json.dumps({"overlap_with_pytorch": overlaps(summaries)}))
    if args.json:  # one saved run (its provenance) without its raw runs: what the docs quote
      if "," in args.from_json:
        parser.error("--json with --from_json publishes one saved run; give one file")
      files.write_json(args.json, published(saved, summaries), indent=1)
    return summaries
  max_sizes = {}
  if args.smoke:
    for name, value in SMOKE.items():
      setattr(args, name, value)
    max_sizes = SMOKE_SIZES
  absl_logging.set_verbosity(absl_logging.WARNING)
  torch.set_num_threads(os.cpu_count() or 1)
  with tempfile.TemporaryDirectory() as scratch:
    workdir = args.workdir or scratch
    tfds_dir = args.tfds_dir or os.path.join(workdir, "tfds")
    torch_data = torch_reference.load_fashion_mnist(args.data_dir, max_sizes)
    runs, seconds = {}, {}
    for map_name in args.maps.split(","):
      runs[map_name] = {}
      for init in [i for i in args.jax_inits.split(",") if i]:
        start = time.perf_counter()
        runs[map_name][f"jax-{init}"] = jax_run(map_name, args, init, workdir, tfds_dir, max_sizes)
        seconds[f"{map_name}/jax-{init}"] = time.perf_counter() - start
        print(
          f"{map_name}: distill-jax (init {init}) {seconds[f'{map_name}/jax-{init}']:.0f} s",
          flush=True,
        )
      if not args.no_pytorch:
        start = time.perf_counter()
        runs[map_name]["pytorch"] = torch_reference.run(
          map_name,
          torch_data,
          teachers=args.teachers,
          seeds=args.seeds,
          teacher_epochs=args.teacher_epochs,
          student_epochs=args.student_epochs,
          drop_last=args.torch_drop_last,
          shared_seeds=args.shared_seeds,
          log=lambda line: print(line, flush=True),
        )
        seconds[f"{map_name}/pytorch"] = time.perf_counter() - start
        print(f"{map_name}: pytorch {seconds[f'{map_name}/pytorch']:.0f} s", flush=True)
      if args.json:  # every finished map is kept, should a later one be interrupted
        with open(args.json, "w") as f:
          json.dump({"args": vars(args), "runs": runs, "seconds": seconds}, f)
  summaries = {m: {f: summarize(run) for f, run in per.items()} for m, per in runs.items()}
  print(
    f"\nK = {args.teachers} teachers × S = {args.seeds} student seeds, teacher "
    f"{args.teacher_epochs} epochs, students {args.student_epochs} epochs; teacher_phi − "
    "no_teacher, 95% t interval over teachers:\n"
  )
  print(report(summaries))
  summary = {
    "provenance": provenance.record(
      None if argv is None else ["benchmarks/parity_pytorch.py", *argv]
    ),
    "teachers": args.teachers,
    "seeds": args.seeds,
    "overlap_with_pytorch": overlaps(summaries),
    "levene_p_vs_pytorch": levene(summaries),
    "seconds": seconds,
  }
  if args.json:
    with open(args.json, "w") as f:
      json.dump({**summary, "args": vars(args), "summaries": summaries, "runs": runs}, f)
  print(json.dumps(summary))
  return summaries


if __name__ == "__main__":
  main()
