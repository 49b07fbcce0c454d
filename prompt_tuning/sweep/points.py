"""A sweep directory on disk: each point's MODEL_DIR, its command, its status.

    SWEEP_DIR/
      sweep.json                 the sweep as planned (name, axes, points, metric)
      <point name>/              the point's MODEL_DIR (checkpoints, metrics.jsonl,
                                 TensorBoard events: `tensorboard --logdir SWEEP_DIR`)
        point.json               its axis values and settings (what `report` reads), and
                                 its config's sha256 (a changed config is not resumed)
        command.sh               the exact training command; `sh command.sh` resumes it
                                 here, `POINT_MODEL_DIR=/elsewhere sh command.sh` reruns it
        train.log                the command's output, every attempt appended
        status.json              done / failed (with the log's last lines) / interrupted;
                                 a run copied from another sweep's point names it
      results.csv, summary.md, plots/    written by `report`
      .copying/                  copies from --reuse_from being made, each swapped in whole

An archive (archive.py: compact, portable, committed under results/) has the same
layout with fewer files per point, and an archive.json that marks it.

Every file here is written whole (a temporary file, then a rename), so a killed
sweep leaves each one as it was or as it became.
"""

import json
import os
import re
import shlex
import shutil
import sys
import time
from typing import Any, Optional, Sequence

from prompt_tuning import host
from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import storage
from prompt_tuning.sweep import provenance
from prompt_tuning.sweep import spec

SWEEP_FILE = "sweep.json"
POINT_FILE = "point.json"
COMMAND_FILE = "command.sh"
LOG_FILE = "train.log"
STATUS_FILE = "status.json"
# point.json's record of the checked migrations of its digest (migrate.py)
MIGRATIONS_KEY = "config_migrations"
ARCHIVE_FILE = "archive.json"  # marks an archive (archive.py), which nothing runs or writes in
DONE, FAILED, INTERRUPTED = "done", "failed", "interrupted"
ERROR_LINES = 5  # the log's last lines kept in a failed point's status


def write_json(path: str, value: Any) -> None:
  storage.write_file(path, json.dumps(value, indent=1) + "\n")


def read_json(path: str) -> Optional[Any]:
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None


def is_archive(directory: str) -> bool:
  return os.path.isfile(os.path.join(directory, ARCHIVE_FILE))


def is_inside(path: str, directory: str) -> bool:
  """Whether `path` is `directory` or under it (symbolic links resolved)."""
  path, directory = os.path.realpath(path), os.path.realpath(directory)
  return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def point_dir(sweep_dir: str, point: spec.Point) -> str:
  return os.path.join(sweep_dir, point.name)


def train_argv(
  plan: spec.Plan, point: spec.Point, model_dir: str, python: str = "python"
) -> list[str]:
  """`python -m prompt_tuning.train --gin_file=... --gin.KEY=VALUE ... --gin.MODEL_DIR=...`."""
  argv = [python, "-m", spec.ENTRY_POINT]
  argv += [f"--gin_file={f}" for f in plan.gin_files_of(point)]
  argv += [f"--gin.{key}={value}" for key, value in plan.bindings_of(point)]
  argv.append(f"--gin.MODEL_DIR={spec.gin_text(model_dir)}")
  return argv


def shell_word(arg: str) -> str:
  """`arg` for a POSIX shell, gin flags in the README's style: `--gin.K="{'a': 1}"`."""
  name, sep, value = arg.partition("=")
  if (
    sep
    and name.startswith("--")
    and shlex.quote(value) != value
    and not any(c in value for c in '"$`\\!')
  ):
    return f'{name}="{value}"'
  return shlex.quote(arg)


def shell_command(argv: list[str]) -> str:
  return " ".join(shell_word(a) for a in argv)


def environment(plan: spec.Plan) -> dict[str, str]:
  """The variables a point runs with (beside the inherited ones).

  Its cores (a point's numbers depend on how many cores XLA may use), and
  XLA_FLAGS as the driver has them but without a device count, so that the
  point's process sets one device per claimed core, wherever it runs.
  """
  flags = " ".join(
    f for f in os.environ.get("XLA_FLAGS", "").split() if host.DEVICE_COUNT_FLAG not in f
  )
  return {host.CPU_CORES_VARIABLE: str(plan.cpus), "XLA_FLAGS": flags}


def command_script(plan: spec.Plan, point: spec.Point, model_dir: str, cwd: str) -> str:
  """command.sh: the point's exact command; POINT_MODEL_DIR in the environment moves it."""
  argv = train_argv(plan, point, "$POINT_MODEL_DIR", python=sys.executable)
  quoted = [shell_word(a) for a in argv[:-1]]
  quoted.append("--gin.MODEL_DIR=\"'$POINT_MODEL_DIR'\"")
  variables = " ".join(f"{k}={shlex.quote(v)}" for k, v in environment(plan).items())
  lines = [
    "#!/bin/sh",
    f"# Point {point.name} of sweep {plan.name}.",
    "# `sh command.sh` trains it here (resuming); `POINT_MODEL_DIR=/elsewhere sh command.sh`",
    "# trains the same run elsewhere, to the same numbers.",
    f"[ -n \"$POINT_MODEL_DIR\" ] || POINT_MODEL_DIR={shlex.quote(model_dir)}",
    f"cd {shlex.quote(cwd)} || exit 1",
    f"exec env {variables} \\\n  " + " \\\n  ".join(quoted),
  ]
  return "\n".join(lines) + "\n"


