"""Archives of sweeps: portable, compact, read by `report` and `--reuse_from`, merged.

The sweep directories are made by hand: the real sweep's points.json and command.sh
(points_lib.prepare, as the driver writes them), and, for each point, the files a
training run leaves (metrics.jsonl with a resumed segment, config.gin, checkpoints,
events, prompts, best/), written here rather than trained, so the module takes seconds.
"""

import io
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys

import numpy as np
import pytest

from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import storage
from prompt_tuning.sweep import archive as archive_lib
from prompt_tuning.sweep import driver
from prompt_tuning.sweep import migrate
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import provenance
from prompt_tuning.sweep import report as report_lib
from prompt_tuning.sweep import spec
from tests import conftest
from tests.sweep import helpers

REPO = str(conftest.REPO_ROOT)
AXES = "sweep.Sweep.axes = {'LEARNING_RATE': [0.3, 1.0, -1.0], 'RANDOM_SEED': [0, 1]}\n"
COPIED = "LEARNING_RATE=1.0,RANDOM_SEED=1"  # done here as a copy of another sweep's run
UNRECORDED = "LEARNING_RATE=1.0,RANDOM_SEED=0"  # done before sweeps recorded environments
FAILED = "LEARNING_RATE=-1.0,RANDOM_SEED=0"
NOT_STARTED = "LEARNING_RATE=-1.0,RANDOM_SEED=1"
TASK = "wordnet_supersense"
PROMPT = layout.PROMPT_FILE_NAME


def _lines(*records):
  return "".join(json.dumps(r) + "\n" for r in records)


def _fake_run(model_dir, name, tmp_root):
  """What a training run leaves in MODEL_DIR: two segments (killed at step 22, resumed from
  step 20), an evaluation every 10 steps, prompts every 10 steps and the best one."""
  rng = random.Random(name)
  records, time = [], 1.7e9
  segments = ((0, range(1, 23)), (20, range(21, 31)))
  for start, steps in segments:
    records.append(
      {
        "event": "start",
        "step": start,
        "time": time,
        "train_steps": 30,
        "parameters_total": 1512,
        "parameters_model": 1000,
        "parameters_trainable": 512,
      }
    )
    for step in steps:
      time += 1.0
      records.append(
        {
          "step": step,
          "time": time,
          "train/loss": rng.uniform(1, 5),
          "train/tokens_per_second": rng.uniform(100, 5000),
        }
      )
      if step % 10 == 0:
        records.append(
          {
            "step": step,
            "time": time,
            "eval/loss": rng.uniform(1, 5),
            f"eval/{TASK}/accuracy": rng.random(),
            f"eval/{TASK}/test/accuracy": rng.random(),
            f"eval/{TASK}/ood/accuracy": rng.random(),
            f"eval/{TASK}/predictions/most_common_share": rng.random(),
          }
        )
  with open(layout.metrics_file(model_dir), "w") as f:
    f.write(_lines(*records) + '{"step": 31, "eval/wordnet_super')  # cut by a kill
  with open(layout.config_file(model_dir), "w") as f:
    f.write(
      # as gin writes a long value: on an indented line of its own
      f"LEARNING_RATE = 0.3\nMODEL_DIR = \\\n    '{model_dir}'\n"
      f"INITIAL_CHECKPOINT_PATH = '{REPO}/build/checkpoints/tiny'\n"
    )
  for step in (10, 20, 30):
    os.makedirs(layout.numpy_step_dir(model_dir, step))
    np.save(
      os.path.join(layout.numpy_step_dir(model_dir, step), PROMPT),
      np.full((4, 128), step + rng.random(), np.float32),
    )
    os.makedirs(os.path.join(layout.checkpoint_step_dir(model_dir, step), "state"))
    with open(os.path.join(layout.checkpoint_step_dir(model_dir, step), "state", "d"), "wb") as f:
      f.write(os.urandom(4096))
  best = layout.best_dir(model_dir)
  os.makedirs(best)
  points_lib.write_json(
    os.path.join(best, layout.BEST_RECORD),
    {"step": 20, "metric": f"{TASK}/accuracy", "mode": "max", "value": 0.5},
  )
  np.save(os.path.join(best, PROMPT), np.full((4, 128), -1.0, np.float32))
  os.makedirs(layout.inference_eval_dir(model_dir))
  with open(os.path.join(layout.inference_eval_dir(model_dir), f"{TASK}-20.jsonl"), "w") as f:
    f.write('{"prediction": "noun.animal"}\n')
  with open(os.path.join(model_dir, "events.out.tfevents.1.host"), "wb") as f:
    f.write(os.urandom(2048))
  with open(os.path.join(model_dir, points_lib.LOG_FILE), "a") as f:
    f.write(
      f"=== 2026-01-01 on host: {sys.executable} -m prompt_tuning.train\n"
      f"INFO the full log: {tmp_root}/prompt_tuning.train.1.log\n"
    )


