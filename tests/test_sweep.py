"""Sweeps: the sweep file, the local and Ray executors, resume after kill -9, `report`.

The end-to-end sweep is three points of the bundled tiny model on the bundled
WordNet task, over LEARNING_RATE (the same shapes, so one compile each):
0.3 and 1.0 train; -1.0 is an invalid value that fails its point alone.
"""

import csv
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import re
import textwrap
import time

import gin
import pytest

from prompt_tuning import gin_config
from prompt_tuning.sweep import driver
from prompt_tuning.sweep import executors
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import report as report_lib
from prompt_tuning.sweep import spec
from tests import conftest

REPO = str(conftest.REPO_ROOT)
HEADER = textwrap.dedent("""\
    from __gin__ import dynamic_registration
    from prompt_tuning import sweep
    from prompt_tuning.data import wordnet
    """)
BASE = textwrap.dedent("""\
    sweep.Sweep.gin_files = ['configs/models/wordnet_tiny_prompt.gin',
                             'configs/runs/prompt_finetune.gin',
                             'configs/prompts/from_class_labels.gin']
    sweep.Sweep.bindings = {
        'INITIAL_CHECKPOINT_PATH': @wordnet.bundled_checkpoint(),
        'MIXTURE_OR_TASK_MODULE': 'prompt_tuning.data.tasks',
        'MIXTURE_OR_TASK_NAME': 'wordnet_supersense',
        'TASK_FEATURE_LENGTHS': {'inputs': 48, 'targets': 4},
        'CLASS_LABELS': @wordnet.labels(),
        'PROMPT_LENGTH': 4,
        'DROPOUT_RATE': 0.0,
        'BATCH_SIZE': 8,
        'TRAIN_STEPS': 20,
        'EVAL_PERIOD': 10,
        'CHECKPOINT_PERIOD': 10,
        'evaluation.infer_eval.num_examples': 64,
    }
    """)
LEARNING_RATES = "sweep.Sweep.axes = {'LEARNING_RATE': [0.3, 1.0, -1.0]}\n"
GOOD_POINTS = ("LEARNING_RATE=0.3", "LEARNING_RATE=1.0")
BAD_POINT = "LEARNING_RATE=-1.0"


def _write(tmp_path, text, name="sweep.gin"):
  path = tmp_path / name
  path.write_text(HEADER + text)
  return str(path)


def _sweep(sweep_file, sweep_dir, *flags, wait=True, env=None):
  cmd = [
    sys.executable,
    "-m",
    "prompt_tuning.sweep",
    f"--sweep_file={sweep_file}",
    f"--sweep_dir={sweep_dir}",
    *flags,
  ]
  process = subprocess.Popen(
    cmd,
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env={**os.environ, **(env or {})},
    start_new_session=True,
  )
  if not wait:
    return process
  out, err = process.communicate(timeout=300)
  return process.returncode, out, err


def _rows(path):
  with open(path, newline="") as f:
    return {row["name"]: row for row in csv.DictReader(f)}


def _reproducible(rows):
  """Every column but the measured ones (wall time, tokens/s)."""
  return {
    name: {k: v for k, v in row.items() if k not in report_lib.MEASURED}
    for name, row in rows.items()
  }


def _mtimes(directory):
  return {
    os.path.join(root, f): os.stat(os.path.join(root, f)).st_mtime_ns
    for root, _, files in os.walk(directory)
    for f in files
  }


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
  """The three-point sweep run once by the local executor, two points at a time."""
  tmp = tmp_path_factory.mktemp("local")
  sweep_file = _write(tmp, BASE + LEARNING_RATES)
  code, out, err = _sweep(sweep_file, tmp / "sweep", "--max_parallel=2")
  return {"file": sweep_file, "dir": str(tmp / "sweep"), "code": code, "out": out, "err": err}


@pytest.mark.integration
@pytest.mark.slow
def test_local_sweep_reports_each_point_and_the_failed_one(local_sweep):
  out, sweep_dir = local_sweep["out"], local_sweep["dir"]
  assert local_sweep["code"] == 1, local_sweep["err"][-2000:]  # a point failed
  last = out.strip().splitlines()[-1]
  results = os.path.join(sweep_dir, "results.csv")
  assert last.startswith(f"sweep: 2/3 points done results={results} plot="), out
  plot = last.split("plot=")[1]
  assert plot.endswith(".png") and os.path.getsize(plot) > 10_000
  rows = _rows(results)
  assert set(rows) == set(GOOD_POINTS) | {BAD_POINT}
  for name in GOOD_POINTS:
    row = rows[name]
    assert row["status"] == "done" and row["steps"] == "20" and row["best_step"] in ("10", "20")
    # The best evaluation is the best of the point's evaluations, its value the metric's.
    evals = [
      json.loads(line)
      for line in open(os.path.join(sweep_dir, name, "metrics.jsonl"))
      if '"eval/' in line
    ]
    accuracy = {e["step"]: e["eval/wordnet_supersense/accuracy"] for e in evals}
    assert sorted(accuracy) == [10, 20]
    assert float(row["best"]) == max(accuracy.values())
    assert int(row["best_step"]) == min(
      s for s, v in accuracy.items() if v == max(accuracy.values())
    )
    assert float(row["last"]) == accuracy[20]
    assert int(row["parameters_trained"]) == 4 * 128  # the prompt only
    assert int(row["parameters_model"]) + 512 == int(row["parameters_total"])
  bad = rows[BAD_POINT]
  assert bad["status"] == "failed"
  assert bad["error"] == ("error: LEARNING_RATE=-1.0; it must be a positive number (or a schedule)")
  summary = open(os.path.join(sweep_dir, "summary.md")).read()
  assert f"`{BAD_POINT}`: failed: error: LEARNING_RATE=-1.0" in summary
  assert f"{BAD_POINT} FAILED (exit 1)" in out
  # Each point's TensorBoard events sit in its directory, under the sweep's.
  assert all(
    any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(sweep_dir, name)))
    for name in GOOD_POINTS
  )


@pytest.mark.integration
@pytest.mark.slow
def test_a_points_written_command_gives_its_numbers(local_sweep, tmp_path):
  point = os.path.join(local_sweep["dir"], GOOD_POINTS[1])
  elsewhere = tmp_path / "by_hand"
  result = subprocess.run(
    ["sh", os.path.join(point, "command.sh")],
    capture_output=True,
    text=True,
    env={**os.environ, "POINT_MODEL_DIR": str(elsewhere), "MODEL_DIR": "/not/this/one"},
    cwd=str(tmp_path),
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-2000:]

  def numbers(model_dir):
    out = {}
    for line in open(os.path.join(model_dir, "metrics.jsonl")):
      record = json.loads(line)
      if "event" not in record:
        out.setdefault(record["step"], {}).update(
          {
            k: v
            for k, v in record.items()
            if k
            not in (
              "time",
              "train/steps_per_second",
              "train/tokens_per_second",
              "train/step_time_seconds",
            )
          }
        )
    return out

  assert numbers(elsewhere) == numbers(point)
  assert len(numbers(point)) == 2