def point_record(plan: spec.Plan, point: spec.Point, model_dir: str) -> dict[str, Any]:
  return {
    "sweep": plan.name,
    "name": point.name,
    "index": point.index,
    "axes": [[c.axis, c.label, c.value] for c in point.choices],
    "seed_axes": list(plan.seed_axes),
    "average_axes": list(plan.average_axes),
    "metric": plan.metric,
    "metric_mode": plan.metric_mode,
    "resources": plan.resources,
    "model_dir": model_dir,
    "argv": train_argv(plan, point, model_dir)[1:],
    "env": environment(plan),
  }


def prepare(
  plan: spec.Plan,
  sweep_dir: str,
  cwd: str,
  listed: Optional[Sequence[str]] = None,
  digests: Optional[dict[str, str]] = None,
) -> None:
  """Writes sweep.json and each point's point.json and command.sh (unchanged ones stay).

  Args:
    plan: the sweep's plan.
    sweep_dir: its directory.
    cwd: where the points' commands run.
    listed: the point names sweep.json records as the sweep's (default: the plan's;
      a slice run with --only also keeps the points an earlier run recorded).
    digests: each point's config digest (the driver's `config_digest`), recorded in
      its point.json as `config_sha256`.
  Raises:
    spec.SweepFileError: SWEEP_DIR holds a point whose command differs (another
      sweep, or this one edited), or whose config does (a gin file it reads was
      edited): its runs would mix two configurations.
  """
  os.makedirs(sweep_dir, exist_ok=True)
  for point in plan.points:
    model_dir = point_dir(sweep_dir, point)
    record = point_record(plan, point, model_dir)
    old = read_json(os.path.join(model_dir, POINT_FILE))
    if old is not None and (old.get("argv"), old.get("env")) != (record["argv"], record["env"]):
      raise spec.SweepFileError(
        f"{model_dir} was made by a different command (the sweep file changed?); use a new "
        "--sweep_dir, or remove that point's directory to rerun it"
      )
    digest = (digests or {}).get(point.name)
    if old is not None and digest and old.get("config_sha256", digest) != digest:
      raise spec.SweepFileError(
        f"{model_dir} was made by a different config (a gin file it reads changed?); use a "
        "new --sweep_dir, or remove that point's directory to rerun it"
      )
  write_json(
    os.path.join(sweep_dir, SWEEP_FILE),
    {
      "name": plan.name,
      "axes": list(plan.axes),
      "seed_axes": list(plan.seed_axes),
      "average_axes": list(plan.average_axes),
      "metric": plan.metric,
      "metric_mode": plan.metric_mode,
      "resources": plan.resources,
      "points": list(listed) if listed is not None else [p.name for p in plan.points],
    },
  )
  for point in plan.points:
    model_dir = point_dir(sweep_dir, point)
    os.makedirs(model_dir, exist_ok=True)
    # Same command: the sweep's other settings (metric, order) may have changed; a point
    # whose record is unchanged keeps its file untouched.
    record_path = os.path.join(model_dir, POINT_FILE)
    record = json.loads(json.dumps(point_record(plan, point, model_dir)))
    old = read_json(record_path) or {}
    digest = (digests or {}).get(point.name) or old.get("config_sha256")
    if digest:
      record["config_sha256"] = digest
    if MIGRATIONS_KEY in old and digest == old.get("config_sha256"):
      record[MIGRATIONS_KEY] = old[MIGRATIONS_KEY]  # how its digest came to be this one
    if old != record:
      write_json(record_path, record)
    script = command_script(plan, point, model_dir, cwd)
    script_path = os.path.join(model_dir, COMMAND_FILE)
    if not os.path.exists(script_path) or open(script_path).read() != script:
      storage.write_file(script_path, script, mode=0o755)


