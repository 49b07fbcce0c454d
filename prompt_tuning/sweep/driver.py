"""Running a sweep: load and check the sweep file, run the points not done, report.

Everything that can be checked before a run starts is checked for every point
first (the sweep file, each point's gin config parsed exactly as
`python -m prompt_tuning.train` parses it: unknown gin files, unknown or unread
macros, unset REQUIRED ones), so a bad sweep stops with one line before any
directory is created. What only a run can find (an invalid value, a diverged
loss) fails that point alone: it is recorded with its error line and the
others go on.
"""

import fcntl
import hashlib
import importlib.util
import json
import math
import os
import sys
import time
from typing import Any, Optional, Sequence, TextIO

import gin
import numpy as np

from prompt_tuning import gin_config
from prompt_tuning import train as train_entry
from prompt_tuning.sweep import executors
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import report as report_lib
from prompt_tuning.sweep import spec

EXECUTORS = ("local", "ray")
# What parsing a sweep file or a point's config raises for a bad one (gin's errors included).
CONFIG_ERRORS = (ValueError, TypeError, NameError, AttributeError, FileNotFoundError, ImportError)
LOCK_FILE = ".sweep.lock"


def one_line(error: BaseException) -> str:
  lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
  where = next((line for line in lines[1:] if line.startswith("In ")), None)
  return (lines[0] if lines else type(error).__name__) + (f" ({where})" if where else "")


def load(sweep_file: str, overrides: Sequence[str] = ()) -> spec.Plan:
  """The sweep file (and `--gin.` bindings of its macros) -> its plan.

  Raises:
    spec.SweepFileError: the file is missing, malformed, or makes no valid grid.
  """
  if not os.path.isfile(gin_config.find_config_file(sweep_file)):
    raise spec.SweepFileError(f"sweep file {sweep_file!r} not found; see configs/sweeps/")
  gin.clear_config()
  try:
    gin_config.parse_gin([sweep_file], overrides)
    bound = gin.get_bindings(spec.Sweep, resolve_references=False)
    if not bound:
      raise spec.SweepFileError(
        f"{sweep_file} binds no sweep.Sweep parameters; start it with `from __gin__ import "
        "dynamic_registration` and `from prompt_tuning import sweep` (see configs/sweeps/)"
      )
    # A macro set (in the file or by --gin.) that the sweep never reads is a typo.
    gin_config.check_every_macro_is_read(
      (), where="a sweep file's macros are those its sweep.Sweep bindings reference"
    )
    declared = spec.Sweep(**spec.resolve_macros(bound))
  except spec.SweepFileError:
    raise
  except CONFIG_ERRORS as e:
    raise spec.SweepFileError(f"{sweep_file}: {one_line(e)}") from None
  finally:
    gin.clear_config()
  name = os.path.splitext(os.path.basename(sweep_file))[0]
  return spec.plan(declared, name)


# The MODEL_DIR a point's config is checked (and compared) with: a run's numbers do not
# depend on where it writes them.
_ANY_MODEL_DIR = "<the point's directory>"


def config_text(gin_files: Sequence[str], bindings: Sequence[str]) -> str:
  """The run's whole gin config as the trainer parses it (MODEL_DIR aside), checked.

  Two points whose texts (and environments) are equal train the same run,
  however their sweep files spelled it (a default bound explicitly, another
  order of files or bindings that binds the same values).
  """
  gin.clear_config()
  try:
    gin_config.parse_gin(gin_files, [*bindings, f"MODEL_DIR = {spec.gin_text(_ANY_MODEL_DIR)}"])
    text = gin.config_str()  # as parsed: the checks' model build adds macro_value's binding
    gin_config.check_run_config(train_entry.RUN_REQUIRED_MACROS, train_entry.READ_DIRECTLY)
    return text
  finally:
    gin.clear_config()