@pytest.mark.integration
@pytest.mark.slow
def test_report_rebuilds_the_summary_from_the_point_files_alone(local_sweep, tmp_path):
  copy = tmp_path / "copy"
  shutil.copytree(local_sweep["dir"], copy)
  summary = (copy / "summary.md").read_text()
  results = _reproducible(_rows(copy / "results.csv"))
  for name in ("summary.md", "results.csv", "sweep.json"):
    (copy / name).unlink()
  shutil.rmtree(copy / "plots")
  result = report_lib.report(str(copy))
  assert (copy / "summary.md").read_text() == summary
  assert _reproducible(_rows(copy / "results.csv")) == results
  assert result["done"] == 2 and result["failed"] == 1 and result["plots"]


def _children(pid):
  try:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
      kids = [int(p) for p in f.read().split()]
  except FileNotFoundError:
    return []
  return kids + [g for k in kids for g in _children(k)]


@pytest.mark.integration
@pytest.mark.slow
def test_kill_9_mid_sweep_then_rerun_equals_an_uninterrupted_sweep(local_sweep, tmp_path):
  sweep_dir = tmp_path / "sweep"
  process = _sweep(local_sweep["file"], sweep_dir, "--max_parallel=1", wait=False)
  second = sweep_dir / GOOD_POINTS[1]
  deadline = time.time() + 240
  # One point at a time: kill once the first is done and the second has saved a step.
  while time.time() < deadline:
    first_done = points_lib.is_done(str(sweep_dir / GOOD_POINTS[0]))
    saved = (second / "checkpoints").is_dir() and any(
      name.isdigit() for name in os.listdir(second / "checkpoints")
    )
    if first_done and saved:
      break
    assert process.poll() is None, process.communicate()
    time.sleep(0.05)
  else:
    pytest.fail("the second point saved no checkpoint in time")
  victims = [process.pid] + _children(process.pid)
  for pid in victims:
    os.kill(pid, signal.SIGKILL)
  process.wait()
  assert not points_lib.is_done(str(second))
  first = _mtimes(sweep_dir / GOOD_POINTS[0])

  code, out, err = _sweep(local_sweep["file"], sweep_dir, "--max_parallel=1")
  assert code == 1, err[-2000:]
  assert "3 points" in out and "1 done already, 2 to run" in out
  # The point done before the kill prices the rest from the rerun's first line on.
  assert "; ETA " in next(line for line in out.splitlines() if " | started " in line), out
  assert _mtimes(sweep_dir / GOOD_POINTS[0]) == first  # the finished point is not rerun
  assert "resuming from step" in (second / "train.log").read_text()
  assert _reproducible(_rows(sweep_dir / "results.csv")) == _reproducible(
    _rows(os.path.join(local_sweep["dir"], "results.csv"))
  )


@pytest.mark.integration
@pytest.mark.slow
def test_ray_executor_gives_the_local_executors_results(local_sweep, tmp_path):
  ray = shutil.which("ray", path=os.path.dirname(sys.executable))
  assert ray, "ray is a test dependency (setup.py)"
  temp = f"/tmp/ray_{os.getpid()}"  # Ray's socket paths must stay short
  env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
  subprocess.run(
    [
      ray,
      "start",
      "--head",
      "--num-cpus=2",
      f"--temp-dir={temp}",
      "--include-dashboard=false",
      "--disable-usage-stats",
    ],
    check=True,
    capture_output=True,
    env=env,
    timeout=120,
  )
  try:
    code, out, err = _sweep(
      local_sweep["file"],
      tmp_path / "sweep",
      "--executor=ray",
      env={"RAY_ADDRESS": "auto", "RAY_USAGE_STATS_ENABLED": "0"},
    )
  finally:
    subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120)
    shutil.rmtree(temp, ignore_errors=True)
  assert code == 1, err[-2000:]
  assert "(ray)" in out
  assert _reproducible(_rows(tmp_path / "sweep" / "results.csv")) == _reproducible(
    _rows(os.path.join(local_sweep["dir"], "results.csv"))
  )


# A bad sweep file: one line, before anything runs.
BAD_FILES = {
  "unknown macro": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGHT': [1, 2]}\n",
    "point PROMPT_LENGHT=1: the gin config sets PROMPT_LENGHT (did you mean "
    "PROMPT_LENGTH?), which nothing in this run reads",
  ),
  "unknown gin file": (
    BASE + "sweep.Sweep.axes = {'init': {'a': 'configs/prompts/nope.gin'}}\n",
    "point init=a: gin file 'configs/prompts/nope.gin' not found",
  ),
  "empty axis": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGTH': []}\n",
    "axis PROMPT_LENGTH is empty; give it at least one value",
  ),
  "empty alternatives": (
    BASE + "sweep.Sweep.axes = {'init': {}}\n",
    "axis init is empty; give it at least one alternative",
  ),
  "same name twice": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGTH': [2, '2']}\n",
    "two points are named PROMPT_LENGTH=2",
  ),
  "zip of unequal lengths": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1, 2], 'LEARNING_RATE': [0.1]}\n"
    "sweep.Sweep.zip = [('PROMPT_LENGTH', 'LEARNING_RATE')]\n",
    "zip of unequal lengths: PROMPT_LENGTH has 2, LEARNING_RATE has 1",
  ),
  "zip of an unknown axis": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1, 2]}\n"
    "sweep.Sweep.zip = [('PROMPT_LENGTH', 'size')]\n",
    "zip names 'size', which is not an axis (PROMPT_LENGTH)",
  ),
  "MODEL_DIR set": (
    BASE + "sweep.Sweep.axes = {'MODEL_DIR': ['/tmp/a']}\n",
    "axis MODEL_DIR: the sweep sets MODEL_DIR",
  ),
  "unknown Sweep setting": (
    BASE + "sweep.Sweep.axis = {'PROMPT_LENGTH': [1]}\n",
    "Configurable 'sweep.Sweep' doesn't have a parameter named 'axis'",
  ),
  "a misspelled reference": (
    BASE.replace("@wordnet.labels()", "@wordnet.lables()")
    + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1]}\n",
    "Couldn't resolve selector wordnet.lables",
  ),
  "a seed axis that is not an axis": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1]}\nsweep.Sweep.seed_axes = ['SEED']\n",
    "seed_axes names 'SEED', which is not an axis (PROMPT_LENGTH)",
  ),
  "an axis named like a column": (
    BASE + "sweep.Sweep.axes = {'status': {'a': 'a.gin'}}\n",
    "axis name 'status' is a column of results.csv",
  ),
  "no axes": (BASE, "the sweep file binds no sweep.Sweep.axes"),
  "an unset macro of the sweep file": (
    "CKPT = %gin.REQUIRED\n"
    + BASE.replace("@wordnet.bundled_checkpoint()", "%CKPT")
    + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1]}\n",
    "the sweep file requires CKPT; set it with --gin.CKPT=...",
  ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_sweep_files_are_one_line_errors(case, tmp_path):
  text, message = BAD_FILES[case]
  with pytest.raises(spec.SweepFileError) as error:
    plan = driver.load(_write(tmp_path, text))
    driver.check_points(plan)
  assert message in str(error.value)
  assert "\n" not in str(error.value)
  assert not (tmp_path / "sweep").exists()