def _make_sweep(sweep_dir, plan, whole, digests, tmp_root):
  """A sweep directory of `plan` (a slice of `whole`): done points, a copy, a failed one."""
  points_lib.prepare(
    plan,
    sweep_dir,
    REPO,
    driver.listed_points(whole, plan, sweep_dir),
    {p.name: digests[p.name] for p in plan.points},
  )
  for point in plan.points:
    model_dir = points_lib.point_dir(sweep_dir, point)
    if point.name == FAILED:
      with open(os.path.join(model_dir, points_lib.LOG_FILE), "w") as f:
        f.write(
          f"=== 2026-01-01 on host: {sys.executable} -m prompt_tuning.train\n"
          f'  File "{sys.executable}", line 1\n'
          "error: LEARNING_RATE=-1.0; it must be a positive number (or a schedule)\n"
        )
      points_lib.record_attempt(model_dir, 1, 2.0)
    elif point.name != NOT_STARTED:
      _fake_run(model_dir, point.name, tmp_root)
      points_lib.record_attempt(model_dir, 0, 30.0 + point.index)
  for name, status in (
    (
      UNRECORDED,
      {"status": "done", "returncode": 0, "wall_s": 44.0, "attempts": 1, "finished": 1.7e9},
    ),
    (
      COPIED,
      {
        "status": "done",
        "returncode": 0,
        "wall_s": 0.0,
        "attempts": 0,
        "finished": 1.7e9,
        "reused_from": f"{tmp_root}/elsewhere/other/{COPIED}",
        "source_wall_s": 77.0,
      },
    ),
  ):
    if os.path.isdir(os.path.join(sweep_dir, name)):
      points_lib.write_json(os.path.join(sweep_dir, name, points_lib.STATUS_FILE), status)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
  """The whole sweep, its two seed slices (each in its own directory, as `--only` runs them
  on two machines), and each one archived."""
  tmp = tmp_path_factory.mktemp("archive")
  root = str(tmp_path_factory.getbasetemp())
  sweep_file = helpers.write_sweep_file(tmp, helpers.BASE + AXES)
  whole = driver.load(sweep_file)
  digests = {n: driver.config_digest(t) for n, t in driver.check_points(whole).items()}
  dirs = {"whole": str(tmp / "whole")}
  _make_sweep(dirs["whole"], whole, whole, digests, root)
  for seed in (0, 1):
    sliced = spec.select(whole, [f"RANDOM_SEED={seed}"])
    dirs[seed] = str(tmp / f"seed{seed}")
    _make_sweep(dirs[seed], sliced, whole, digests, root)
    for point in sliced.points:  # the same runs as the whole sweep's (the same bytes)
      shutil.copytree(
        os.path.join(dirs["whole"], point.name),
        os.path.join(dirs[seed], point.name),
        dirs_exist_ok=True,
        ignore=lambda d, names: [
          n for n in names if n in (points_lib.POINT_FILE, points_lib.COMMAND_FILE)
        ],
      )
  archives = {key: str(tmp / f"archive_{key}") for key in dirs}
  for key, sweep_dir in dirs.items():
    archive_lib.archive([sweep_dir], archives[key])
  return {
    "file": sweep_file,
    "plan": whole,
    "dirs": dirs,
    "archives": archives,
    "tmp": tmp,
    "root": root,
  }


