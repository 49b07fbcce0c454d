r"""Archives: a sweep's results, compact and portable, for figures redrawn from the repo.

    python -m prompt_tuning.sweep archive --sweep_dir=build/scaling/figure1 \
      --archive_dir=results/figure1
    python -m prompt_tuning.sweep archive --merge=results/a,results/b --archive_dir=results/ab
    python -m prompt_tuning.sweep report --sweep_dir=results/figure1 --out_dir=build/figure1

A sweep directory (points.py) lives under build/ with the checkpoints, events and
logs of the machine that ran it. An archive keeps what `report` and
`--reuse_from` read, in the same layout, with no absolute path of that machine:

    ARCHIVE/
      archive.json       marks an archive (its format): nothing runs or reports into it
      sweep.json         the sweep's (name, axes, metric, ...), listing the points archived
      <point>/
        point.json       its axes, command and config digest; model_dir is the point's
                         name, the command's MODEL_DIR build/rerun/<sweep>/<point>
        status.json      done / failed (its error line) / ...: as the sweep recorded it,
                         a copy's source relative to the repository (or $ELSEWHERE/...)
        metrics.jsonl    every `start` and evaluation line, the last training line, and a
                         `thinned` line for the training lines left out (their count and
                         median tokens/s, which results.csv reports)
        config.gin       the operative config; MODEL_DIR as in point.json, the repository's
                         paths relative to its root
        provenance.json  the git commit, jax/jaxlib versions and CPU model it ran on (as
                         the sweep recorded them, or else the archiving machine's, which
                         it says), and `rerun`: the command that trains it again from the
                         root of any clone
        best/best.json, best/encoder.prompt.prompt.npy       the best step's prompt
        numpy_checkpoints/checkpoint_<step>/encoder.prompt.prompt.npy   the last prompt

Paths of the machine become relative or symbolic: the directory the sweep's
commands ran in (the repository) relative to it, the sweep directory
$SWEEP_DIR, the interpreter `python`. No file records when it was archived, so
archiving again gives the same bytes. Archiving into an archive of the same sweep
updates it, and archives of slices of one sweep (`--only`) merge: each point
keeps its done run; a point done in two with other evaluation values stops the
merge, naming it, before anything is written. Each file is written whole.
"""

import dataclasses
import json
import os
import pathlib
import re
import shlex
import sys
from typing import Any, Callable, Optional, Sequence, Union

from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import storage
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import provenance
from prompt_tuning.sweep import report as report_lib
from prompt_tuning.sweep import spec

FORMAT = 1  # archive.json's "format": what this code reads and writes
PROVENANCE_FILE = "provenance.json"
RERUN_DIR = "build/rerun"  # where a point's `rerun` command trains it, under a clone's root
SWEEP_DIR_SYMBOL, ELSEWHERE_SYMBOL = "$SWEEP_DIR", "$ELSEWHERE"
# MODEL_DIR's statement in an operative config: gin wraps a long value onto indented lines.
_MODEL_DIR_STATEMENT = re.compile(r"(?m)^MODEL_DIR = .*(?:\n[ \t]+.*)*")
RECORDED = "recorded by the sweep when the point ran (its status.json)"
NOT_RECORDED = (
  "the archiving machine's: the sweep recorded none when the point ran, which "
  "may have been on another machine or commit"
)
_DROPPED_STATUS_KEYS = ("log_tail",)  # the log's last lines: the machine's paths, tracebacks
_TEMPORARY = re.compile(r"\.tmp\.\d+$")  # storage.write_file's, left by a kill

# A file's content: bytes, or a file to copy as it is (a prompt).
Content = Union[bytes, pathlib.Path]


class ArchiveError(ValueError):
  """An archive that cannot be made or merged; the message is one line."""


def _json_bytes(value: Any) -> bytes:
  return (json.dumps(value, indent=1) + "\n").encode()