def test_a_typo_in_a_sweep_macro_override_is_an_error(tmp_path):
  sweep_file = _write(
    tmp_path,
    "CKPT = 'a'\n"
    + BASE.replace("@wordnet.bundled_checkpoint()", "%CKPT")
    + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1]}\n",
  )
  assert driver.load(sweep_file, ["CKPT = 'b'"]).bindings[0] == ("INITIAL_CHECKPOINT_PATH", "'b'")
  with pytest.raises(spec.SweepFileError, match="sets CKTP, which nothing in this run reads"):
    driver.load(sweep_file, ["CKTP = 'b'"])


@pytest.mark.integration
def test_cli_bad_file_and_dry_run(tmp_path):
  bad = _write(tmp_path, BAD_FILES["unknown macro"][0], "bad.gin")
  code, out, err = _sweep(bad, tmp_path / "sweep")
  assert code == 1 and err.strip().splitlines()[-1].startswith(
    "error: point PROMPT_LENGHT=1: the gin config sets PROMPT_LENGHT"
  )
  assert not (tmp_path / "sweep").exists()
  good = _write(tmp_path, BASE + LEARNING_RATES)
  code, out, err = _sweep(good, tmp_path / "sweep", "--dry_run")
  assert code == 0, err
  lines = out.strip().splitlines()
  assert lines[0] == "sweep sweep: 3 points (dry run: nothing runs)"
  assert [line for line in lines[1:-1] if not line.startswith(" ")] == [*GOOD_POINTS, BAD_POINT]
  assert lines[-1] == (
    f"sweep sweep: 3 points: 0 done in {tmp_path / 'sweep'}, 0 to copy, "
    "3 to run (dry run: nothing ran)"
  )
  assert "PROMPT_TUNING_CPU_CORES=1" in lines[2] and "--gin.LEARNING_RATE=0.3" in lines[2]
  assert not (tmp_path / "sweep").exists()
  # --only: a slice of the grid, its points named and run as in the whole sweep.
  code, out, err = _sweep(good, tmp_path / "sweep", "--dry_run", "--only=LEARNING_RATE=1.0")
  assert code == 0, err
  sliced = out.strip().splitlines()
  assert sliced[0] == "sweep sweep: 1 points (dry run: nothing runs)"
  assert sliced[1:-1] == lines[3:5]
  code, out, err = _sweep(good, tmp_path / "sweep", "--only=LEARNING_RATE=2.0")
  assert code == 1 and err.strip().splitlines()[-1] == (
    "error: --only='LEARNING_RATE=2.0': LEARNING_RATE has no value '2.0' (0.3, 1.0, -1.0)"
  )
  assert not (tmp_path / "sweep").exists()


def test_only_selects_points_by_axis_labels_keeping_names_and_indices(tmp_path):
  plan = driver.load(
    _write(
      tmp_path,
      BASE
      + textwrap.dedent("""\
      sweep.Sweep.axes = {'size': {'small': 'a.gin', 'big': 'b.gin'},
                          'task': {'x': {'MIXTURE_OR_TASK_NAME': 'x'},
                                   'y': {'MIXTURE_OR_TASK_NAME': 'y'}},
                          'RANDOM_SEED': [0, 1, 2]}
      """),
    )
  )
  sliced = spec.select(plan, ["task=y", "RANDOM_SEED=0,2"])
  assert [(p.index, p.name) for p in sliced.points] == [
    (p.index, p.name)
    for p in plan.points
    if p.axis_values()["task"] == "y" and p.axis_values()["RANDOM_SEED"] in (0, 2)
  ]
  assert len(sliced.points) == 4
  assert spec.select(plan, []).points == plan.points
  # In a directory the whole sweep ran in, a slice keeps the other points in the report.
  sweep_dir = str(tmp_path / "sweep")
  points_lib.prepare(plan, sweep_dir, REPO)
  assert driver.listed_points(plan, sliced, sweep_dir) == [p.name for p in plan.points]
  fresh = str(tmp_path / "fresh")
  assert driver.listed_points(plan, sliced, fresh) == [p.name for p in sliced.points]
  points_lib.prepare(sliced, fresh, REPO, driver.listed_points(plan, sliced, fresh))
  other = spec.select(plan, ["task=x", "RANDOM_SEED=1"])
  assert driver.listed_points(plan, other, fresh) == [
    p.name for p in plan.points if p in sliced.points or p in other.points
  ]
  for only, message in (
    (["seed=0"], "'seed' is not an axis of the sweep (size, task, RANDOM_SEED)"),
    (["task=z"], "task has no value 'z' (x, y)"),
    (["task"], "write AXIS=LABEL[,LABEL...]"),
  ):
    with pytest.raises(spec.SweepFileError, match=re.escape(message)):
      spec.select(plan, only)
  zipped = driver.load(
    _write(
      tmp_path,
      BASE
      + textwrap.dedent("""\
      sweep.Sweep.axes = {'PROMPT_LENGTH': [1, 2], 'LEARNING_RATE': [0.1, 0.2]}
      sweep.Sweep.zip = [('PROMPT_LENGTH', 'LEARNING_RATE')]
      """),
      "zipped.gin",
    )
  )
  with pytest.raises(spec.SweepFileError, match="no point of the sweep has all these labels"):
    spec.select(zipped, ["PROMPT_LENGTH=1", "LEARNING_RATE=0.2"])


