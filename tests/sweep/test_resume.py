"""What a sweep directory holds across runs: the ETA from done points, an edited sweep
refused, and which done points are reused or replaced."""

import io
import json
import os
import shutil

import pytest

from prompt_tuning.sweep import driver
from prompt_tuning.sweep import executors
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import report as report_lib
from prompt_tuning.sweep import spec
from tests.sweep.helpers import (
  REPO,
  BASE,
  LEARNING_RATES,
  GOOD_POINTS,
  BAD_POINT,
  write_sweep_file,
  fake_point,
)


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
  plan = driver.load(write_sweep_file(tmp_path, BASE + LEARNING_RATES))
  points_lib.prepare(plan, sweep_dir, REPO)
  # Another metric: the same commands, so the points' records follow the sweep file.
  relabelled = driver.load(
    write_sweep_file(tmp_path, BASE + LEARNING_RATES + "sweep.Sweep.metric = 'eval/loss'\n")
  )
  points_lib.prepare(relabelled, sweep_dir, REPO)
  record = json.load(open(os.path.join(sweep_dir, GOOD_POINTS[0], "point.json")))
  assert record["metric"] == "eval/loss"
  # Other commands (or other cores per point) in the same directory would mix two sweeps.
  for text in (
    BASE.replace("'TRAIN_STEPS': 20", "'TRAIN_STEPS': 21") + LEARNING_RATES,
    BASE + LEARNING_RATES + "sweep.Sweep.resources = {'CPU': 2}\n",
  ):
    changed = driver.load(write_sweep_file(tmp_path, text))
    with pytest.raises(spec.SweepFileError, match="was made by a different command"):
      points_lib.prepare(changed, sweep_dir, REPO)
  # The same command reading an edited gin file: another config.
  points_lib.prepare(plan, sweep_dir, REPO, digests={n: "a" * 64 for n in GOOD_POINTS})
  points_lib.prepare(plan, sweep_dir, REPO)  # a digest recorded stays
  # So does the record of how a checked migration made it (sweep migrate).
  migrated = os.path.join(sweep_dir, GOOD_POINTS[0], "point.json")
  record = {**json.load(open(migrated)), points_lib.MIGRATIONS_KEY: [{"from_sha256": "c" * 64}]}
  points_lib.write_json(migrated, record)
  points_lib.prepare(plan, sweep_dir, REPO, digests={n: "a" * 64 for n in GOOD_POINTS})
  assert json.load(open(migrated)) == record
  with pytest.raises(spec.SweepFileError, match="was made by a different config"):
    points_lib.prepare(plan, sweep_dir, REPO, digests={n: "b" * 64 for n in GOOD_POINTS})
  # A point that the sweep no longer has stays on disk but leaves its results.
  fake_point(sweep_dir, "LEARNING_RATE=9.0", [("LEARNING_RATE", 9.0)], [(10, 1.0)])
  fake_point(sweep_dir, GOOD_POINTS[1] + "_done", [("LEARNING_RATE", 1.0)], [(10, 1.0)])
  shutil.rmtree(os.path.join(sweep_dir, GOOD_POINTS[1] + "_done"))
  _, rows = report_lib.collect(sweep_dir)
  assert [r["name"] for r in rows] == [*GOOD_POINTS, BAD_POINT]


def test_a_point_is_reused_only_where_its_whole_config_and_environment_are_the_same(tmp_path):
  source_dir = str(tmp_path / "source")
  source = driver.load(write_sweep_file(tmp_path, BASE + LEARNING_RATES))
  points_lib.prepare(source, source_dir, REPO)
  for name in GOOD_POINTS:  # done; the bad point never ran
    points_lib.write_json(
      os.path.join(source_dir, name, points_lib.STATUS_FILE), {"status": "done", "wall_s": 5.0}
    )
  runs = driver.finished_runs([source_dir])

  def reusable(text, sweep_dir="here", sources=None):
    plan = driver.load(write_sweep_file(tmp_path, text))
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