def check_points(plan: spec.Plan) -> dict[str, str]:
  """Parses every point's config as the training command will, before anything runs.

  Returns:
    Each point's config text (`config_text`), by point name.
  Raises:
    spec.SweepFileError: naming the first point whose config the trainer would
      refuse (a gin file not found, an unknown or unread setting, a REQUIRED
      macro unset).
  """
  texts = {}
  for point in plan.points:
    try:
      texts[point.name] = config_text(
        plan.gin_files_of(point), [f"{k} = {v}" for k, v in plan.bindings_of(point)]
      )
    except CONFIG_ERRORS as e:
      raise spec.SweepFileError(f"point {point.name}: {one_line(e)}") from None
  return texts


def config_digest(text: str) -> str:
  """What point.json records of a point's config text (`config_text`)."""
  return hashlib.sha256(text.encode()).hexdigest()


def finished_runs(sweep_dirs: Sequence[str]) -> dict[tuple[str, str], str]:
  """The done points of other sweeps (their directories or archives), by (config digest,
  environment): runs to reuse.

  The digest is the one the point's sweep recorded when it prepared the point
  (and refuses to resume under another); a point of a sweep made before points
  recorded one is parsed here, and left out if that fails: nothing then says
  it is the same run.

  Raises:
    spec.SweepFileError: a directory holds no sweep points.
  """
  # An archive (archive.py) has a sweep directory's layout: its points are read alike.
  runs = {}
  for sweep_dir in sweep_dirs:
    names = sorted(
      n
      for n in (os.listdir(sweep_dir) if os.path.isdir(sweep_dir) else ())
      if os.path.isfile(os.path.join(sweep_dir, n, points_lib.POINT_FILE))
    )
    if not names:
      raise spec.SweepFileError(
        f"--reuse_from={sweep_dir}: no sweep points there (no "
        f"*/{points_lib.POINT_FILE}); give a sweep directory or an "
        "archive"
      )
    for name in names:
      model_dir = os.path.realpath(os.path.join(sweep_dir, name))
      if not points_lib.is_done(model_dir):
        continue
      record = points_lib.read_json(os.path.join(model_dir, points_lib.POINT_FILE)) or {}
      digest = record.get("config_sha256")
      if digest is None:
        try:
          digest = config_digest(config_text(*points_lib.config_of_argv(record["argv"])))
        except Exception:  # pylint: disable=broad-except
          continue  # any failure: not known to be the same run
      runs.setdefault((digest, json.dumps(record.get("env"), sort_keys=True)), model_dir)
  return runs


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def point_cost(status: dict[str, Any]) -> float:
  """The seconds a done point's run took: its attempts', or for a copy (--reuse_from),
  which took none here, its source's; 0 where unknown."""
  return float(status.get("wall_s") or status.get("source_wall_s") or 0.0)


def _fit_log_costs(history: Sequence[tuple[frozenset, float]]) -> tuple[float, dict]:
  """log(seconds) ~ intercept + one term per (axis, label): ridge least squares (a small
  penalty on the terms only, so labels seen together stay apart and unseen ones count
  0)."""
  labels = sorted({label for kind, _ in history for label in kind})
  column = {label: i for i, label in enumerate(labels)}
  x = np.zeros((len(history), len(labels) + 1))
  x[:, -1] = 1.0
  for row, (kind, _) in enumerate(history):
    for label in kind:
      x[row, column[label]] = 1.0
  y = np.log([max(seconds, 1e-3) for _, seconds in history])
  penalty = np.diag([1e-3] * len(labels) + [0.0])
  w = np.linalg.solve(x.T @ x + penalty, x.T @ y)
  return float(w[-1]), {label: float(w[column[label]]) for label in labels}