def test_axes_combine_as_a_product_in_order_and_zip_pairs_them(tmp_path):
  plan = driver.load(
    _write(
      tmp_path,
      BASE
      + textwrap.dedent("""\
      sweep.Sweep.axes = {
          'size': {'small': 'a.gin', 'big': ['b.gin', 'c.gin']},
          'PROMPT_LENGTH': [1, 20],
          'LEARNING_RATE': [0.3, 0.1],
          'init': {'labels': {'gin_files': ['d.gin'], 'CLASS_LABELS': @wordnet.labels()},
                   'random': {'RANDOM_UNIFORM_SCALE': 0.5}},
      }
      sweep.Sweep.zip = [('size', 'LEARNING_RATE')]
      """),
    )
  )
  names = [p.name for p in plan.points]
  assert names == [
    f"size={s},PROMPT_LENGTH={n},LEARNING_RATE={r},init={i}"
    for s, r in (("small", "0.3"), ("big", "0.1"))
    for n in (1, 20)
    for i in ("labels", "random")
  ]
  point = plan.points[4]  # big, 1, labels
  assert plan.gin_files_of(point)[-3:] == ["b.gin", "c.gin", "d.gin"]
  bound = plan.bindings_of(point)  # the axes' values replace the base's, each key once
  assert len(bound) == len(dict(bound))
  assert {
    k: v
    for k, v in bound
    if k in ("PROMPT_LENGTH", "LEARNING_RATE", "CLASS_LABELS", "RANDOM_UNIFORM_SCALE")
  } == {
    "PROMPT_LENGTH": "1",
    "LEARNING_RATE": "0.1",
    "CLASS_LABELS": "@prompt_tuning.data.wordnet.labels()",
  }
  assert point.axis_values() == {
    "size": "big",
    "PROMPT_LENGTH": 1,
    "LEARNING_RATE": 0.1,
    "init": "labels",
  }


def _fake_point(
  sweep_dir, name, axes, evals, status="done", params=(1000, 10), task="t", tests=None
):
  model_dir = os.path.join(sweep_dir, name)
  os.makedirs(model_dir)
  points_lib.write_json(
    os.path.join(model_dir, points_lib.POINT_FILE),
    {
      "sweep": "fake",
      "name": name,
      "index": len(os.listdir(sweep_dir)),
      "axes": [[a, str(v), v] for a, v in axes],
      "seed_axes": ["RANDOM_SEED"],
      "metric": None,
      "metric_mode": "max",
    },
  )
  points_lib.write_json(
    os.path.join(model_dir, points_lib.STATUS_FILE), {"status": status, "wall_s": 1.0}
  )
  with open(os.path.join(model_dir, "metrics.jsonl"), "w") as f:
    f.write(
      json.dumps(
        {
          "event": "start",
          "step": 0,
          "parameters_total": sum(params),
          "parameters_model": params[0],
          "parameters_trainable": params[1],
          "train_steps": 30,
        }
      )
      + "\n"
    )
    for i, (step, value) in enumerate(evals):
      f.write(json.dumps({"step": step, "train/loss": 1.0 / step}) + "\n")
      test = {} if tests is None else {f"eval/{task}/test/accuracy": tests[i]}
      f.write(
        json.dumps({"step": step, f"eval/{task}/accuracy": value, "eval/loss": 2.0, **test}) + "\n"
      )
    f.write('{"step": 30, "eval/t/acc')  # a line cut by a kill is skipped


def test_report_picks_the_best_step_and_averages_over_seeds(tmp_path):
  sweep_dir = str(tmp_path)
  runs = {  # (PROMPT_LENGTH, seed) -> evaluations
    (1, 0): [(10, 50.0), (20, 60.0), (30, 55.0)],
    (1, 1): [(10, 70.0), (20, 65.0), (30, 70.0)],  # a tie: the earlier step
    (5, 0): [(10, 80.0), (20, 81.0), (30, 90.0)],
    (5, 1): [(10, 85.0), (20, 86.0), (30, 84.0)],
  }
  for (length, seed), evals in runs.items():
    _fake_point(
      sweep_dir,
      f"PROMPT_LENGTH={length},RANDOM_SEED={seed}",
      [("PROMPT_LENGTH", length), ("RANDOM_SEED", seed)],
      evals,
    )
  _fake_point(
    sweep_dir,
    "PROMPT_LENGTH=9,RANDOM_SEED=0",
    [("PROMPT_LENGTH", 9), ("RANDOM_SEED", 0)],
    [],
    status="failed",
  )
  result = report_lib.report(sweep_dir)
  rows = _rows(result["results"])
  best = {
    "PROMPT_LENGTH=1,RANDOM_SEED=0": (20, 60.0),
    "PROMPT_LENGTH=1,RANDOM_SEED=1": (10, 70.0),
    "PROMPT_LENGTH=5,RANDOM_SEED=0": (30, 90.0),
    "PROMPT_LENGTH=5,RANDOM_SEED=1": (20, 86.0),
  }
  for name, (step, value) in best.items():
    assert (int(rows[name]["best_step"]), float(rows[name]["best"])) == (step, value)
    assert float(rows[name]["eval/loss@best"]) == 2.0
  summary = open(result["summary"]).read()
  for length, seeds in ((1, (60.0, 70.0)), (5, (90.0, 86.0))):
    mean, std = statistics.mean(seeds), statistics.stdev(seeds)
    assert f"| {length} | 2/2 | 1,000 | {mean:.2f} ± {std:.2f} |" in summary, summary
  assert "| 9 | 0/1 |" in summary and "`PROMPT_LENGTH=9,RANDOM_SEED=0`: failed" in summary
  assert [os.path.basename(p) for p in result["plots"]] == ["eval_t_accuracy_vs_PROMPT_LENGTH.png"]
  # 'min' mode picks the lowest.
  record_path = os.path.join(sweep_dir, "PROMPT_LENGTH=5,RANDOM_SEED=0", "point.json")
  record = json.load(open(record_path))
  record["metric_mode"] = "min"
  points_lib.write_json(record_path, record)
  row = report_lib.point_row(os.path.dirname(record_path))
  assert (row["best_step"], row["best"]) == (10, 80.0)