def _tree(directory):
  """Every file under `directory`: its bytes and modification time."""
  out = {}
  for folder, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = (f.read(), os.stat(path).st_mtime_ns)
  return out


def _contents(directory):
  return {path: data for path, (data, _) in _tree(directory).items()}


def test_an_archive_holds_no_path_of_the_machine_that_ran_the_sweep(sweeps, tmp_path):
  # The sweep directory moved since it ran (its records name the old place), and an error
  # line that names paths.
  moved = str(tmp_path / "moved")
  shutil.copytree(sweeps["dirs"]["whole"], moved)
  status_path = os.path.join(moved, FAILED, points_lib.STATUS_FILE)
  status = points_lib.read_json(status_path)
  assert sys.executable in status["log_tail"][0]  # the traceback's line
  status["error"] = (
    f"error: {sweeps['dirs']['whole']}/{FAILED}/checkpoints not found ({sys.executable}; {REPO})"
  )
  points_lib.write_json(status_path, status)
  archive_dir = str(tmp_path / "archive")
  archive_lib.archive([moved], archive_dir)
  forbidden = {
    p
    for path in (moved, sweeps["dirs"]["whole"], REPO, sys.executable, sweeps["root"])
    for p in (path, os.path.realpath(path))
  }
  contents = _contents(archive_dir)
  for path, data in contents.items():
    for word in forbidden:
      assert word.encode() not in data, (path, word)
  # What they became: relative to the sweep directory or the repository, or symbolic.
  point = json.loads(contents[os.path.join(COPIED, "point.json")])
  assert point["model_dir"] == COPIED
  assert point["argv"][-1] == f"--gin.MODEL_DIR='build/rerun/sweep/{COPIED}'"
  status = json.loads(contents[os.path.join(COPIED, "status.json")])
  assert status["reused_from"] == f"$ELSEWHERE/other/{COPIED}"
  assert status["source_wall_s"] == 77.0
  failed = json.loads(contents[os.path.join(FAILED, "status.json")])
  assert failed["error"] == f"error: $SWEEP_DIR/{FAILED}/checkpoints not found (python; .)"
  assert "log_tail" not in failed
  config = contents[os.path.join(COPIED, "config.gin")].decode()
  assert f"MODEL_DIR = 'build/rerun/sweep/{COPIED}'\n" in config
  assert migrate.read_bindings(config).values["MODEL_DIR"] == f"build/rerun/sweep/{COPIED}"
  assert "INITIAL_CHECKPOINT_PATH = 'build/checkpoints/tiny'\n" in config


def test_the_rerun_command_trains_the_same_config_from_a_clones_root(sweeps):
  archive_dir = sweeps["archives"]["whole"]
  for name in (COPIED, FAILED):
    record = points_lib.read_json(os.path.join(archive_dir, name, points_lib.POINT_FILE))
    rerun = points_lib.read_json(os.path.join(archive_dir, name, "provenance.json"))["rerun"]
    words = shlex.split(rerun)
    assert words[:5] == [
      "PROMPT_TUNING_CPU_CORES=1",
      "XLA_FLAGS=",
      "python",
      "-m",
      "prompt_tuning.train",
    ], rerun
    files, bindings = points_lib.config_of_argv(words[3:])
    assert all(not os.path.isabs(f) and os.path.isfile(os.path.join(REPO, f)) for f in files)
    assert driver.config_digest(driver.config_text(files, bindings)) == record["config_sha256"]
    assert words[-1] == f"--gin.MODEL_DIR='build/rerun/sweep/{name}'"