@dataclasses.dataclass
class Point:
  """One point of an archive: its files, by path inside the point's directory."""

  name: str
  files: dict[str, Content]
  where: str  # the archive or sweep directory it came from (for messages)

  def record(self, name: str) -> dict:
    content = self.files.get(name)
    data = content.read_bytes() if isinstance(content, pathlib.Path) else content
    return json.loads(data) if data else {}

  @property
  def done(self) -> bool:
    return self.record(points_lib.STATUS_FILE).get("status") == points_lib.DONE

  def evaluations(self) -> dict[int, dict]:
    """The evaluation values by step (a step's last line), time stamps aside."""
    evals = {}
    for line in self.files.get(layout.METRICS_FILE, b"").decode().splitlines():
      try:
        record = json.loads(line)
      except ValueError:
        continue
      if "event" not in record and any(k.startswith("eval/") for k in record):
        evals[int(record["step"])] = {k: v for k, v in record.items() if k != "time"}
    return evals


@dataclasses.dataclass
class Archive:
  meta: dict  # sweep.json
  points: dict[str, Point]
  where: str


# What may follow a path in text: "/" (captured), or what ends it (a sentence's full stop
# included; "." before a letter is a longer name, as /a/b.old is not /a/b).
_PATH_END = r"(/|(?=[\s'\"`\\)\]},:;>|]|\.(?:\s|$)|$))"


class _Paths:
  """Rewrites a machine's absolute paths in text: longest first, whole path components."""

  def __init__(self, rules: Sequence[tuple[str, Callable[[str], str]]]):
    # (absolute path, the replacement given what follows it: "/" or "")
    self._rules = sorted(((p, r) for p, r in rules if len(p) > 1), key=lambda rule: -len(rule[0]))

  def text(self, text: str) -> str:
    for path, replace in self._rules:
      text = re.sub(re.escape(path) + _PATH_END, lambda m, replace=replace: replace(m[1]), text)
    return text

  def value(self, value: Any) -> Any:
    if isinstance(value, str):
      return self.text(value)
    if isinstance(value, list):
      return [self.value(v) for v in value]
    if isinstance(value, dict):
      return {k: self.value(v) for k, v in value.items()}
    return value


def _variants(*paths: Optional[str]) -> set[str]:
  out = set()
  for path in paths:
    if path and os.path.isabs(path):
      out |= {os.path.normpath(path), os.path.realpath(path)}
  return out


def _command_paths(script: str) -> tuple[Optional[str], Optional[str]]:
  """command.sh -> (the directory it runs in, its interpreter)."""
  cwd = interpreter = None
  text = script.replace("\\\n", " ")
  for line in text.splitlines():
    try:
      words = shlex.split(line)
    except ValueError:
      continue
    if words[:1] == ["cd"] and len(words) > 1:
      cwd = words[1]
    if words[:2] == ["exec", "env"]:
      interpreter = next((w for w in words[2:] if "=" not in w), None)
  return cwd, interpreter


def _portable_source(source: str, roots: Sequence[str]) -> str:
  """A copy's source (reused_from): relative to the repository if in it, else symbolic."""
  if not os.path.isabs(source):
    return source
  for root in roots:
    if points_lib.is_inside(source, root):
      return os.path.relpath(os.path.realpath(source), os.path.realpath(root))
  return "/".join([ELSEWHERE_SYMBOL] + os.path.normpath(source).split(os.sep)[-2:])


def thin_metrics(path: str) -> bytes:
  """metrics.jsonl, compact: every event and evaluation line, the last training line (the
  last one at the largest step), and a `thinned` line for the training lines left out."""
  try:
    with open(path) as f:
      lines = [line.rstrip("\n") for line in f]
  except FileNotFoundError:
    return b""
  kept, training, left_out = [], [], 0
  for i, line in enumerate(lines):
    try:
      record = json.loads(line)
    except ValueError:
      continue  # a line cut by a kill
    if not isinstance(record, dict):
      continue
    if record.get("event") == report_lib.THINNED:
      left_out += int(record.get("left_out", 0))
    elif "event" in record or any(k.startswith("eval/") for k in record):
      kept.append(i)
    elif any(k.startswith("train/") for k in record):
      training.append((int(record["step"]), i))
  if training:
    last = max(training)[1]
    kept.append(last)
    left_out += len(training) - 1
  out = [lines[i] for i in sorted(kept)]
  if left_out:
    speed = report_lib.tokens_per_second(report_lib.read_metrics(path))
    out.append(
      json.dumps({"event": report_lib.THINNED, "left_out": left_out, "tokens_per_s": speed})
    )
  return "".join(line + "\n" for line in out).encode()