def test_report_averages_over_tasks_per_seed_then_over_seeds(tmp_path):
  """`average_axes`: the paper's SuperGLUE score, a mean over tasks, per seed."""
  sweep_dir = str(tmp_path)
  best = {("a", 0): 60.0, ("b", 0): 80.0, ("a", 1): 70.0, ("b", 1): 75.0, ("a", 2): 90.0}
  for (task, seed), value in best.items():
    _fake_point(
      sweep_dir,
      f"task={task},RANDOM_SEED={seed}",
      [("task", task), ("RANDOM_SEED", seed)],
      [(10, value - 1), (20, value)],
    )
  _fake_point(
    sweep_dir, "task=b,RANDOM_SEED=2", [("task", "b"), ("RANDOM_SEED", 2)], [], status="failed"
  )
  meta = {
    "name": "fake",
    "axes": ["task", "RANDOM_SEED"],
    "seed_axes": ["RANDOM_SEED"],
    "average_axes": ["task"],
  }
  _, rows = report_lib.collect(sweep_dir)
  (setting,) = report_lib.settings(meta, rows)[1]
  per_seed = [statistics.mean([60.0, 80.0]), statistics.mean([70.0, 75.0])]  # seed 2: incomplete
  assert setting.values("best") == per_seed and setting.total == 3
  summary = report_lib.summary_markdown(meta, rows)
  assert (
    f"| 2/3 | 1,000 | {statistics.mean(per_seed):.2f} ± {statistics.stdev(per_seed):.2f} | 20 ± 0 |"
  ) in summary, summary
  assert "the mean over task of" in summary


def test_report_gives_the_test_split_at_the_step_validation_picks(tmp_path):
  """TEST_SPLIT: tables and plots report the test split at the best validation step."""
  sweep_dir = str(tmp_path)
  runs = {  # (size, task, seed) -> [(step, validation, test)]
    ("s", "a", 0): [(10, 50.0, 40.0), (20, 60.0, 45.0), (30, 55.0, 70.0)],
    ("s", "b", 0): [(10, 80.0, 81.0), (20, 70.0, 90.0)],
    ("s", "a", 1): [(10, 65.0, 61.0), (20, 65.0, 62.0)],  # a tie: the earlier step
    ("s", "b", 1): [(10, 70.0, 72.0), (20, 75.0, 74.0)],
    ("l", "a", 0): [(10, 90.0, 88.0)],
    ("l", "b", 0): [(10, 91.0, 87.0)],
  }
  for (size, task, seed), evals in runs.items():
    _fake_point(
      sweep_dir,
      f"size={size},task={task},RANDOM_SEED={seed}",
      [("size", size), ("task", task), ("RANDOM_SEED", seed)],
      [(step, v) for step, v, _ in evals],
      task=f"wordnet_{task}",
      tests=[t for _, _, t in evals],
      params=(1000 if size == "s" else 8000, 10),
    )
  meta = {
    "name": "fake",
    "axes": ["size", "task", "RANDOM_SEED"],
    "seed_axes": ["RANDOM_SEED"],
    "average_axes": ["task"],
  }
  points_lib.write_json(os.path.join(sweep_dir, points_lib.SWEEP_FILE), meta)
  result = report_lib.report(sweep_dir)
  rows = _rows(result["results"])
  expected = {
    ("s", "a", 0): 45.0,
    ("s", "b", 0): 81.0,
    ("s", "a", 1): 61.0,
    ("s", "b", 1): 74.0,
    ("l", "a", 0): 88.0,
    ("l", "b", 0): 87.0,
  }
  for (size, task, seed), test in expected.items():
    assert float(rows[f"size={size},task={task},RANDOM_SEED={seed}"]["test"]) == test
  per_seed = [statistics.mean([45.0, 81.0]), statistics.mean([61.0, 74.0])]
  summary = open(result["summary"]).read()
  assert "`eval/<task>/accuracy`" in summary and "`eval/<task>/test/accuracy`" in summary
  assert (
    summary.rstrip()
    .splitlines()[-2]
    .endswith(f"| {statistics.mean(per_seed):.2f} ± {statistics.stdev(per_seed):.2f} |")
  ), summary
  assert summary.rstrip().splitlines()[-1].endswith(f"| {statistics.mean([88.0, 87.0]):.2f} |")
  assert [os.path.basename(p) for p in result["plots"]] == [
    "eval__task__test_accuracy_vs_parameters.png"
  ]


def test_a_plot_title_fits_its_figure():
  """A long sweep name, an averaged axis and a test metric: the title wraps inside the figure
  (it ran off both sides of a one-panel plot)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  meta = {
    "name": "wordnet_scaling_figure3b_with_a_longer_name",
    "seed_axes": ["RANDOM_SEED"],
    "average_axes": ["task"],
  }
  for panels in (1, 3):
    title = report_lib.plot_title(
      meta, "eval/<task>/test/accuracy", "test", report_lib.PARAMETERS, panels
    )
    assert " ".join(title.split()) == (
      "sweep wordnet_scaling_figure3b_with_a_longer_name: mean over task of "
      "eval/<task>/test/accuracy at the best step on validation vs model parameters "
      "(mean ± std over RANDOM_SEED)"
    )
    figure, _ = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    text = figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.canvas.draw()
    box, page = text.get_window_extent(), figure.bbox
    plt.close(figure)
    assert page.x0 <= box.x0 and box.x1 <= page.x1, (panels, box, page)


@pytest.mark.parametrize(
  "x,values",
  [
    (report_lib.PARAMETERS, [230_816, 600_048, 1_845_568, 6_050_304]),  # the WordNet family
    (report_lib.PARAMETERS, [77e6, 248e6, 783e6, 2.85e9, 11.1e9]),  # T5.1.1 Small to XXL
    ("PROMPT_LENGTH", [1, 5, 20, 100, 150]),
  ],
)
def test_a_plots_x_labels_are_its_values_and_do_not_overlap(x, values):
  """The x axis of a scaling plot: log-scale, labelled at the points (231K ... 6.05M) and
  nowhere else (matplotlib's minor labels between close sizes ran into each other)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  figure, ax = plt.subplots(figsize=(5.5, 4))
  ax.plot(values, range(len(values)), marker="o")
  report_lib.x_ticks(ax, x, values)
  figure.tight_layout()
  figure.canvas.draw()
  labels = [
    t
    for t in ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True)
    if t.get_visible()
    and t.get_text()
    and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]
  ]
  boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: b.x0)
  plt.close(figure)
  assert ax.get_xscale() == "log"
  assert [t.get_text() for t in sorted(labels, key=lambda t: t.get_position()[0])] == (
    ["231K", "600K", "1.85M", "6.05M"]
    if values[0] == 230_816
    else ["77M", "248M", "783M", "2.85B", "11.1B"]
    if x == report_lib.PARAMETERS
    else ["1", "5", "20", "100", "150"]
  )
  assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), boxes


def test_parameter_counts_read_as_the_paper_writes_sizes():
  assert [
    report_lib.count_label(n) for n in (950, 230_816, 999_500, 1_845_568, 77e6, 11.1e9, 2e12)
  ] == ["950", "231K", "1M", "1.85M", "77M", "11.1B", "2000B"]