class Progress:
  """Records each point's end in its status.json and prints the sweep's state.

  The ETA prices each point not yet done from the done ones (those of earlier runs of the
  sweep included) and divides the sum by the points run at once. A point like done ones
  (the same labels but the seeds) costs their mean; any other, a cost multiplied by a
  factor per axis label, fitted to the done points (least squares on log seconds), so
  that a size whose only done points have the usual length and a length done only at
  the small sizes give the large size's long point its cost (in a scaling sweep one
  point of the largest size costs many of the smallest)."""

  def __init__(
    self,
    total: int,
    done: int,
    parallel: int,
    out: TextIO,
    kinds: Optional[dict[str, frozenset]] = None,
    history: Sequence[tuple[frozenset, float]] = (),
  ):
    """kinds: each point's name -> its (axis, label) pairs but the seeds'. history: (kind,
    seconds) of the points done before this run (`point_cost`)."""
    self.total, self.done, self.parallel, self.out = total, done, parallel, out
    self.running = self.failed = self.interrupted = 0
    self.kinds = kinds or {}
    self.history = list(history)
    self.waiting = set(self.kinds)  # not started yet
    self.started_at: dict[str, float] = {}
    self.left = total - done
    self._fit = None  # (points it was fitted to, _fit_log_costs of them)

  def _estimate(self, kind: frozenset) -> float:
    alike = [seconds for other, seconds in self.history if other == kind]
    if alike or not kind:  # no kind given: the mean point
      alike = alike or [seconds for _, seconds in self.history]
      return sum(alike) / len(alike)
    if self._fit is None or self._fit[0] != len(self.history):
      self._fit = (len(self.history), _fit_log_costs(self.history))
    intercept, factors = self._fit[1]
    return math.exp(intercept + sum(factors.get(label, 0.0) for label in kind))

  def eta(self) -> Optional[float]:
    """Seconds until the points not yet done are, or None before any point is done."""
    if not self.history or not (self.left or self.running):
      return None
    now = time.time()
    running = sum(
      max(0.0, self._estimate(self.kinds.get(name, frozenset())) - (now - begun))
      for name, begun in self.started_at.items()
    )
    waiting = [self.kinds.get(name, frozenset()) for name in self.waiting]
    waiting += [frozenset()] * (self.left - len(waiting))  # unnamed: the mean point
    return (running + sum(self._estimate(kind) for kind in waiting)) / self.parallel

  def _line(self, what: str) -> None:
    seconds = self.eta()
    eta = "" if seconds is None else f"; ETA {_duration(seconds)}"
    print(
      f"sweep: {self.done}/{self.total} done, {self.running} running, {self.failed} failed, "
      f"{self.left} left{eta} | {what}",
      file=self.out,
      flush=True,
    )

  def started(self, job: executors.Job) -> None:
    self.running += 1
    self.left -= 1
    self.waiting.discard(job.name)
    self.started_at[job.name] = time.time()
    self._line(f"started {job.name}")

  def finished(self, job: executors.Job, returncode: int, seconds: float) -> None:
    self.running -= 1
    self.started_at.pop(job.name, None)
    record = points_lib.record_attempt(os.path.dirname(job.log_path), returncode, seconds)
    outcome = record["status"]
    if outcome == points_lib.DONE:
      self.done += 1
      self.history.append((self.kinds.get(job.name, frozenset()), record["wall_s"]))
      self._line(f"{job.name} done in {_duration(seconds)}")
    elif outcome == points_lib.FAILED:
      self.failed += 1
      self._line(f"{job.name} FAILED (exit {returncode}): {record['error']} (log: {job.log_path})")
    else:
      self.interrupted += 1
      self._line(f"{job.name} interrupted at its last saved step; rerun to resume")


