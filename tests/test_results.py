"""The guard over the shipped results (results/*/, the archives docs/scaling.md is drawn from).

An archived point counts only while the study's configs and training code are
what made it. Two checks keep it so:

* every shipped sweep file, continued from its archive (`--reuse_from`), would
  copy every point the archive has done and run none of them again: a changed
  config (a gin file the points read, a recipe value) changes the points'
  digests and turns this red;
* one archived XS point, retrained here from its archived command to its first
  evaluation, gives that evaluation's numbers: a changed training or
  evaluation code path turns this red. XLA may compile other kernels on
  another machine (the same point's test predictions have moved by 1 to 6 of
  800 between machines and days), so the decoded accuracies may differ by
  `ACCURACY_POINTS` and the shares by `SHARE`; the teacher-forced loss (a sum
  of thousands of float32 terms) by `LOSS_RTOL`. It prints whether the match
  was exact.
"""

import json
import os
import shlex
import subprocess
import sys

import pytest

from prompt_tuning.sweep import driver
from prompt_tuning.sweep import migrate
from prompt_tuning.sweep import points as points_lib
from tests import conftest

RESULTS = os.path.join(conftest.REPO_ROOT, "results")
ARCHIVES = sorted(
  n
  for n in (os.listdir(RESULTS) if os.path.isdir(RESULTS) else ())
  if os.path.isfile(os.path.join(RESULTS, n, points_lib.ARCHIVE_FILE))
)
ACCURACY_POINTS = 1.0  # decoded accuracies, in points (8 of 800 test examples)
SHARE = 0.0125  # predictions/*_share (10 of 800)
LOSS_RTOL = 1e-4  # eval/loss, eval/z_loss, eval/accuracy (teacher-forced)


def _sweep_file(archive: str) -> str:
  meta = points_lib.read_json(os.path.join(RESULTS, archive, points_lib.SWEEP_FILE))
  return os.path.join(conftest.REPO_ROOT, "configs", "sweeps", f"{meta['name']}.gin")


def _points(archive: str) -> list[str]:
  root = os.path.join(RESULTS, archive)
  return sorted(
    n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, points_lib.POINT_FILE))
  )


def _done(archive: str) -> list[str]:
  return [n for n in _points(archive) if points_lib.is_done(os.path.join(RESULTS, archive, n))]


def test_results_are_shipped():
  assert "figure1" in ARCHIVES, f"results/ holds {ARCHIVES}"


@pytest.mark.parametrize("archive", ARCHIVES)
def test_a_sweep_continued_from_its_archive_runs_none_of_its_done_points_again(archive, tmp_path):
  plan = driver.load(_sweep_file(archive))
  digests = {n: driver.config_digest(t) for n, t in driver.check_points(plan).items()}
  runs = driver.finished_runs([os.path.join(RESULTS, archive)])
  copied = driver.reusable_points(plan, digests, str(tmp_path), runs)
  done = _done(archive)
  assert done, f"results/{archive} has no done point"
  would_run = sorted(set(done) - set(copied))
  assert not would_run, (
    f"results/{archive}: {len(would_run)} of its {len(done)} done points would run again "
    f"(their config changed), e.g. {would_run[0]}; a change to the study's configs needs a "
    "checked migration of the archived digests, or the points rerun and archived"
  )
  if len(done) == len(plan.points):
    assert len(copied) == len(plan.points)  # a complete archive: nothing would run


@pytest.mark.parametrize("archive", ARCHIVES)
def test_every_archived_config_reads_back_as_gin_with_the_points_rerun_dir(archive):
  for name in _points(archive):
    point = os.path.join(RESULTS, archive, name)
    path = os.path.join(point, "config.gin")
    if not os.path.isfile(path):
      continue
    with open(path) as f:
      bindings = migrate.read_bindings(f.read())  # a SyntaxError names the line
    argv = points_lib.read_json(os.path.join(point, points_lib.POINT_FILE))["argv"]
    assert f"--gin.MODEL_DIR='{bindings.values['MODEL_DIR']}'" in argv, path


def _first_eval(metrics_path: str) -> dict:
  with open(metrics_path) as f:
    records = [json.loads(line) for line in f if line.strip()]
  first = min(
    (r for r in records if any(k.startswith("eval/") for k in r)), key=lambda r: r["step"]
  )
  return {k: v for k, v in first.items() if k != "time"}


def _within(name: str, got: float, want: float) -> bool:
  if "/predictions/" in name:
    return abs(got - want) <= SHARE
  if name.count("/") >= 2:  # eval/<task>/[<split>/]<metric>: decoded
    return abs(got - want) <= ACCURACY_POINTS
  return abs(got - want) <= LOSS_RTOL * max(abs(want), 1e-12)


@pytest.mark.integration
@pytest.mark.slow
def test_an_archived_xs_point_retrained_to_its_first_evaluation_gives_its_numbers(tmp_path):
  # A hypernym point: its validation split (800 examples) is 25 full batches, so its
  # teacher-forced numbers were the same before evaluations kept their last partial
  # batch (supersense's 400 are 12 batches and 16 examples; docs/scaling.md).
  name = "size=xs,method=prompt_tuning,task=hypernym,RANDOM_SEED=0"
  point = os.path.join(RESULTS, "figure1", name)
  if not points_lib.is_done(point):
    pytest.fail(f"results/figure1/{name} is not done")
  archived = _first_eval(os.path.join(point, "metrics.jsonl"))
  rerun = points_lib.read_json(os.path.join(point, "provenance.json"))["rerun"]
  words = shlex.split(rerun)
  at = words.index("python")
  env = dict(os.environ, **dict(w.split("=", 1) for w in words[:at]))
  model_dir = tmp_path / "run"
  argv = (
    [sys.executable]
    + words[at + 1 :]
    + [f"--gin.TRAIN_STEPS={archived['step']}", f"--gin.MODEL_DIR='{model_dir}'"]
  )
  result = subprocess.run(
    argv, cwd=conftest.REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
  )
  assert result.returncode == 0, result.stderr[-3000:]
  got = _first_eval(model_dir / "metrics.jsonl")
  assert got["step"] == archived["step"] and sorted(got) == sorted(archived)
  off = {
    k: (got[k], archived[k])
    for k in archived
    if k != "step" and not _within(k, got[k], archived[k])
  }
  exact = all(got[k] == archived[k] for k in archived)
  print(
    f"results/figure1/{name}: first evaluation (step {archived['step']}) "
    f"{'matches exactly' if exact else 'matches within the tolerances'}"
  )
  assert not off, (
    f"retrained, {name}'s first evaluation differs from the archive's beyond "
    f"the tolerances: {off}; did the training or evaluation code change?"
  )