def test_where_binds_by_several_axes_and_files_after_axes_come_last(tmp_path):
  plan = driver.load(
    _write(
      tmp_path,
      BASE
      + textwrap.dedent("""\
      sweep.Sweep.gin_files_after_axes = ['z.gin']
      sweep.Sweep.axes = {'size': {'small': 'a.gin', 'big': 'b.gin'},
                          'objective': {'sc': {}, 'lm': {}}}
      sweep.Sweep.where = [({'size': 'big', 'objective': 'lm'}, {'TRAIN_STEPS': 7})]
      """),
    )
  )
  by_name = {p.name: p for p in plan.points}
  assert plan.gin_files_of(by_name["size=big,objective=lm"])[-2:] == ["b.gin", "z.gin"]
  # The base's TRAIN_STEPS, replaced in place: each key is bound once, to its last value.
  keys = [k for k, _ in plan.bindings_of(by_name["size=big,objective=lm"])]
  assert keys == [k for k, _ in plan.bindings_of(by_name["size=big,objective=sc"])]
  assert keys.count("TRAIN_STEPS") == 1
  assert dict(plan.bindings_of(by_name["size=big,objective=lm"]))["TRAIN_STEPS"] == "7"
  assert dict(plan.bindings_of(by_name["size=big,objective=sc"]))["TRAIN_STEPS"] != "7"
  with pytest.raises(spec.SweepFileError, match="where: size=huge is not an axis value"):
    driver.load(
      _write(
        tmp_path,
        BASE
        + textwrap.dedent("""\
        sweep.Sweep.axes = {'size': {'small': 'a.gin'}}
        sweep.Sweep.where = [({'size': 'huge'}, {'TRAIN_STEPS': 7})]
        """),
      )
    )


INCLUDES = ("paper_superglue.gin", "wordnet_scaling.gin")  # shared settings, not sweeps
SHIPPED = sorted(
  p
  for p in os.listdir(os.path.join(REPO, "configs", "sweeps"))
  if p.endswith(".gin") and p not in INCLUDES
)


def _labels(plan, axis):
  return list(dict.fromkeys(c.label for p in plan.points for c in p.choices if c.axis == axis))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sweep_files_parse_into_valid_runs(name, tmp_path):
  """Every point of every shipped sweep is a config `python -m prompt_tuning.train` accepts."""
  plan = driver.load(os.path.join(REPO, "configs", "sweeps", name))
  driver.check_points(plan)
  assert plan.seed_axes == ("RANDOM_SEED",)
  if name.startswith("paper_"):
    assert plan.average_axes == ("task",) and len(_labels(plan, "task")) == 8
    assert len(_labels(plan, "RANDOM_SEED")) == 3
  if name.startswith("wordnet_scaling_"):  # the miniature study (issue: the paper's grids)
    assert plan.average_axes == ("task",)
    assert _labels(plan, "task") == ["supersense", "hypernym"]
    assert _labels(plan, "size") == ["xs", "s", "m", "l"]
    assert len(_labels(plan, "RANDOM_SEED")) >= (3 if "figure1" in name else 2)
    # Every point decodes the test split, and supersense's its out-of-domain split too.
    for p in plan.points:
      split = "['test', 'ood']" if "task=supersense" in p.name else "['test']"
      assert f"--gin.TEST_SPLIT={split}" in points_lib.train_argv(plan, p, "/d"), p.name
  # What each point trains is what its labels say: model tuning has no prompt (a model
  # file read after configs/runs/model_finetune.gin would bring its prompt back).
  for point in plan.points if name.startswith("wordnet_") else ():
    gin.clear_config()
    gin_config.parse_gin(
      plan.gin_files_of(point),
      [f"{k} = {v}" for k, v in plan.bindings_of(point)] + ["MODEL_DIR = '/unused'"],
    )
    model = gin_config.build_model()
    if "configs/runs/model_finetune.gin" in plan.gin_files_of(point):
      assert model.prompt is None, point.name
      assert gin.query_parameter("%WHAT_TRAINS") == "all"
    else:
      assert model.prompt.length == gin.query_parameter("%PROMPT_LENGTH"), point.name
      assert gin.query_parameter("%WHAT_TRAINS") == "prompt"
    if name.startswith("wordnet_scaling_"):  # the family was pretrained without dropout:
      # a frozen model gets none, model tuning T5's 0.1 (wordnet_scaling.gin)
      assert model.config.dropout_rate == (0.1 if model.prompt is None else 0.0), point.name
    gin.clear_config()
  swept = {
    "wordnet_scaling_figure1.gin": ("method", ["prompt_tuning", "model_tuning"]),
    "wordnet_scaling_figure3a.gin": ("PROMPT_LENGTH", ["1", "5", "20", "100", "150"]),
    "wordnet_scaling_figure3b.gin": ("init", ["random_uniform", "sampled_vocab", "class_labels"]),
    "wordnet_scaling_figure3c.gin": ("PRETRAINING", ["span_corruption", "lm_adapted"]),
    "wordnet_scaling_table3.gin": ("RANDOM_SEED", ["0", "1", "2", "3", "4"]),
  }
  if name in swept:
    assert _labels(plan, swept[name][0]) == swept[name][1]


def test_table3s_seeds_0_to_2_are_figure1s_prompt_tuning_points():
  """`--reuse_from=build/scaling/figure1` copies them: the same names and configs."""

  def digests(name, only=()):
    plan = spec.select(driver.load(os.path.join(REPO, "configs", "sweeps", name)), only)
    return {p: driver.config_digest(text) for p, text in driver.check_points(plan).items()}

  figure1 = digests("wordnet_scaling_figure1.gin", ["method=prompt_tuning"])
  table3 = digests("wordnet_scaling_table3.gin")
  shared = {p: d for p, d in table3.items() if p.endswith(("SEED=0", "SEED=1", "SEED=2"))}
  assert shared == figure1 and len(figure1) == 4 * 2 * 3  # Figure 1 keeps its 3 seeds
  new = set(table3.values()) - set(shared.values())
  assert len(new) == 4 * 2 * 2 and not new & set(figure1.values())