class _Lock:
  """One driver per sweep directory at a time."""

  def __init__(self, sweep_dir: str):
    os.makedirs(sweep_dir, exist_ok=True)
    self._fd = os.open(os.path.join(sweep_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT)
    try:
      fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      os.close(self._fd)
      raise spec.SweepFileError(
        f"another sweep is running in {sweep_dir}; wait for it or stop it first"
      ) from None

  def release(self) -> None:
    os.close(self._fd)


def dry_run(plan: spec.Plan, sweep_dir: str, reusable: dict[str, str], out: TextIO) -> None:
  env = " ".join(f"{k}={v}" for k, v in points_lib.environment(plan).items())
  print(f"sweep {plan.name}: {len(plan.points)} points (dry run: nothing runs)", file=out)
  for point in plan.points:
    argv = points_lib.train_argv(plan, point, points_lib.point_dir(sweep_dir, point))
    copied = f" (done in {reusable[point.name]}: copied, not run)" if point.name in reusable else ""
    print(f"{point.name}{copied}\n  {env} {points_lib.shell_command(argv)}", file=out)
  done = sum(points_lib.is_done(points_lib.point_dir(sweep_dir, p)) for p in plan.points)
  print(
    f"sweep {plan.name}: {len(plan.points)} points: {done} done in {sweep_dir}, "
    f"{len(reusable)} to copy, {len(plan.points) - done - len(reusable)} to run "
    "(dry run: nothing ran)",
    file=out,
  )


def reusable_points(
  plan: spec.Plan, digests: dict[str, str], sweep_dir: str, runs: dict[tuple[str, str], str]
) -> dict[str, str]:
  """The plan's points that are not done here and that another sweep ran.

  Args:
    plan: the sweep's plan.
    digests: each point's config digest, by name (`config_digest`).
    sweep_dir: this sweep's directory.
    runs: `finished_runs` of the directories to reuse.
  Returns:
    point name -> the directory of the run to copy.
  """
  env = json.dumps(points_lib.environment(plan), sort_keys=True)
  found = {}
  for point in plan.points:
    source = runs.get((digests[point.name], env))
    if source and not points_lib.is_done(points_lib.point_dir(sweep_dir, point)):
      found[point.name] = source
  return found


def listed_points(whole: spec.Plan, sliced: spec.Plan, sweep_dir: str) -> list[str]:
  """The points a directory's sweep.json lists after a slice (--only) of `whole` runs in
  it: the slice's and those listed before, in the whole sweep's order (so that `report`
  keeps the points of an earlier, larger run)."""
  before = (points_lib.read_json(os.path.join(sweep_dir, points_lib.SWEEP_FILE)) or {}).get(
    "points", []
  )
  keep = set(before) | {p.name for p in sliced.points}
  return [p.name for p in whole.points if p.name in keep]


def run(
  sweep_file: str,
  sweep_dir: str,
  *,
  overrides: Sequence[str] = (),
  executor: str = "local",
  max_parallel: Optional[int] = None,
  is_dry_run: bool = False,
  report_options: Optional[dict[str, Any]] = None,
  only: Sequence[str] = (),
  reuse_from: Sequence[str] = (),
  out: TextIO = sys.stdout,
) -> int:
  """Runs the sweep's points that are not done; returns the exit status (0; 1: a point is
  not done; 130: interrupted, each running point saved its step). `only`: run just the
  points with these axis labels (`AXIS=LABEL[,LABEL...]` each, see spec.select).
  `reuse_from`: sweep directories or archives whose done points are copied, not run again, into
  this sweep's points that have the same config (`finished_runs`)."""
  if executor not in EXECUTORS:
    raise ValueError(f"--executor={executor!r}; use one of {', '.join(EXECUTORS)}")
  sweep_dir = os.path.abspath(sweep_dir)
  if points_lib.is_archive(sweep_dir):
    raise spec.SweepFileError(
      f"--sweep_dir={sweep_dir} is an archive, which holds results, "
      "not runs; continue the sweep in a new --sweep_dir with "
      f"--reuse_from={sweep_dir}"
    )
  if any(c in sweep_dir for c in "'\"$`\\"):
    raise ValueError(
      f"--sweep_dir={sweep_dir!r}: use a path without quotes, '$', '`' or "
      "backslashes (it is written into gin strings and shell commands)"
    )
  whole = load(sweep_file, overrides)
  plan = spec.select(whole, only)
  digests = {name: config_digest(text) for name, text in check_points(plan).items()}
  report_lib.check_options(["parameters", *plan.axes], **(report_options or {}))
  runs = finished_runs([os.path.abspath(d) for d in reuse_from])
  if is_dry_run:
    dry_run(plan, sweep_dir, reusable_points(plan, digests, sweep_dir, runs), out)
    return 0
  parallel = executors.check_parallel(max_parallel, plan.resources)
  if executor == "ray":
    if importlib.util.find_spec("ray") is None:  # only ray_executor imports it
      raise ImportError("--executor=ray needs Ray: pip install -e '.[ray]'")
    parallel = max_parallel or len(plan.points)
  lock = _Lock(sweep_dir)
  try:
    points_lib.prepare(
      plan, sweep_dir, os.getcwd(), listed_points(whole, plan, sweep_dir) if only else None, digests
    )
    if reuse_from:
      copies = reusable_points(plan, digests, sweep_dir, runs)
      copied = sum(
        points_lib.copy_run(copies[p.name], points_lib.point_dir(sweep_dir, p))
        for p in plan.points
        if p.name in copies
      )
      print(
        f"sweep: {copied} points copied from --reuse_from={','.join(reuse_from)} ({len(runs)} "
        "done runs there; a copy needs the same config and environment), not run again",
        file=out,
        flush=True,
      )
    statuses = {p.name: points_lib.status(points_lib.point_dir(sweep_dir, p)) for p in plan.points}
    todo = [p for p in plan.points if statuses[p.name].get("status") != points_lib.DONE]
    jobs = [
      executors.Job(
        name=p.name,
        argv=tuple(points_lib.train_argv(plan, p, points_lib.point_dir(sweep_dir, p))),
        env=points_lib.environment(plan),
        log_path=os.path.join(points_lib.point_dir(sweep_dir, p), points_lib.LOG_FILE),
        cwd=os.getcwd(),
        resources=dict(plan.resources),
      )
      for p in todo
    ]
    total = len(plan.points)
    print(
      f"sweep {plan.name}: {total} points in {sweep_dir}; {total - len(jobs)} done already, "
      f"{len(jobs)} to run, {'up to ' if executor == 'ray' else ''}{parallel} at a time "
      f"({executor})",
      file=out,
      flush=True,
    )
    kinds = {
      p.name: frozenset((c.axis, c.label) for c in p.choices if c.axis not in plan.seed_axes)
      for p in plan.points
    }
    history = [
      (kinds[name], cost)
      for name, status in statuses.items()
      if status.get("status") == points_lib.DONE and (cost := point_cost(status)) > 0
    ]
    progress = Progress(
      total, total - len(jobs), parallel, out, {p.name: kinds[p.name] for p in todo}, history
    )
    begin = time.time()
    interrupted = False
    try:
      if executor == "ray" and jobs:
        from prompt_tuning.sweep import ray_executor  # pylint: disable=g-import-not-at-top

        ray_executor.run(jobs, parallel, progress)
      elif jobs:
        executors.local(jobs, parallel, progress)
    except KeyboardInterrupt:
      interrupted = True
    result = report_lib.report(sweep_dir, **(report_options or {}))
  finally:
    lock.release()
  print(f"sweep: {_duration(time.time() - begin)}; summary={result['summary']}", file=out)
  if interrupted:
    print(
      "error: the sweep was interrupted; its running points saved their steps. Rerun the "
      "same command to resume",
      file=out,
      flush=True,
    )
    return 130
  left = result["total"] - result["done"]
  if left:
    print(
      f"sweep: {left} points are not done ({result['failed']} failed; see "
      f"{result['summary']}); rerun the same command to run them",
      file=out,
      flush=True,
    )
  plot = result["plots"][0] if result["plots"] else "none"
  print(
    f"sweep: {result['done']}/{result['total']} points done results={result['results']} "
    f"plot={plot}",
    file=out,
    flush=True,
  )
  return 1 if left else 0