def test_an_archive_is_compact_and_keeps_the_prompts_and_the_evaluations(sweeps):
  archive_dir, live = sweeps["archives"]["whole"], sweeps["dirs"]["whole"]
  contents = _contents(archive_dir)
  point_files = [
    "point.json",
    "status.json",
    "metrics.jsonl",
    "config.gin",
    "provenance.json",
    "best/best.json",
    f"best/{PROMPT}",
    f"numpy_checkpoints/checkpoint_30/{PROMPT}",
  ]
  assert sorted(contents) == sorted(
    ["archive.json", "sweep.json"]
    + [
      os.path.join(p.name, f)
      for p in sweeps["plan"].points
      if p.name != NOT_STARTED
      for f in (point_files if p.name != FAILED else point_files[:2] + point_files[4:5])
    ]
    + [os.path.join(NOT_STARTED, f) for f in ("point.json", "provenance.json")]
  )
  for name in (COPIED, UNRECORDED):  # the prompts as they were, bytes for bytes
    for relative in (f"best/{PROMPT}", f"numpy_checkpoints/checkpoint_30/{PROMPT}"):
      with open(os.path.join(live, name, relative), "rb") as f:
        assert contents[os.path.join(name, relative)] == f.read()
    lines = [
      json.loads(line)
      for line in open(os.path.join(live, name, "metrics.jsonl"))
      if line.endswith("}\n")
    ]
    kept = [
      json.loads(line)
      for line in contents[os.path.join(name, "metrics.jsonl")].decode().splitlines()
    ]
    training = [i for i, r in enumerate(lines) if "train/loss" in r]
    last = max(training, key=lambda i: (lines[i]["step"], i))
    # Every start and evaluation line, the last training line, then what the others gave.
    assert kept[:-1] == [
      r
      for i, r in enumerate(lines)
      if "event" in r or i == last or any(k.startswith("eval/") for k in r)
    ]
    speeds = {lines[i]["step"]: lines[i]["train/tokens_per_second"] for i in training}
    assert kept[-1] == {
      "event": "thinned",
      "left_out": len(training) - 1,
      "tokens_per_s": statistics.median(speeds.values()),
    }
    (last_kept,) = [r for r in kept if "train/loss" in r]  # its speed is not the median's
    assert last_kept["train/tokens_per_second"] != kept[-1]["tokens_per_s"]
  # What each point ran on: as the sweep recorded it when the point ended, else (and it
  # says so) the archiving machine's.
  head = subprocess.run(
    ["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
  ).stdout.strip()
  for name, source in (
    ("LEARNING_RATE=0.3,RANDOM_SEED=0", archive_lib.RECORDED),
    (UNRECORDED, archive_lib.NOT_RECORDED),
  ):
    record = json.loads(contents[os.path.join(name, "provenance.json")])
    assert record["environment_source"] == source
    assert record["environment"]["git_commit"] == head
    assert set(record["environment"]) == {"git_commit", "git_dirty", "jax", "jaxlib", "cpu"}
    assert record["environment"]["jax"] and record["environment"]["cpu"]
  sizes = {}
  for path, data in contents.items():
    if not path.endswith(".npy"):
      sizes.setdefault(path.split(os.sep)[0], 0)
      sizes[path.split(os.sep)[0]] += len(data)
  assert max(sizes.values()) < 6000, sizes  # a few KB per point, prompts aside


def test_report_reads_an_archive_as_the_sweep_directory_and_writes_nothing_into_it(
  sweeps, tmp_path
):
  archive_dir, live = sweeps["archives"]["whole"], sweeps["dirs"]["whole"]
  before = _tree(archive_dir)
  ours = report_lib.report(archive_dir, out_dir=str(tmp_path / "archived"))
  theirs = report_lib.report(live, out_dir=str(tmp_path / "live"))
  assert _tree(archive_dir) == before
  for name in (report_lib.RESULTS_FILE, report_lib.SUMMARY_FILE):
    with open(tmp_path / "archived" / name, "rb") as a, open(tmp_path / "live" / name, "rb") as b:
      assert a.read() == b.read(), name
  assert (
    [os.path.basename(p) for p in ours["plots"]]
    == [os.path.basename(p) for p in theirs["plots"]]
    == [f"eval_{TASK}_test_accuracy_vs_LEARNING_RATE.png"]
  )
  with open(ours["plots"][0], "rb") as a, open(theirs["plots"][0], "rb") as b:
    assert a.read() == b.read()
  assert (ours["done"], ours["failed"], ours["total"]) == (4, 1, 6)
  rows = helpers.csv_rows(ours["results"])
  assert float(rows[COPIED]["tokens_per_s"]) > 0 and rows[NOT_STARTED]["status"] == "not started"
  for out_dir in (None, archive_dir, os.path.join(archive_dir, "plots")):
    with pytest.raises(
      ValueError, match="is an archive, which report does not write into; give --out_dir"
    ) as error:
      report_lib.report(archive_dir, out_dir=out_dir)
    assert "\n" not in str(error.value)
  assert _tree(archive_dir) == before


def _reproducible_rows(path):
  return {
    name: {k: v for k, v in row.items() if k != "wall_s"}
    for name, row in helpers.csv_rows(path).items()
  }


def test_a_sweep_continued_from_an_archive_copies_its_done_points_and_runs_the_rest(
  sweeps, tmp_path, monkeypatch
):
  archive_dir, sweep_dir = sweeps["archives"]["whole"], str(tmp_path / "continued")
  out = io.StringIO()
  assert (
    driver.run(sweeps["file"], sweep_dir, reuse_from=[archive_dir], is_dry_run=True, out=out) == 0
  )
  copied = [
    line.split(" (done in ")[0] for line in out.getvalue().splitlines() if " (done in " in line
  ]
  done = sorted(p.name for p in sweeps["plan"].points if p.name not in (FAILED, NOT_STARTED))
  assert sorted(copied) == done
  assert out.getvalue().splitlines()[-1] == (
    f"sweep {sweeps['plan'].name}: {len(sweeps['plan'].points)} points: 0 done in "
    f"{sweep_dir}, {len(done)} to copy, {len(sweeps['plan'].points) - len(done)} to run "
    "(dry run: nothing ran)"
  )
  # A slice resumed from the archive runs only its points that the archive has not done.
  ran = []

  def fake_local(jobs, parallel, events):
    del parallel
    for job in jobs:
      ran.append(job.name)
      events.started(job)
      events.finished(job, 1, 0.5)

  monkeypatch.setattr(driver.executors, "local", fake_local)
  out = io.StringIO()
  status = driver.run(
    sweeps["file"], sweep_dir, reuse_from=[archive_dir], only=["LEARNING_RATE=1.0,-1.0"], out=out
  )
  assert status == 1 and sorted(ran) == [FAILED, NOT_STARTED], out.getvalue()
  assert "sweep: 2 points copied from --reuse_from=" in out.getvalue()
  for name in (COPIED, UNRECORDED):
    record = points_lib.status(os.path.join(sweep_dir, name))
    assert record["reused_from"] == os.path.join(os.path.realpath(archive_dir), name)
    assert driver.point_cost(record) == {COPIED: 77.0, UNRECORDED: 44.0}[name]
    assert os.path.isfile(os.path.join(sweep_dir, name, "best", PROMPT))
  ours = _reproducible_rows(os.path.join(sweep_dir, report_lib.RESULTS_FILE))
  report_lib.report(archive_dir, out_dir=str(tmp_path / "archived"))
  archived = _reproducible_rows(tmp_path / "archived" / report_lib.RESULTS_FILE)
  assert set(ours) == {COPIED, UNRECORDED, FAILED, NOT_STARTED}
  for name in (COPIED, UNRECORDED):
    assert ours[name] == archived[name]
  # Archived again, the copies keep their runs' provenance.
  again = str(tmp_path / "again")
  archive_lib.archive([sweep_dir], again)
  for name in (COPIED, UNRECORDED):
    assert (
      _contents(os.path.join(again, name))["provenance.json"]
      == _contents(os.path.join(archive_dir, name))["provenance.json"]
    )


def test_archives_of_two_slices_merge_into_the_whole_sweeps_archive(sweeps, tmp_path):
  archives = sweeps["archives"]
  merged = str(tmp_path / "merged")
  result = archive_lib.archive([archives[0], archives[1]], merged)
  assert (result["done"], result["points"]) == (4, 6)
  assert _contents(merged) == _contents(archives["whole"])
  for archive_dir, out_dir in ((merged, "merged_report"), (archives["whole"], "whole_report")):
    report_lib.report(archive_dir, out_dir=str(tmp_path / out_dir))
  for name in (report_lib.RESULTS_FILE, report_lib.SUMMARY_FILE):
    assert (tmp_path / "merged_report" / name).read_bytes() == (
      tmp_path / "whole_report" / name
    ).read_bytes()
  # Archiving a slice into the other's archive (a copy of it) updates it to the same.
  updated = str(tmp_path / "updated")
  shutil.copytree(archives[0], updated)
  archive_lib.archive([sweeps["dirs"][1]], updated)
  assert _contents(updated) == _contents(archives["whole"])
  # A point done in one archive and not in the other: the done run, in either order.
  unfinished = str(tmp_path / "unfinished")
  shutil.copytree(archives[1], unfinished)
  points_lib.write_json(
    os.path.join(unfinished, COPIED, points_lib.STATUS_FILE),
    {"status": "interrupted", "returncode": -15, "wall_s": 3.0},
  )
  for order in ([unfinished, archives["whole"]], [archives["whole"], unfinished]):
    out = str(tmp_path / f"order{len(os.listdir(tmp_path))}")
    archive_lib.archive(order, out)
    assert _contents(out) == _contents(archives["whole"])


def _conflicting(sweeps, tmp_path):
  """A copy of the seed-1 archive whose COPIED point evaluated otherwise."""
  other = str(tmp_path / "other")
  shutil.copytree(sweeps["archives"][1], other)
  path = os.path.join(other, COPIED, "metrics.jsonl")
  lines = open(path).read().splitlines()
  index = next(i for i, line in enumerate(lines) if f"eval/{TASK}/accuracy" in line)
  record = json.loads(lines[index])
  record[f"eval/{TASK}/accuracy"] += 0.01
  lines[index] = json.dumps(record)
  storage.write_file(path, "\n".join(lines) + "\n")
  return other


def test_a_merge_of_conflicting_runs_stops_with_one_line_and_writes_nothing(sweeps, tmp_path):
  other = _conflicting(sweeps, tmp_path)
  whole = sweeps["archives"]["whole"]
  before = _tree(whole)
  with pytest.raises(archive_lib.ArchiveError) as error:
    archive_lib.archive([sweeps["archives"][0], other], whole)  # into an archive: unchanged
  assert str(error.value) == (
    f"point {COPIED} is done in {whole} and in {other} with different evaluation results; "
    "remove it from one of them and merge again"
  )
  assert _tree(whole) == before
  # Only the values count: the same evaluations at other times merge.
  retimed = str(tmp_path / "retimed")
  shutil.copytree(sweeps["archives"][1], retimed)
  path = os.path.join(retimed, COPIED, "metrics.jsonl")
  text = open(path).read().replace('"time": 1', '"time": 2')
  storage.write_file(path, text)
  archive_lib.archive([sweeps["archives"][0], retimed], str(tmp_path / "retimed_merge"))
  # The command line: one line on stderr, exit status 1, no archive.
  out_dir = tmp_path / "merged"
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "prompt_tuning.sweep",
      "archive",
      f"--merge={whole},{other}",
      f"--archive_dir={out_dir}",
    ],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
    f"error: point {COPIED} is done in {whole} and in {other} with different evaluation "
    "results; remove it from one of them and merge again"
  )
  assert not out_dir.exists()