def test_the_eta_prices_each_point_left_from_the_done_points(tmp_path):
  """In a scaling sweep a large point costs many times a small one: the ETA must not price
  the large points left at the mean of the small ones done first."""
  small, large = (
    frozenset({("size", "s"), ("task", "a")}),
    frozenset({("size", "l"), ("task", "a")}),
  )
  out = io.StringIO()
  progress = driver.Progress(
    total=5,
    done=2,
    parallel=2,
    out=out,
    kinds={"l1": large, "l2": large, "s1": small},
    history=[(small, 10.0), (large, 100.0)],
  )
  assert progress.eta() == pytest.approx((100 + 100 + 10) / 2)
  os.makedirs(tmp_path / "l1")
  job = executors.Job(
    name="l1",
    argv=("python",),
    env={},
    log_path=str(tmp_path / "l1" / "log"),
    cwd=str(tmp_path),
    resources={},
  )
  # l1 resumes: its cost is all its attempts' (100 s stopped earlier, then 200 s), so the
  # large points cost more than thought: (100 + 300) / 2 each.
  points_lib.write_json(
    str(tmp_path / "l1" / points_lib.STATUS_FILE),
    {"status": points_lib.INTERRUPTED, "wall_s": 100.0, "attempts": 1},
  )
  progress.started(job)
  assert 0 < progress.eta() <= (100 + 100 + 10) / 2
  progress.finished(job, 0, 200.0)
  assert progress.eta() == pytest.approx((200 + 10) / 2)
  assert (
    out.getvalue()
    .splitlines()[-1]
    .startswith("sweep: 3/5 done, 0 running, 0 failed, 2 left; ETA 1m45s | l1 done in 3m20s")
  )
  # A point unlike any done one costs a factor per label fitted to the done ones: here
  # size l costs 5 times size s, length 100 four times length 1, so l at 100 costs 200.
  s1, s100, l1, l100 = (
    frozenset({("size", size), ("length", length)})
    for size, length in (("s", "1"), ("s", "100"), ("l", "1"), ("l", "100"))
  )
  fitted = driver.Progress(
    2, 1, 1, io.StringIO(), kinds={"x": l100}, history=[(s1, 10.0), (s100, 40.0), (l1, 50.0)]
  )
  assert fitted.eta() == pytest.approx(200, rel=0.02)
  # Nothing done yet: no ETA; points of no known kind count as the mean point.
  assert driver.Progress(3, 0, 1, io.StringIO()).eta() is None
  assert driver.Progress(
    3, 1, 1, io.StringIO(), history=[(small, 10.0), (large, 30.0)]
  ).eta() == pytest.approx(2 * 20)


def test_an_edited_sweep_is_refused_in_the_old_directory_and_reports_only_its_points(tmp_path):
  sweep_dir = str(tmp_path / "sweep")
  plan = driver.load(_write(tmp_path, BASE + LEARNING_RATES))
  points_lib.prepare(plan, sweep_dir, REPO)
  # Another metric: the same commands, so the points' records follow the sweep file.
  relabelled = driver.load(
    _write(tmp_path, BASE + LEARNING_RATES + "sweep.Sweep.metric = 'eval/loss'\n")
  )
  points_lib.prepare(relabelled, sweep_dir, REPO)
  record = json.load(open(os.path.join(sweep_dir, GOOD_POINTS[0], "point.json")))
  assert record["metric"] == "eval/loss"
  # Other commands (or other cores per point) in the same directory would mix two sweeps.
  for text in (
    BASE.replace("'TRAIN_STEPS': 20", "'TRAIN_STEPS': 21") + LEARNING_RATES,
    BASE + LEARNING_RATES + "sweep.Sweep.resources = {'CPU': 2}\n",
  ):
    changed = driver.load(_write(tmp_path, text))
    with pytest.raises(spec.SweepFileError, match="was made by a different command"):
      points_lib.prepare(changed, sweep_dir, REPO)
  # The same command reading an edited gin file: another config.
  points_lib.prepare(plan, sweep_dir, REPO, digests={n: "a" * 64 for n in GOOD_POINTS})
  points_lib.prepare(plan, sweep_dir, REPO)  # a digest recorded stays
  with pytest.raises(spec.SweepFileError, match="was made by a different config"):
    points_lib.prepare(plan, sweep_dir, REPO, digests={n: "b" * 64 for n in GOOD_POINTS})
  # A point that the sweep no longer has stays on disk but leaves its results.
  _fake_point(sweep_dir, "LEARNING_RATE=9.0", [("LEARNING_RATE", 9.0)], [(10, 1.0)])
  _fake_point(sweep_dir, GOOD_POINTS[1] + "_done", [("LEARNING_RATE", 1.0)], [(10, 1.0)])
  shutil.rmtree(os.path.join(sweep_dir, GOOD_POINTS[1] + "_done"))
  _, rows = report_lib.collect(sweep_dir)
  assert [r["name"] for r in rows] == [*GOOD_POINTS, BAD_POINT]


def test_a_point_is_reused_only_where_its_whole_config_and_environment_are_the_same(tmp_path):
  source_dir = str(tmp_path / "source")
  source = driver.load(_write(tmp_path, BASE + LEARNING_RATES))
  points_lib.prepare(source, source_dir, REPO)
  for name in GOOD_POINTS:  # done; the bad point never ran
    points_lib.write_json(
      os.path.join(source_dir, name, points_lib.STATUS_FILE), {"status": "done", "wall_s": 5.0}
    )
  runs = driver.finished_runs([source_dir])

  def reusable(text, sweep_dir="here", sources=None):
    plan = driver.load(_write(tmp_path, text))
    digests = {n: driver.config_digest(t) for n, t in driver.check_points(plan).items()}
    return driver.reusable_points(plan, digests, str(tmp_path / sweep_dir), sources or runs)

  assert reusable(BASE + LEARNING_RATES) == {n: os.path.join(source_dir, n) for n in GOOD_POINTS}
  # Spelled otherwise, the same runs: a default bound explicitly, the axis's value in the base.
  respelled = (
    BASE.replace(
      "'DROPOUT_RATE': 0.0,", "'DROPOUT_RATE': 0.0, 'LABEL_SMOOTHING': 0.0, 'LEARNING_RATE': 1.0,"
    )
    + "sweep.Sweep.axes = {'PROMPT_LENGTH': [4]}\n"
  )
  assert reusable(respelled) == {"PROMPT_LENGTH=4": os.path.join(source_dir, GOOD_POINTS[1])}
  # Any other setting, or other cores per point, is another run.
  for text in (
    BASE.replace("'TRAIN_STEPS': 20", "'TRAIN_STEPS': 21") + LEARNING_RATES,
    BASE.replace("'PROMPT_LENGTH': 4", "'PROMPT_LENGTH': 5") + LEARNING_RATES,
    BASE.replace("from_class_labels.gin", "from_sampled_vocab.gin").replace(
      "'CLASS_LABELS': @wordnet.labels(),", ""
    )
    + LEARNING_RATES,
    BASE + LEARNING_RATES + "sweep.Sweep.resources = {'CPU': 2}\n",
  ):
    assert reusable(text) == {}
  # A point done here already stays.
  assert reusable(BASE + LEARNING_RATES, "source") == {}
  # The config a point was prepared with is what counts: had a gin file changed since
  # the source ran, its recorded digest differs and it is not the same run.
  digests = {n: driver.config_digest(t) for n, t in driver.check_points(source).items()}
  recorded = str(tmp_path / "recorded")
  points_lib.prepare(source, recorded, REPO, digests=digests)
  for name in GOOD_POINTS:
    points_lib.write_json(
      os.path.join(recorded, name, points_lib.STATUS_FILE), {"status": "done", "wall_s": 5.0}
    )
  assert reusable(BASE + LEARNING_RATES, sources=driver.finished_runs([recorded])) == {
    n: os.path.realpath(os.path.join(recorded, n)) for n in GOOD_POINTS
  }
  record_path = os.path.join(recorded, GOOD_POINTS[0], points_lib.POINT_FILE)
  points_lib.write_json(
    record_path, {**points_lib.read_json(record_path), "config_sha256": "0" * 64}
  )
  assert reusable(BASE + LEARNING_RATES, sources=driver.finished_runs([recorded])) == {
    GOOD_POINTS[1]: os.path.realpath(os.path.join(recorded, GOOD_POINTS[1]))
  }
  with pytest.raises(spec.SweepFileError, match="no sweep points there"):
    driver.finished_runs([str(tmp_path / "nothing")])