def _last_prompt(model_dir: str) -> Optional[str]:
  """The newest numpy checkpoint's prompt file, or None (model tuning, old runs)."""
  directory = layout.numpy_dir(model_dir)
  names = os.listdir(directory) if os.path.isdir(directory) else []
  steps = sorted(s for s in map(layout.numpy_step, names) if s is not None)
  for step in reversed(steps):
    path = os.path.join(layout.numpy_step_dir(model_dir, step), layout.PROMPT_FILE_NAME)
    if os.path.isfile(path):
      return path
  return None


def rerun_command(record: dict) -> str:
  """A point.json's command as a shell line that runs from the root of any clone."""
  variables = " ".join(f"{k}={shlex.quote(v)}" for k, v in (record.get("env") or {}).items())
  return (variables + " " if variables else "") + points_lib.shell_command(
    ["python", *record["argv"]]
  )


class _Machine:
  """The archiving machine's environment, asked for once and only if a point needs it."""

  def __init__(self):
    self._environment = None

  def environment(self) -> dict:
    if self._environment is None:
      self._environment = provenance.environment(provenance.repo_root())
    return self._environment


def _archive_point(sweep_dir: str, name: str, sweep_name: str, machine: _Machine) -> Point:
  """One point of a live sweep directory, made portable."""
  model_dir = os.path.join(sweep_dir, name)
  record = points_lib.read_json(os.path.join(model_dir, points_lib.POINT_FILE)) or {}
  status = points_lib.status(model_dir)
  try:
    with open(os.path.join(model_dir, points_lib.COMMAND_FILE)) as f:
      cwd, interpreter = _command_paths(f.read())
  except FileNotFoundError:
    cwd = interpreter = None
  roots = sorted(_variants(cwd, provenance.repo_root()), key=len, reverse=True)
  rules = [(p, lambda after: "python" + after) for p in _variants(interpreter, sys.executable)]
  rules += [
    (p, lambda after: SWEEP_DIR_SYMBOL + after)
    for p in _variants(os.path.abspath(sweep_dir), os.path.dirname(record.get("model_dir") or ""))
  ]
  rules += [(p, lambda after: "" if after else ".") for p in roots]
  paths = _Paths(rules)
  rerun_dir = f"{RERUN_DIR}/{sweep_name}/{name}"

  files: dict[str, Content] = {}
  if record:
    record = paths.value(record)
    record["model_dir"] = name  # relative to the sweep directory
    record["argv"] = [
      f"--gin.MODEL_DIR={spec.gin_text(rerun_dir)}" if a.startswith("--gin.MODEL_DIR=") else a
      for a in record.get("argv", [])
    ]
    files[points_lib.POINT_FILE] = _json_bytes(record)
  if status:
    status = {k: v for k, v in status.items() if k not in _DROPPED_STATUS_KEYS}
    if "reused_from" in status:
      status["reused_from"] = _portable_source(status["reused_from"], roots)
    files[points_lib.STATUS_FILE] = _json_bytes(paths.value(status))
  metrics = thin_metrics(layout.metrics_file(model_dir))
  if metrics:
    files[layout.METRICS_FILE] = paths.text(metrics.decode()).encode()
  try:
    with open(layout.config_file(model_dir)) as f:
      statement = f"MODEL_DIR = {spec.gin_text(rerun_dir)}"
      config = _MODEL_DIR_STATEMENT.sub(lambda _: statement, f.read())
    files[layout.CONFIG_FILE] = paths.text(config).encode()
  except FileNotFoundError:
    pass
  best = layout.best_dir(model_dir)
  best_record = points_lib.read_json(os.path.join(best, layout.BEST_RECORD))
  best_relative = os.path.relpath(best, model_dir)
  if best_record is not None:
    files[f"{best_relative}/{layout.BEST_RECORD}"] = _json_bytes(paths.value(best_record))
  for prompt in (os.path.join(best, layout.PROMPT_FILE_NAME), _last_prompt(model_dir)):
    if prompt and os.path.isfile(prompt):
      files[os.path.relpath(prompt, model_dir).replace(os.sep, "/")] = pathlib.Path(prompt)
  # What it ran on: as the sweep recorded it, as an archive it was copied from said, or this
  # machine's (and the file says which).
  copied = points_lib.read_json(os.path.join(model_dir, PROVENANCE_FILE)) or {}
  if provenance.ENVIRONMENT_KEY in status:
    environment, source = status[provenance.ENVIRONMENT_KEY], RECORDED
  elif copied.get("environment"):
    environment, source = copied["environment"], copied.get("environment_source")
  else:
    environment, source = machine.environment(), NOT_RECORDED
  files[PROVENANCE_FILE] = _json_bytes(
    {
      "environment": environment,
      "environment_source": source,
      "rerun": rerun_command(record) if record.get("argv") else None,
    }
  )
  return Point(name, files, sweep_dir)