def config_of_argv(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """A point.json's training argv -> its gin files and bindings (`KEY = VALUE`), MODEL_DIR's
  left out."""
  files = [a.split("=", 1)[1] for a in argv if a.startswith("--gin_file=")]
  bindings = [
    f"{key} = {value}"
    for key, _, value in (a[len("--gin.") :].partition("=") for a in argv if a.startswith("--gin."))
    if key != "MODEL_DIR"
  ]
  return files, bindings


# A point's own files, which a copied run does not bring.
_OWN_FILES = (POINT_FILE, COMMAND_FILE, STATUS_FILE)
COPYING_DIR = ".copying"  # under SWEEP_DIR: copies being made, swapped in whole


def copy_run(source: str, model_dir: str) -> bool:
  """Makes `model_dir` the done run `source` holds (the same config): its checkpoints,
  metrics, events and log are copied; its point.json and command.sh stay this sweep's.

  The copy is made beside the sweep's points and swapped in whole, so a copy cut
  short leaves the point as it was (what an earlier attempt left there goes with
  the swap). Returns False, copying nothing, when the source did not stay done
  while it was copied (rerun or removed meanwhile): the point then runs.
  """
  before = status(source)
  sweep_dir, name = os.path.split(model_dir)
  staging = os.path.join(sweep_dir, COPYING_DIR, f"{name}.{os.getpid()}")
  shutil.rmtree(staging, ignore_errors=True)
  try:
    shutil.copytree(
      source,
      staging,
      symlinks=True,
      ignore=lambda d, names: [
        n for n in names if d == source and (n in _OWN_FILES or n.startswith("."))
      ],
    )
  except (OSError, shutil.Error):
    shutil.rmtree(staging, ignore_errors=True)
    if os.path.isdir(source):
      raise
    return False
  if before.get("status") != DONE or status(source) != before:
    shutil.rmtree(staging, ignore_errors=True)
    return False
  for own in (POINT_FILE, COMMAND_FILE):
    if os.path.exists(os.path.join(model_dir, own)):
      shutil.copy2(os.path.join(model_dir, own), os.path.join(staging, own))
  with open(os.path.join(staging, LOG_FILE), "a") as log:
    log.write(
      f"{ATTEMPT_HEADER}{time.strftime('%Y-%m-%d %H:%M:%S')}: copied from {source} "
      "(the same config and environment), not run again\n"
    )
  # This sweep spent no time on it; the run's own time stays on record (a copy's source
  # may itself be a copy: its source's time).
  record = {
    "status": DONE,
    "returncode": 0,
    "wall_s": 0.0,
    "attempts": 0,
    "finished": time.time(),
    "reused_from": source,
    "source_wall_s": float(before.get("wall_s") or before.get("source_wall_s") or 0.0),
  }
  if provenance.ENVIRONMENT_KEY in before:  # what the run ran on, not this host
    record[provenance.ENVIRONMENT_KEY] = before[provenance.ENVIRONMENT_KEY]
  write_json(os.path.join(staging, STATUS_FILE), record)
  old = f"{staging}.old"
  if os.path.isdir(model_dir):
    os.replace(model_dir, old)
  os.replace(staging, model_dir)
  shutil.rmtree(old, ignore_errors=True)
  return True


def status(model_dir: str) -> dict[str, Any]:
  return read_json(os.path.join(model_dir, STATUS_FILE)) or {}


def is_done(model_dir: str) -> bool:
  return status(model_dir).get("status") == DONE


ATTEMPT_HEADER = "=== "  # the line the executors write before each attempt's output


def last_lines(path: str, count: int = ERROR_LINES) -> list[str]:
  """The last lines of the log's last attempt."""
  try:
    with open(path, errors="replace") as f:
      lines = [line.rstrip("\n") for line in f if line.strip()]
  except FileNotFoundError:
    return []
  starts = [i for i, line in enumerate(lines) if line.startswith(ATTEMPT_HEADER)]
  lines = lines[starts[-1] + 1 :] if starts else lines
  return lines[-count:]


# The libraries' own log lines (absl's `I1206 12:00:00.000 ...`, `E0000 00:00:...`, and
# the notice before absl's C++ logging starts): never what went wrong with a point.
_LIBRARY_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d\d|WARNING: All log messages before absl)")


def error_line(lines: list[str], returncode: Optional[int] = None) -> str:
  """The line that says what went wrong: the entry point's `error: ...`, else the last line
  that is not a library's log line, else what the exit code says."""
  for line in reversed(lines):
    if line.startswith("error: ") or "Error" in line.split(":")[0]:
      return line
  own = [line for line in lines if not _LIBRARY_LINE.match(line)]
  if own:
    return own[-1]
  if returncode is None:
    return ""
  if returncode in (-2, -15, 130, 143):
    return f"stopped by a signal (exit {returncode}) before it printed anything of its own"
  return f"exited with code {returncode} before it printed anything of its own"


def record_attempt(model_dir: str, returncode: int, seconds: float) -> dict[str, Any]:
  """status.json after an attempt: done, failed (with the log's last lines) or interrupted,
  and what it ran on (`provenance.environment`: this host, the commit of the working
  directory, where the points' commands run)."""
  old = status(model_dir)
  if returncode == 0:
    outcome = DONE
  elif returncode in (-2, -15, 130, 143):  # SIGINT/SIGTERM: saved its step; resumable
    outcome = INTERRUPTED
  else:
    outcome = FAILED
  record = {
    "status": outcome,
    "returncode": returncode,
    "wall_s": float(old.get("wall_s", 0.0)) + seconds,
    "attempts": int(old.get("attempts", 0)) + 1,
    "finished": time.time(),
    provenance.ENVIRONMENT_KEY: provenance.environment(os.getcwd()),
  }
  if outcome != DONE:
    lines = last_lines(os.path.join(model_dir, LOG_FILE))
    record["error"] = error_line(lines, returncode)
    record["log_tail"] = lines
  write_json(os.path.join(model_dir, STATUS_FILE), record)
  return record


def metrics_path(model_dir: str) -> str:
  return layout.metrics_file(model_dir)