def test_a_copy_replaces_an_earlier_attempt_whole_and_only_from_a_done_source(tmp_path):
  source, target = tmp_path / "a" / "p", tmp_path / "b" / "p"
  for d in (source / "checkpoints" / "20", target / "checkpoints" / "999"):
    d.mkdir(parents=True)
  (source / "metrics.jsonl").write_text('{"step": 20}\n')
  (source / "train.log").write_text("the source's log\n")
  (target / "command.sh").write_text("# this sweep's command\n")
  points_lib.write_json(str(target / "status.json"), {"status": "interrupted", "wall_s": 3.0})
  points_lib.write_json(str(source / "status.json"), {"status": "failed", "wall_s": 7.0})
  assert not points_lib.copy_run(str(source), str(target))  # not done: nothing copied
  assert os.listdir(target / "checkpoints") == ["999"]
  points_lib.write_json(str(source / "status.json"), {"status": "done", "wall_s": 7.0})
  assert points_lib.copy_run(str(source), str(target))
  assert os.listdir(target / "checkpoints") == ["20"]  # the earlier attempt's step is gone
  assert (target / "metrics.jsonl").read_text() == '{"step": 20}\n'
  assert (target / "command.sh").read_text() == "# this sweep's command\n"
  assert points_lib.status(str(target)) | {"finished": 0} == {
    "status": "done",
    "returncode": 0,
    "wall_s": 0.0,
    "attempts": 0,
    "finished": 0,
    "reused_from": str(source),
    "source_wall_s": 7.0,
  }
  # For the ETA a copy costs what its source's run took; a point with no record, nothing.
  assert driver.point_cost(points_lib.status(str(target))) == 7.0
  assert driver.point_cost(points_lib.status(str(source))) == 7.0
  assert driver.point_cost({}) == 0.0
  assert sorted(os.listdir(tmp_path / "b")) == sorted(["p", points_lib.COPYING_DIR])
  assert os.listdir(tmp_path / "b" / points_lib.COPYING_DIR) == []


@pytest.mark.integration
@pytest.mark.slow
def test_reuse_from_copies_a_done_point_with_its_numbers_and_runs_the_others(local_sweep, tmp_path):
  respelled = _write(
    tmp_path,
    BASE.replace("'DROPOUT_RATE': 0.0,", "'DROPOUT_RATE': 0.0, 'LABEL_SMOOTHING': 0.0,")
    + LEARNING_RATES,
  )
  sweep_dir = tmp_path / "again"
  code, out, err = _sweep(respelled, sweep_dir, f"--reuse_from={local_sweep['dir']}")
  assert code == 1, err[-2000:]  # the bad point ran again (its source had failed) and failed
  assert f"sweep: 2 points copied from --reuse_from={local_sweep['dir']} (2 done runs" in out
  # The copies' runs price the point left from its start.
  assert "; ETA " in next(line for line in out.splitlines() if " | started " in line), out
  for name in GOOD_POINTS:
    source, copy = os.path.join(local_sweep["dir"], name), os.path.join(sweep_dir, name)
    assert points_lib.status(copy)["reused_from"] == source
    assert (
      open(os.path.join(copy, "metrics.jsonl")).read()
      == open(os.path.join(source, "metrics.jsonl")).read()
    )
    assert "LABEL_SMOOTHING=0.0" in open(os.path.join(copy, "command.sh")).read()
    assert os.listdir(os.path.join(copy, "checkpoints"))
  assert points_lib.status(os.path.join(sweep_dir, BAD_POINT))["status"] == "failed"
  ours, theirs = (
    _reproducible(_rows(os.path.join(d, "results.csv"))) for d in (sweep_dir, local_sweep["dir"])
  )
  assert ours == theirs


def test_points_that_need_accelerators_run_one_at_a_time_locally():
  from prompt_tuning import host  # pylint: disable=g-import-not-at-top

  assert executors.check_parallel(None, {"CPU": 8, "TPU": 4}) == 1
  assert executors.check_parallel(None, {"CPU": 1, "GPU": 1}) == 1
  assert executors.check_parallel(None, {"CPU": 1}) == host.available_cores()
  assert executors.check_parallel(3, {"CPU": 1, "GPU": 1}) == 3
  with pytest.raises(ValueError, match="--max_parallel=0; give a positive number"):
    executors.check_parallel(0, {"CPU": 1})


def test_a_stopped_points_error_is_its_own_line_never_a_librarys_log_line():
  """A point stopped during start-up printed only TensorFlow's CUDA lines: status.json's
  `error` held `E0000 ... failed call to cuInit`."""
  cuda = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796564039.090424   25275 port.cc:153] oneDNN custom operations are on.",
    "E0000 00:00:1796564041.147600   25275 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
  ]
  assert points_lib.error_line(cuda, -15) == (
    "stopped by a signal (exit -15) before it printed anything of its own"
  )
  assert (
    points_lib.error_line(cuda, 1) == "exited with code 1 before it printed anything of its own"
  )
  stamped = "I1206 13:33:57.951579 139794702957440 cli.py:57] the full log: /tmp/x.log"
  assert points_lib.error_line([*cuda, "train: starting", stamped], 1) == "train: starting"
  assert points_lib.error_line([*cuda, "error: MODEL_DIR is a file"], 1) == (
    "error: MODEL_DIR is a file"
  )
  assert points_lib.error_line([]) == ""