def kind(directory: str) -> str:
  """'archive' or 'sweep' (a sweep directory).

  Raises:
    ArchiveError: it is neither, or an archive of a newer format.
  """
  if not os.path.isdir(directory):
    raise ArchiveError(f"{directory} does not exist; give a sweep directory or an archive")
  if points_lib.is_archive(directory):
    made = (points_lib.read_json(os.path.join(directory, points_lib.ARCHIVE_FILE)) or {}).get(
      "format"
    )
    if made != FORMAT:
      raise ArchiveError(
        f"{directory} is an archive of format {made!r}; this code reads "
        f"format {FORMAT} (update the code)"
      )
    return "archive"
  if os.path.isfile(os.path.join(directory, points_lib.SWEEP_FILE)) or _point_names(directory):
    return "sweep"
  raise ArchiveError(
    f"{directory} is neither a sweep directory nor an archive (no "
    f"{points_lib.SWEEP_FILE}, no */{points_lib.POINT_FILE})"
  )


def _point_names(directory: str) -> list[str]:
  return sorted(
    n
    for n in os.listdir(directory)
    if os.path.isfile(os.path.join(directory, n, points_lib.POINT_FILE))
  )


def _meta(directory: str, names: Sequence[str]) -> dict:
  """sweep.json, or (a sweep from before it was written) what `report` rebuilds."""
  meta = points_lib.read_json(os.path.join(directory, points_lib.SWEEP_FILE))
  if meta is None and names:
    first = points_lib.read_json(os.path.join(directory, names[0], points_lib.POINT_FILE))
    meta = {
      "name": first["sweep"],
      "axes": [a for a, _, _ in first["axes"]],
      "seed_axes": first["seed_axes"],
      "average_axes": first.get("average_axes", []),
    }
  return meta or {}


def read(directory: str) -> Archive:
  """A sweep directory, archived in memory (its prompts are read when written), or an
  archive as it is."""
  names = _point_names(directory)
  meta = _meta(directory, names)
  if kind(directory) == "archive":
    points = {}
    for name in names:
      root = os.path.join(directory, name)
      files: dict[str, Content] = {}
      for folder, _, found in os.walk(root):
        for file in found:
          path = os.path.join(folder, file)
          if _TEMPORARY.search(file):
            continue
          relative = os.path.relpath(path, root).replace(os.sep, "/")
          files[relative] = pathlib.Path(path) if file.endswith(".npy") else open(path, "rb").read()
      points[name] = Point(name, files, directory)
    return Archive(meta, points, directory)
  if meta.get("points"):  # the points of the sweep as it is now (report's rows)
    names = [n for n in names if n in set(meta["points"])]
  meta = dict(meta, points=list(names))
  machine = _Machine()
  points = {n: _archive_point(directory, n, meta.get("name", ""), machine) for n in names}
  return Archive(meta, points, directory)