def test_archiving_again_gives_the_same_bytes_and_rewrites_nothing(sweeps, tmp_path, monkeypatch):
  archive_dir = str(tmp_path / "archive")
  archive_lib.archive([sweeps["dirs"]["whole"]], archive_dir)
  first = _tree(archive_dir)
  assert _contents(archive_dir) == _contents(sweeps["archives"]["whole"])
  # On another commit and machine: the point whose environment the sweep did not record
  # keeps the one it was first archived with.
  monkeypatch.setattr(provenance, "environment", lambda cwd: {"git_commit": "f" * 40})
  archive_lib.archive([sweeps["dirs"]["whole"]], archive_dir)
  assert _tree(archive_dir) == first
  recorded = points_lib.read_json(os.path.join(archive_dir, UNRECORDED, "provenance.json"))
  assert recorded["environment_source"] == archive_lib.NOT_RECORDED
  assert recorded["environment"]["git_commit"] != "f" * 40
  # A newer last prompt replaces the older one.
  live = os.path.join(sweeps["dirs"]["whole"], COPIED)
  copy = str(tmp_path / "sweep")
  shutil.copytree(sweeps["dirs"]["whole"], copy)
  newer = os.path.join(copy, COPIED, layout.NUMPY_DIR, "checkpoint_40")
  os.makedirs(newer)
  shutil.copy(os.path.join(live, "best", PROMPT), os.path.join(newer, PROMPT))
  archive_lib.archive([copy], archive_dir)
  assert sorted(os.listdir(os.path.join(archive_dir, COPIED, layout.NUMPY_DIR))) == [
    "checkpoint_40"
  ]


