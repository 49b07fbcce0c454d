r"""Where a sweep point's time goes, without and with the sweep's shared compilation cache.

Runs one point of a sweep file (its exact training command, on one core, as
the sweep runs it) twice into fresh directories: `cold`, with an empty JAX
compilation cache (what every point paid before the sweep shared one), then
`warm`, reading the executables the first run wrote (what a sweep's later
points of the same shape pay). From each run's console lines (absl's
timestamps) it splits the wall time into

* start-up: process start to the parameter count (imports, gin, reading the
  frozen checkpoint, building the model);
* set-up and compilation: to the "compiled train step" line (the data
  pipelines, seqio's evaluators, the train step's compilation);
* evaluation: each "eval at step N" line minus the step-N line before it
  (teacher-forced loss, then decoding validation and every TEST_SPLIT; the first
  one compiles the evaluation and decoding steps);
* training steps: the rest until the process ends (checkpoint saves included).

It also checks that the two runs' evaluation lines are identical (metrics.jsonl's
evaluation records, exactly: a cached executable computes what a compiled one
does).

    python scripts/benchmark_point.py \
      --sweep_file=configs/sweeps/wordnet_scaling_figure1.gin \
      --point=size=xs,method=prompt_tuning,task=supersense,RANDOM_SEED=0 --out=build/bench

With --point_dirs it runs nothing and splits points a sweep already ran, from
their train.log and status.json (one attempt each; the wall time is the
executor's), e.g. a sweep's first point of a shape (cold cache) against a later
one (warm), as the sweep ran them:

    python scripts/benchmark_point.py --point_dirs \
      "build/scaling/figure1/size=l,method=prompt_tuning,task=supersense,RANDOM_SEED=0" \
      "build/scaling/figure1/size=l,method=prompt_tuning,task=supersense,RANDOM_SEED=1"
"""

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time

from prompt_tuning.sweep import driver
from prompt_tuning.sweep import executors
from prompt_tuning.sweep import points as points_lib

_STAMP = re.compile(r"^[IWE](\d{4}) (\d\d:\d\d:\d\d\.\d+)")


def _time(line: str, year: int) -> float:
  match = _STAMP.match(line)
  stamp = datetime.datetime.strptime(f"{year}{match[1]} {match[2]}", "%Y%m%d %H:%M:%S.%f")
  return stamp.timestamp()


def split(log: str, begin: float, end: float) -> dict:
  """The wall time's parts (seconds) from a run's console lines, and its eval lines."""
  year = datetime.datetime.fromtimestamp(begin).year
  lines = [line for line in log.splitlines() if _STAMP.match(line)]
  first = lambda text: next(_time(l, year) for l in lines if text in l)
  parameters, compiled = first("] parameters: "), first("] compiled train step")
  step_line, evals, eval_lines = {}, [], []
  for line in lines:
    if match := re.search(r"\] step (\d+)/\d+ ", line):
      step_line[int(match[1])] = _time(line, year)
    elif match := re.search(r"\] eval at step (\d+): (.*)$", line):
      evals.append(_time(line, year) - step_line[int(match[1])])
      eval_lines.append(f"eval at step {match[1]}: {match[2]}")
  total = end - begin
  parts = {
    "start-up": parameters - begin,
    "set-up and compilation": compiled - parameters,
    "evaluation": sum(evals),
    "first evaluation": evals[0] if evals else 0.0,
  }
  parts["training steps"] = total - parts["start-up"] - parts["set-up and compilation"] - sum(evals)
  return {"total": total, "parts": parts, "evaluations": len(evals), "eval_lines": eval_lines}


def run(argv: list, env: dict, log_path: str) -> dict:
  begin = time.time()
  result = subprocess.run(argv, env=env, capture_output=True, text=True)
  end = time.time()
  with open(log_path, "w") as f:
    f.write(result.stderr)
  if result.returncode:
    sys.exit(f"benchmark_point: the run failed (exit {result.returncode}); its log is {log_path}")
  return split(result.stderr, begin, end)


def split_point_dir(point_dir: str) -> dict:
  """The split of a point a sweep ran: its train.log's lines, its status.json's wall time."""
  status = points_lib.status(point_dir)
  if status.get("status") != points_lib.DONE or status.get("attempts") != 1:
    sys.exit(
      f"benchmark_point: {point_dir} is not a point done in one attempt "
      f"(status {status.get('status')!r}, attempts {status.get('attempts')!r})"
    )
  with open(os.path.join(point_dir, points_lib.LOG_FILE), errors="replace") as f:
    log = f.read()
  end = status["finished"]
  return split(log, end - status["wall_s"], end)


def _print_splits(columns: dict) -> None:
  print("| part | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
  first = next(iter(columns.values()))
  for part in first["parts"]:
    print(f"| {part} | " + " | ".join(f"{c['parts'][part]:.1f}" for c in columns.values()) + " |")
  print("| total | " + " | ".join(f"{c['total']:.1f}" for c in columns.values()) + " |")


def main(args_list=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sweep_file")
  parser.add_argument("--point", help="the point's name (its directory's)")
  parser.add_argument("--out", help="a fresh directory for the two runs")
  parser.add_argument(
    "--point_dirs", nargs="+", help="split these points a sweep ran instead (nothing runs)"
  )
  parser.add_argument(
    "--gin",
    action="append",
    default=[],
    help="extra KEY=VALUE bindings after the point's (e.g. TRAIN_STEPS=250)",
  )
  args = parser.parse_args(args_list)
  if args.point_dirs:
    splits = {os.path.basename(os.path.normpath(d)): split_point_dir(d) for d in args.point_dirs}
    print("points as their sweep ran them (seconds)")
    _print_splits(splits)
    return 0
  if not (args.sweep_file and args.point and args.out):
    parser.error("give --sweep_file, --point and --out (or --point_dirs)")
  plan = driver.load(args.sweep_file)
  points = {p.name: p for p in plan.points}
  if args.point not in points:
    sys.exit(f"benchmark_point: no point {args.point!r} in {args.sweep_file}")
  shutil.rmtree(args.out, ignore_errors=True)
  os.makedirs(args.out)
  cache = os.path.join(os.path.abspath(args.out), "jax_cache")
  results = {}
  for name in ("cold", "warm"):
    model_dir = os.path.join(os.path.abspath(args.out), name)
    argv = points_lib.train_argv(plan, points[args.point], model_dir, python=sys.executable)
    argv += [f"--gin.{binding}" for binding in args.gin]
    env = {
      **os.environ,
      **points_lib.environment(plan),
      **executors.compilation_cache({"XDG_CACHE_HOME": "unused"}),
      executors.CACHE_VARIABLE: cache,
    }
    results[name] = run(argv, env, os.path.join(args.out, f"{name}.log"))
    with open(os.path.join(model_dir, "metrics.jsonl")) as f:  # exact values, not the console's
      results[name]["eval_records"] = [
        {k: v for k, v in r.items() if k != "time"}
        for r in map(json.loads, f)
        if any(k.startswith("eval/") for k in r)
      ]
  print(f"point {args.point} ({os.cpu_count()} cores here; seconds)")
  _print_splits({"cold cache": results["cold"], "warm cache": results["warm"]})
  same = results["cold"]["eval_records"] == results["warm"]["eval_records"]
  print(f"evaluations: {results['cold']['evaluations']}; evaluation lines identical: {same}")
  with open(os.path.join(args.out, "split.json"), "w") as f:
    json.dump(results, f, indent=1)
  return 0 if same else 1


if __name__ == "__main__":
  sys.exit(main())