def _check_same_sweep(a: Archive, b: Archive) -> None:
  if a.meta.get("name") != b.meta.get("name"):
    raise ArchiveError(
      f"{a.where} holds sweep {a.meta.get('name')!r} and {b.where} sweep "
      f"{b.meta.get('name')!r}; merge archives of one sweep"
    )
  for key in sorted((set(a.meta) | set(b.meta)) - {"points"}):
    if a.meta.get(key) != b.meta.get(key):
      raise ArchiveError(
        f"{a.where} and {b.where} differ in the sweep's {key} "
        f"({a.meta.get(key)!r}, {b.meta.get(key)!r}): not slices of one sweep"
      )


def _progress(point: Point) -> tuple[int, int]:
  metrics = point.files.get(layout.METRICS_FILE, b"")
  size = len(metrics.read_bytes() if isinstance(metrics, pathlib.Path) else metrics)
  return len(point.evaluations()), size


def _pick(old: Point, new: Point) -> Point:
  """The run a merge keeps of a point two archives hold: the done one; of two done ones
  with the same evaluations, the later; of two not done, the one further on (more
  evaluations, then more of metrics.jsonl: a started run over a copy not started), the
  later on a tie."""
  commands = [p.record(points_lib.POINT_FILE) for p in (old, new)]
  keys = ["argv", "env"] + (
    ["config_sha256"] if all("config_sha256" in c for c in commands) else []
  )
  if any(commands[0].get(k) != commands[1].get(k) for k in keys):
    raise ArchiveError(
      f"point {new.name} was made by different commands in {old.where} and "
      f"{new.where} (the sweep file changed?); they are not one sweep's runs"
    )
  if old.done and new.done and old.evaluations() != new.evaluations():
    raise ArchiveError(
      f"point {new.name} is done in {old.where} and in {new.where} with "
      "different evaluation results; remove it from one of them and merge "
      "again"
    )
  if old.done and not new.done:
    return old
  if not old.done and not new.done and _progress(old) > _progress(new):
    return old
  # The same run archived again on another machine or commit: its earlier record of the
  # environment (the archiving machine's, when the sweep recorded none) stays.
  same = all(
    old.files.get(f) == new.files.get(f) for f in (points_lib.STATUS_FILE, layout.METRICS_FILE)
  )
  if (
    same
    and new.record(PROVENANCE_FILE).get("environment_source") == NOT_RECORDED
    and (PROVENANCE_FILE in old.files)
  ):
    new = dataclasses.replace(new, files={**new.files, PROVENANCE_FILE: old.files[PROVENANCE_FILE]})
  return new


def merge(archives: Sequence[Archive]) -> Archive:
  """Archives of one sweep -> one: every point, each with its done run (`_pick`).

  Raises:
    ArchiveError: other sweeps, a point made by other commands, or done in two with
      other evaluation values.
  """
  merged: dict[str, Point] = {}
  for archive in archives:
    _check_same_sweep(archives[0], archive)
    for name, point in archive.points.items():
      merged[name] = point if name not in merged else _pick(merged[name], point)
  order = lambda name: (merged[name].record(points_lib.POINT_FILE).get("index", 0), name)
  names = sorted(merged, key=order)
  meta = dict(archives[-1].meta, points=names)
  return Archive(meta, {n: merged[n] for n in names}, archives[-1].where)


def _put(path: str, content: Content) -> bool:
  """Writes a file whole, unless it already holds these bytes; whether it wrote."""
  data = content.read_bytes() if isinstance(content, pathlib.Path) else content
  try:
    with open(path, "rb") as f:
      if f.read() == data:
        return False
  except FileNotFoundError:
    pass
  os.makedirs(os.path.dirname(path), exist_ok=True)
  storage.write_file(path, data)
  return True