def test_bad_input_is_one_line_and_writes_nothing(sweeps, tmp_path):
  live, whole = sweeps["dirs"]["whole"], sweeps["archives"]["whole"]
  renamed = str(tmp_path / "renamed")  # an archive of another sweep (its name)
  shutil.copytree(sweeps["archives"][1], renamed)
  meta = points_lib.read_json(os.path.join(renamed, points_lib.SWEEP_FILE))
  points_lib.write_json(os.path.join(renamed, points_lib.SWEEP_FILE), {**meta, "name": "b"})
  lengths = str(tmp_path / "lengths")  # one with other axes
  shutil.copytree(sweeps["archives"][1], lengths)
  points_lib.write_json(
    os.path.join(lengths, points_lib.SWEEP_FILE), {**meta, "axes": ["PROMPT_LENGTH", "RANDOM_SEED"]}
  )
  cases = [
    (
      [str(tmp_path / "missing")],
      str(tmp_path / "out"),
      f"{tmp_path}/missing does not exist; give a sweep directory or an archive",
    ),
    (
      [str(tmp_path)],
      str(tmp_path / "out"),
      f"{tmp_path} is neither a sweep directory nor an archive (no sweep.json, no */point.json)",
    ),
    (
      [live],
      os.path.join(live, "archive"),
      f"--archive_dir={live}/archive overlaps {live}: put the archive outside the sweep directory",
    ),
    ([whole], os.path.join(whole, "again"), f"--archive_dir={whole}/again overlaps {whole}"),
    (
      [whole],
      sweeps["dirs"][0],
      f"--archive_dir={sweeps['dirs'][0]} is a sweep directory, not an archive",
    ),
    (
      [whole, renamed],
      str(tmp_path / "out"),
      f"{whole} holds sweep 'sweep' and {renamed} sweep 'b'; merge archives of one sweep",
    ),
    ([whole, lengths], str(tmp_path / "out"), f"{whole} and {lengths} differ in the sweep's axes"),
    ([], str(tmp_path / "out"), "give --sweep_dir=DIR"),
  ]
  for sources, archive_dir, message in cases:
    before = _tree(archive_dir) if os.path.isdir(archive_dir) else None
    with pytest.raises(archive_lib.ArchiveError) as error:
      archive_lib.archive(sources, archive_dir)
    assert str(error.value).startswith(message) and "\n" not in str(error.value), error.value
    assert (_tree(archive_dir) if os.path.isdir(archive_dir) else None) == before
  with pytest.raises(
    spec.SweepFileError,
    match="is an archive, which holds results, not runs; "
    f"continue the sweep in a new --sweep_dir with --reuse_from={whole}",
  ):
    driver.run(sweeps["file"], whole, is_dry_run=True, out=io.StringIO())


def test_a_merge_keeps_the_run_further_on_of_a_point_done_in_neither():
  """A started run (evaluations written) is not replaced by another archive's copy of the
  point not started, whichever comes first."""
  point_json = json.dumps({"argv": ["python"], "env": {}}).encode()
  started = archive_lib.Point(
    "p",
    {
      points_lib.POINT_FILE: point_json,
      points_lib.STATUS_FILE: json.dumps({"status": "interrupted"}).encode(),
      layout.METRICS_FILE: b'{"event": "start", "step": 0}\n{"step": 250, "eval/loss": 1.0}\n',
    },
    "live",
  )
  not_started = archive_lib.Point("p", {points_lib.POINT_FILE: point_json}, "shipped")
  assert archive_lib._pick(started, not_started) is started  # pylint: disable=protected-access
  assert archive_lib._pick(not_started, started) is started  # pylint: disable=protected-access
