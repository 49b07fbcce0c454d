"""Sweeps run end to end: the local and Ray executors, resume after kill -9, a point's own
command, reuse of done points, and what a stopped point reports.

The end-to-end sweep is three points of the bundled tiny model on the bundled
WordNet task, over LEARNING_RATE (the same shapes, so one compile each):
0.3 and 1.0 train; -1.0 is an invalid value that fails its point alone.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from prompt_tuning.sweep import executors
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import report as report_lib
from tests.sweep.helpers import (
  BASE,
  LEARNING_RATES,
  GOOD_POINTS,
  BAD_POINT,
  write_sweep_file,
  run_sweep,
  csv_rows,
  reproducible,
  mtimes,
)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
  """The three-point sweep run once by the local executor, two points at a time."""
  tmp = tmp_path_factory.mktemp("local")
  sweep_file = write_sweep_file(tmp, BASE + LEARNING_RATES)
  code, out, err = run_sweep(sweep_file, tmp / "sweep", "--max_parallel=2")
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
  rows = csv_rows(results)
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
  results = reproducible(csv_rows(copy / "results.csv"))
  for name in ("summary.md", "results.csv", "sweep.json"):
    (copy / name).unlink()
  shutil.rmtree(copy / "plots")
  result = report_lib.report(str(copy))
  assert (copy / "summary.md").read_text() == summary
  assert reproducible(csv_rows(copy / "results.csv")) == results
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
  # The two points that train (the failing one says nothing about resuming).
  good = f"--only=LEARNING_RATE={','.join(name.split('=')[1] for name in GOOD_POINTS)}"
  process = run_sweep(local_sweep["file"], sweep_dir, "--max_parallel=1", good, wait=False)
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
  first = mtimes(sweep_dir / GOOD_POINTS[0])

  code, out, err = run_sweep(local_sweep["file"], sweep_dir, "--max_parallel=1", good)
  assert code == 0, err[-2000:]
  assert "2 points" in out and "1 done already, 1 to run" in out
  # The point done before the kill prices the rest from the rerun's first line on.
  assert "; ETA " in next(line for line in out.splitlines() if " | started " in line), out
  assert mtimes(sweep_dir / GOOD_POINTS[0]) == first  # the finished point is not rerun
  assert "resuming from step" in (second / "train.log").read_text()
  ours, local = _rows(sweep_dir, local_sweep["dir"], GOOD_POINTS)
  assert ours == local


def _rows(sweep_dir, local_dir, names):
  """`sweep_dir`'s results.csv rows and the local sweep's rows `names`, but for the measured
  columns: equal when the sweep gave the local sweep's results."""
  ours = reproducible(csv_rows(os.path.join(sweep_dir, "results.csv")))
  local = reproducible(csv_rows(os.path.join(local_dir, "results.csv")))
  return ours, {name: local[name] for name in names}


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
    code, out, err = run_sweep(  # one point that trains, one that fails: one round of 2
      local_sweep["file"],
      tmp_path / "sweep",
      "--executor=ray",
      f"--only=LEARNING_RATE={GOOD_POINTS[1].split('=')[1]},{BAD_POINT.split('=')[1]}",
      env={"RAY_ADDRESS": "auto", "RAY_USAGE_STATS_ENABLED": "0"},
    )
  finally:
    subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120)
    shutil.rmtree(temp, ignore_errors=True)
  assert code == 1, err[-2000:]
  assert "(ray)" in out
  ours, local = _rows(tmp_path / "sweep", local_sweep["dir"], [GOOD_POINTS[1], BAD_POINT])
  assert ours == local


@pytest.mark.integration
@pytest.mark.slow
def test_reuse_from_copies_a_done_point_with_its_numbers_and_runs_the_others(local_sweep, tmp_path):
  respelled = write_sweep_file(
    tmp_path,
    BASE.replace("'DROPOUT_RATE': 0.0,", "'DROPOUT_RATE': 0.0, 'LABEL_SMOOTHING': 0.0,")
    + LEARNING_RATES,
  )
  sweep_dir = tmp_path / "again"
  code, out, err = run_sweep(respelled, sweep_dir, f"--reuse_from={local_sweep['dir']}")
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
    reproducible(csv_rows(os.path.join(d, "results.csv"))) for d in (sweep_dir, local_sweep["dir"])
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