def write(archive: Archive, archive_dir: str) -> None:
  """Writes the archive: changed files only, each whole; a point's files it no longer has
  (an older last prompt) go."""
  os.makedirs(archive_dir, exist_ok=True)
  _put(
    os.path.join(archive_dir, points_lib.ARCHIVE_FILE),
    _json_bytes(
      {
        "format": FORMAT,
        "what": "an archive of a sweep (prompt_tuning/sweep/archive.py); report: python -m "
        "prompt_tuning.sweep report --sweep_dir=<this directory> --out_dir=<another>",
      }
    ),
  )
  for name, point in archive.points.items():
    root = os.path.join(archive_dir, name)
    for relative, content in point.files.items():
      _put(os.path.join(root, relative), content)
    for folder, _, found in os.walk(root, topdown=False):
      for file in found:
        relative = os.path.relpath(os.path.join(folder, file), root).replace(os.sep, "/")
        if relative not in point.files:
          os.remove(os.path.join(folder, file))
      if folder != root and not os.listdir(folder):
        os.rmdir(folder)
  _put(os.path.join(archive_dir, points_lib.SWEEP_FILE), _json_bytes(archive.meta))


def archive(sources: Sequence[str], archive_dir: str) -> dict[str, Any]:
  """Archives sweep directories and/or merges archives of one sweep into `archive_dir`.

  An archive already in `archive_dir` is merged in first (so archiving again updates it).
  Everything is read and checked before anything is written.

  Returns:
    {"archive_dir", "points", "done", "bytes"} of the archive written.
  Raises:
    ArchiveError: a source that is neither a sweep directory nor an archive, an
      archive_dir inside a sweep directory (or holding one, or other files), sources of
      other sweeps, a point done in two with other evaluation values.
  """
  if not sources:
    raise ArchiveError(
      "give --sweep_dir=DIR (a sweep directory or an archive) and/or "
      "--merge=A,B (archives of one sweep)"
    )
  if not archive_dir:
    raise ArchiveError("--archive_dir is required: where the archive goes (e.g. results/<name>)")
  kinds = {source: kind(source) for source in sources}
  for source, what in kinds.items():
    same = os.path.realpath(source) == os.path.realpath(archive_dir)
    overlap = points_lib.is_inside(archive_dir, source) or points_lib.is_inside(source, archive_dir)
    if overlap and not (same and what == "archive"):
      raise ArchiveError(
        f"--archive_dir={archive_dir} overlaps {source}: put the archive "
        "outside the sweep directory (e.g. results/<name>)"
      )
  inputs = list(sources)
  if os.path.isdir(archive_dir) and os.listdir(archive_dir):
    if not points_lib.is_archive(archive_dir):
      what = (
        "is a sweep directory"
        if _point_names(archive_dir)
        or os.path.isfile(os.path.join(archive_dir, points_lib.SWEEP_FILE))
        else "holds other files"
      )
      raise ArchiveError(
        f"--archive_dir={archive_dir} {what}, not an archive; give a new "
        "directory or an archive of this sweep"
      )
    kind(archive_dir)  # its format
    if not any(os.path.realpath(s) == os.path.realpath(archive_dir) for s in sources):
      inputs.insert(0, archive_dir)  # updated: its points are merged with the sources'
  merged = merge([read(source) for source in inputs])
  if not merged.points:
    raise ArchiveError(
      f"{', '.join(sources)}: no sweep points to archive (no */{points_lib.POINT_FILE})"
    )
  write(merged, archive_dir)
  size = sum(
    os.path.getsize(os.path.join(folder, f))
    for folder, _, found in os.walk(archive_dir)
    for f in found
  )
  return {
    "archive_dir": archive_dir,
    "points": len(merged.points),
    "done": sum(p.done for p in merged.points.values()),
    "bytes": size,
  }
