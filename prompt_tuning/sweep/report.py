"""`report`: a sweep's results from what is on disk, partial sweeps included.

Reads each point's point.json, status.json and metrics.jsonl (nothing else, so
it can be rerun at any time, and reads an archive of the sweep, archive.py, as it
reads the sweep directory) and writes, in `out_dir` (default: SWEEP_DIR; never
an archive, which holds the results a figure is drawn from and nothing else):

* results.csv: a row per point: its axis values, status, parameter counts
  (total, the model's without the prompt, and trained), steps, the best step (early stopping: the evaluation
  with the best main metric, the earliest on a tie), every evaluation metric at
  that step (`<metric>@best`) and at the last evaluation (`<metric>@last`), the
  last train loss, wall time and tokens/s (both measured, so they vary between
  runs of the same sweep; every other column is reproducible);
* summary.md: for each setting, mean ± sample std over the seed axes (of the
  mean over the sweep's `average_axes`, such as SuperGLUE's tasks, if any);
* plots/*.png: the main metric against the model's parameters (log scale) and
  against each numeric axis, one line per setting, a band for ± std over seeds.
"""

import collections
import csv
import dataclasses
import io
import json
import os
import re
import statistics
import textwrap
from typing import Any, Iterable, Optional, Sequence

from prompt_tuning.checkpoints import storage
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.training import early_stopping

RESULTS_FILE = "results.csv"
SUMMARY_FILE = "summary.md"
PLOTS_DIR = "plots"
PARAMETERS = "parameters"  # the x axis of the paper's Figures 1 and 3
SCORE = "eval/score"  # the mean over tasks, when a mixture has several
TEST = "test"  # TEST_SPLIT's metrics are eval/<task>/test/<metric>
TEST_SCORE = "eval/test/score"
MEASURED = ("wall_s", "tokens_per_s")  # columns that differ between identical runs


THINNED = "thinned"  # an archive's line for the training lines it left out (archive.py)


@dataclasses.dataclass
class Metrics:
  """A point's metrics.jsonl, read: a step's last line wins.

  Attributes:
    starts: the `start` lines (one per run segment).
    train: the training records (`train/...`) by step.
    evals: the evaluation records (`eval/...`) by step.
    thinned: an archive's `{"event": "thinned", "left_out": <training lines>,
      "tokens_per_s": <their median tokens/s>}`, or None: what the left-out lines
      gave results.csv.
  """

  starts: list[dict]
  train: dict[int, dict]
  evals: dict[int, dict]
  thinned: Optional[dict] = None


def read_metrics(path: str) -> Metrics:
  metrics = Metrics([], {}, {})
  try:
    with open(path) as f:
      lines = f.readlines()
  except FileNotFoundError:
    return metrics
  for line in lines:
    try:
      record = json.loads(line)
    except ValueError:
      continue  # a line cut by a kill
    if record.get("event") == "start":
      metrics.starts.append(record)
    elif record.get("event") == THINNED:
      metrics.thinned = record
    if "event" in record:
      continue
    step = int(record["step"])
    values = {k: v for k, v in record.items() if k not in ("step", "time")}
    if any(k.startswith("eval/") for k in values):
      metrics.evals[step] = values
    if any(k.startswith("train/") for k in values):
      metrics.train[step] = values
  return metrics


def tokens_per_second(metrics: Metrics) -> Optional[float]:
  """The median of the training lines' tokens/s (an archive's record of it, if thinned)."""
  if metrics.thinned is not None:
    return metrics.thinned.get("tokens_per_s")
  speeds = [
    v["train/tokens_per_second"] for v in metrics.train.values() if "train/tokens_per_second" in v
  ]
  return statistics.median(speeds) if speeds else None


def _task_metrics(names: Iterable[str], test: bool = False) -> dict[str, list[str]]:
  """Decoded metrics (`eval/<task>/<metric>`; test: `eval/<task>/test/<metric>`) by task
  (not `early_stopping.NOT_TASKS`', such as `eval/wayward/nearest_match`)."""
  tasks = collections.defaultdict(list)
  for name in names:
    parts = name.split("/")
    if (len(parts) == 4 and parts[2] == TEST) if test else len(parts) == 3:
      if parts[0] == "eval" and name != TEST_SCORE and parts[1] not in early_stopping.NOT_TASKS:
        tasks[parts[1]].append(name)
  return dict(tasks)


def test_metric(metric: str) -> str:
  """The test split's counterpart of a validation metric (TEST_SPLIT = 'test')."""
  if metric == SCORE:
    return TEST_SCORE
  parts = metric.split("/")
  return "/".join(parts[:2] + [TEST] + parts[2:]) if len(parts) == 3 else metric + "@" + TEST


def main_metric(configured: Optional[str], evals: dict[int, dict]) -> Optional[str]:
  """The configured metric, else the one decoded metric, else SCORE (a mean over tasks)."""
  if configured:
    return configured
  names = sorted({k for values in evals.values() for k in values})
  tasks = _task_metrics(names)
  if sum(len(v) for v in tasks.values()) == 1:
    return next(iter(tasks.values()))[0]
  if tasks:
    return SCORE
  return "eval/loss" if "eval/loss" in names else None


def _add_score(evals: dict[int, dict]) -> None:
  """SCORE at each evaluation: the mean over tasks of each task's mean metric (as
  SuperGLUE's score averages a task's metrics first)."""
  for values in evals.values():
    for test, score in ((False, SCORE), (True, TEST_SCORE)):
      tasks = _task_metrics(values, test)
      if len(tasks) > 1 or any(len(v) > 1 for v in tasks.values()):
        values[score] = statistics.fmean(
          statistics.fmean(values[m] for m in ms) for ms in tasks.values()
        )


def point_row(model_dir: str) -> Optional[dict[str, Any]]:
  """One point's row of results.csv, from its files; None if not a sweep point."""
  record = points_lib.read_json(os.path.join(model_dir, points_lib.POINT_FILE))
  if record is None:
    return None
  status = points_lib.status(model_dir)
  metrics = read_metrics(points_lib.metrics_path(model_dir))
  starts, train, evals = metrics.starts, metrics.train, metrics.evals
  _add_score(evals)
  row: dict[str, Any] = {"name": record["name"], "index": record["index"]}
  for axis, label, value in record["axes"]:
    row[axis] = value
  row["status"] = status.get("status") or ("started" if starts else "not started")
  if starts:
    row["parameters_total"] = starts[-1]["parameters_total"]
    row["parameters_model"] = starts[-1].get("parameters_model")
    row["parameters_trained"] = starts[-1]["parameters_trainable"]
    row["train_steps"] = starts[-1].get("train_steps")
  row["steps"] = max(train) if train else (starts[-1]["step"] if starts else 0)
  metric = main_metric(record.get("metric"), evals)
  row["metric"] = metric
  scored = [(step, v[metric]) for step, v in sorted(evals.items()) if metric in v]
  if scored:
    sign = 1 if record.get("metric_mode", "max") == "max" else -1
    best_step = max(scored, key=lambda sv: (sign * sv[1], -sv[0]))[0]
    last_step = scored[-1][0]
    row["best_step"] = best_step
    row["best"] = evals[best_step][metric]
    row["last"] = evals[last_step][metric]
    if test_metric(metric) in evals[best_step]:  # the test split at the chosen step
      row["test"] = evals[best_step][test_metric(metric)]
    for name in sorted(evals[best_step]):
      row[f"{name}@best"] = evals[best_step][name]
    for name in sorted(evals[last_step]):
      row[f"{name}@last"] = evals[last_step][name]
  if train:
    row["train/loss"] = train[max(train)].get("train/loss")
    row["tokens_per_s"] = tokens_per_second(metrics)
  row["wall_s"] = status.get("wall_s")
  row["error"] = status.get("error", "") if row["status"] != points_lib.DONE else ""
  return row


def collect(sweep_dir: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
  """(sweep.json, the points' rows in the sweep's order) from the files under sweep_dir."""
  meta = points_lib.read_json(os.path.join(sweep_dir, points_lib.SWEEP_FILE)) or {}
  rows = []
  for name in sorted(os.listdir(sweep_dir)) if os.path.isdir(sweep_dir) else []:
    path = os.path.join(sweep_dir, name)
    if os.path.isdir(path):
      row = point_row(path)
      if row is not None:
        rows.append(row)
  if meta.get("points"):  # points of an earlier version of the sweep are not its results
    rows = [r for r in rows if r["name"] in set(meta["points"])]
  rows.sort(key=lambda r: (r["index"], r["name"]))  # the sweep's order
  if not meta and rows:  # rebuilt from the points alone
    first = points_lib.read_json(os.path.join(sweep_dir, rows[0]["name"], points_lib.POINT_FILE))
    meta = {
      "name": first["sweep"],
      "axes": [a for a, _, _ in first["axes"]],
      "seed_axes": first["seed_axes"],
      "average_axes": first.get("average_axes", []),
    }
  return meta, rows


def _format(value: Any) -> str:
  if value is None:
    return ""
  if isinstance(value, float):
    return repr(value)
  return str(value)


def write_csv(rows: Sequence[dict[str, Any]], path: str) -> None:
  columns: list[str] = []
  for row in rows:
    columns += [k for k in row if k not in columns]
  # Measured columns last, so that the reproducible ones read first.
  columns = [c for c in columns if c not in MEASURED + ("error",)] + [
    c for c in MEASURED + ("error",) if c in columns
  ]
  text = io.StringIO()
  writer = csv.writer(text)
  writer.writerow(columns)
  for row in rows:
    writer.writerow([_format(row.get(c)) for c in columns])
  storage.write_file(path, text.getvalue())


class Setting:
  """The points of one setting (equal values on every axis but the seed and averaged ones).

  `runs` holds one value per seed combination whose points are all done: the
  mean over the averaged axes (the paper's SuperGLUE score is a mean over
  tasks) of each point's best (early-stopped) value, and likewise its last
  value and best step.
  """

  def __init__(self, key: tuple, rows: list[dict], seed_axes: Sequence[str]):
    self.key, self.rows = key, rows
    by_seed: dict[tuple, list[dict]] = {}
    for row in rows:
      by_seed.setdefault(tuple(row.get(a) for a in seed_axes), []).append(row)
    self.runs = []
    for group in by_seed.values():
      if all(r["status"] == points_lib.DONE and "best" in r for r in group):
        keys = ["best", "last", "best_step"] + (["test"] if all("test" in r for r in group) else [])
        self.runs.append({k: statistics.fmean(float(r[k]) for r in group) for k in keys})
    self.total = len(by_seed)
    self.parameters = sorted({r["parameters_model"] for r in rows if r.get("parameters_model")})

  def values(self, key: str = "best") -> list[float]:
    return [run[key] for run in self.runs if key in run]


def reported(rows: Sequence[dict]) -> str:
  """What tables and plots report: "test" (the test split at the step early stopping
  picks) when every done point has it (TEST_SPLIT), else "best" (validation)."""
  done = [r for r in rows if r["status"] == points_lib.DONE and "best" in r]
  return "test" if done and all("test" in r for r in done) else "best"


def settings(
  meta: dict, rows: Sequence[dict], keys: Optional[Sequence[str]] = None
) -> tuple[list[str], list[Setting]]:
  """The rows grouped by `keys` (default: the axes that are neither seeds nor averaged)."""
  seeds, averaged = meta.get("seed_axes", []), meta.get("average_axes", [])
  if keys is None:
    keys = [a for a in meta.get("axes", []) if a not in seeds and a not in averaged]
  groups: dict[tuple, list[dict]] = {}
  for row in rows:
    groups.setdefault(tuple(row.get(a) for a in keys), []).append(row)
  return list(keys), [Setting(k, g, seeds) for k, g in groups.items()]


def _mean_std(values: Sequence[float]) -> tuple[float, Optional[float]]:
  mean = statistics.fmean(values)
  return mean, (statistics.stdev(values) if len(values) > 1 else None)


def mean_std_text(values: Sequence[float], digits: int = 2) -> str:
  """`mean ± sample std` of the values (the mean alone for one, "—" for none)."""
  if not values:
    return "—"
  mean, std = _mean_std(values)
  return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def metric_label(rows: Sequence[dict]) -> str:
  """The points' main metric; `eval/<task>/accuracy` when it differs by task only."""
  names = sorted({r["metric"] for r in rows if r.get("metric")})
  if len(names) < 2:
    return names[0] if names else "the main metric"
  parts = [n.split("/") for n in names]
  if all(len(p) == 3 and p[0] == "eval" and p[2] == parts[0][2] for p in parts):
    return f"eval/<task>/{parts[0][2]}"
  return ", ".join(names)


def summary_markdown(meta: dict, rows: Sequence[dict]) -> str:
  seeds, averaged = meta.get("seed_axes", []), meta.get("average_axes", [])
  keys, groups = settings(meta, rows)
  metric = metric_label(rows)
  done = [r for r in rows if r["status"] == points_lib.DONE]
  score = f"the mean over {', '.join(averaged)} of " if averaged else ""
  lines = [
    f"# Sweep {meta.get('name', '')}",
    "",
    f"{len(done)}/{len(rows)} points done. Main metric: {score}`{metric}` at the best "
    "evaluation step (early stopping on the validation split) and at the last one; "
    f"mean ± sample std over {', '.join(seeds) or 'one run'} (n: runs done of runs).",
    "",
  ]
  test = reported(rows) == "test"
  if test:
    lines[-2] += (
      f" `test` is `{test_metric(metric)}`: the test split at the best step (chosen on validation)."
    )
  header = keys + ["n", "model parameters", f"best {metric}", "best step", f"last {metric}"]
  header += ["test"] if test else []
  lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for setting in groups:
    lines.append(
      "| "
      + " | ".join(
        [_format(v) for v in setting.key]
        + [
          f"{len(setting.runs)}/{setting.total}",
          ", ".join(f"{p:,}" for p in setting.parameters) or "—",
          mean_std_text(setting.values("best")),
          mean_std_text(setting.values("best_step"), digits=0),
          mean_std_text(setting.values("last")),
        ]
        + ([mean_std_text(setting.values("test"))] if test else [])
      )
      + " |"
    )
  failed = [r for r in rows if r["status"] not in (points_lib.DONE,)]
  if failed:
    lines += ["", "Not done:", ""]
    lines += [
      f"- `{r['name']}`: {r['status']}" + (f": {r['error']}" if r.get("error") else "")
      for r in failed
    ]
  return "\n".join(lines) + "\n"


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def plot_axes(meta: dict, rows: Sequence[dict]) -> list[str]:
  """The default x axes: parameters when they vary, then each numeric axis with 2+ values."""
  seeds = meta.get("seed_axes", [])
  candidates = []
  if len({r.get("parameters_model") for r in rows if r.get("parameters_model")}) > 1:
    candidates.append(PARAMETERS)
  for axis in meta.get("axes", []):
    values = {r.get(axis) for r in rows}
    if axis not in seeds and len(values) > 1 and all(_is_number(v) for v in values):
      candidates.append(axis)
  return candidates


def _safe(name: str) -> str:
  return re.sub(r"[^A-Za-z0-9._+-]", "_", name)


# Characters of the plot's title (fontsize 9) that fit across one 5.5-inch panel.
TITLE_CHARS_PER_PANEL = 80


def plot_title(meta: dict, metric: str, y: str, x: str, panels: int = 1) -> str:
  """What a plot shows, wrapped to the figure's width (a line per panel's width)."""
  seeds, averaged = meta.get("seed_axes", []), meta.get("average_axes", [])
  score = f"mean over {', '.join(averaged)} of " if averaged else ""
  seeds_text = f" (mean ± std over {', '.join(seeds)})" if seeds else ""
  chosen = "at the best step on validation" if y == "test" else "at the best step"
  text = (
    f"sweep {meta.get('name', '')}: {score}{metric} {chosen} vs "
    f"{'model parameters' if x == PARAMETERS else x}{seeds_text}"
  )
  return textwrap.fill(text, TITLE_CHARS_PER_PANEL * panels, break_on_hyphens=False)


def plot(
  meta: dict,
  rows: Sequence[dict],
  x: str,
  out_dir: str,
  lines: Optional[Sequence[str]] = None,
  panels: Optional[str] = None,
) -> Optional[str]:
  """The main metric at each point's best step (on the test split when the points
  have it, see `reported`) against `x`; returns the PNG's path.

  Args:
    x: PARAMETERS or a numeric axis.
    lines: axes whose values make the lines (default: the other non-seed axes
      with 2+ values, except those that only follow x, such as a size axis when
      x is PARAMETERS).
    panels: an axis whose values make side-by-side panels (default: none).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  seeds, averaged = meta.get("seed_axes", []), meta.get("average_axes", [])
  done = [r for r in rows if r["status"] == points_lib.DONE and "best" in r]
  x_of = (lambda r: r.get("parameters_model")) if x == PARAMETERS else (lambda r: r.get(x))
  done = [r for r in done if _is_number(x_of(r))]
  if not done:
    return None
  if lines is None:
    lines = []
    for axis in meta.get("axes", []):
      if (
        axis in seeds
        or axis in averaged
        or axis in (x, panels)
        or len({r.get(axis) for r in done}) < 2
      ):
        continue
      follows_x = all(
        len({r.get(axis) for r in done if x_of(r) == v}) == 1 for v in {x_of(r) for r in done}
      )
      if x == PARAMETERS and follows_x:
        continue
      lines.append(axis)
  panel_values = list(dict.fromkeys(r.get(panels) for r in done)) if panels else [None]
  figure, axes_list = plt.subplots(
    1, len(panel_values), figsize=(5.5 * len(panel_values), 4), squeeze=False, sharey=True
  )
  y = reported(rows)
  metric = metric_label(done)
  metric = metric if y == "best" else test_metric(metric)
  for panel_value, ax in zip(panel_values, axes_list[0]):
    subset = [
      r for r in rows if _is_number(x_of(r)) and (panels is None or r.get(panels) == panel_value)
    ]
    by_line: dict[tuple, list[tuple[float, list[float]]]] = {}
    x_axis = [] if x == PARAMETERS else [x]
    # A point of a line: a setting of (line axes, x); parameters follow the size axis.
    key_axes = (
      list(lines)
      + x_axis
      + [a for a in meta.get("axes", []) if a not in (*lines, *x_axis, *seeds, *averaged, panels)]
    )
    for setting in settings(meta, subset, key_axes)[1]:
      if setting.runs:
        x_value = x_of(setting.rows[0])
        by_line.setdefault(setting.key[: len(lines)], []).append((x_value, setting.values(y)))
    for key, line_points in by_line.items():
      line_points.sort(key=lambda p: p[0])
      xs = [p[0] for p in line_points]
      stats = [_mean_std(v) for _, v in line_points]
      means = [m for m, _ in stats]
      stds = [s or 0.0 for _, s in stats]
      label = ", ".join(f"{a}={v}" for a, v in zip(lines, key)) or "all"
      (line,) = ax.plot(xs, means, marker="o", label=label)
      if any(len(v) > 1 for _, v in line_points):
        ax.fill_between(
          xs,
          [m - s for m, s in zip(means, stds)],
          [m + s for m, s in zip(means, stds)],
          color=line.get_color(),
          alpha=0.2,
        )
    x_ticks(ax, x, sorted({x_of(r) for r in subset}))
    ax.set_xlabel("model parameters" if x == PARAMETERS else x)
    ax.grid(True, alpha=0.3)
    if panels:
      ax.set_title(f"{panels}={panel_value}")
    if lines:
      ax.legend(fontsize=8)
  axes_list[0][0].set_ylabel(
    metric.split("/")[-1] + (f" (mean over {', '.join(averaged)})" if averaged else "")
  )
  figure.suptitle(plot_title(meta, metric, y, x, len(panel_values)), fontsize=9)
  figure.tight_layout()
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, f"{_safe(metric)}_vs_{_safe(x)}.png")
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return path


def count_label(count: float) -> str:
  """A parameter count as the paper writes sizes, to 3 digits: 231K, 1.85M, 11B.

  The unit is chosen after rounding: 999,500 is 1M, not 1e+03K.
  """
  for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K"), (1.0, "")):
    value = float(f"{count / scale:.3g}")
    if value >= 1 or scale == 1.0:
      return f"{value:g}{suffix}"
  raise AssertionError("unreachable")


def x_ticks(ax: Any, x: str, values: Sequence[float]) -> None:
  """A log x axis where the values span 10x (parameters always), ticked at the values
  themselves when there are few (a family's sizes, the swept lengths), and no other
  labels: log-scale minor labels between close sizes overlap. Over 12 values,
  matplotlib's own ticks."""
  if values and min(values) > 0 and (x == PARAMETERS or max(values) / min(values) >= 10):
    ax.set_xscale("log")
  if 0 < len(values) <= 12:
    ax.set_xticks(values, [count_label(v) if x == PARAMETERS else f"{v:g}" for v in values])
    ax.minorticks_off()


def check_options(
  known: Sequence[str],
  x: Optional[Sequence[str]] = None,
  lines: Optional[Sequence[str]] = None,
  panels: Optional[str] = None,
) -> None:
  """The plot flags name axes of the sweep (checked before a sweep runs, too)."""
  for name in list(x or []) + list(lines or []) + ([panels] if panels else []):
    if name not in known:
      raise ValueError(f"{name!r} is not an axis of this sweep; choose from {', '.join(known)}")


def report(
  sweep_dir: str,
  x: Optional[Sequence[str]] = None,
  lines: Optional[Sequence[str]] = None,
  panels: Optional[str] = None,
  out_dir: Optional[str] = None,
) -> dict[str, Any]:
  """Writes results.csv, summary.md and the plots; returns their paths and counts.

  Args:
    sweep_dir: a sweep directory or an archive of one.
    out_dir: where they go (default: sweep_dir; required for an archive, and outside it).
  """
  if points_lib.is_archive(sweep_dir) and (
    out_dir is None or points_lib.is_inside(out_dir, sweep_dir)
  ):
    raise ValueError(
      f"{sweep_dir} is an archive, which report does not write into; give "
      "--out_dir, a directory outside it (e.g. build/report/<name>)"
    )
  out_dir = sweep_dir if out_dir is None else out_dir
  meta, rows = collect(sweep_dir)
  if not rows:
    raise FileNotFoundError(f"{sweep_dir} holds no sweep points (no */{points_lib.POINT_FILE})")
  check_options([PARAMETERS] + list(meta.get("axes", [])), x, lines, panels)
  os.makedirs(out_dir, exist_ok=True)
  results = os.path.join(out_dir, RESULTS_FILE)
  write_csv(rows, results)
  summary = os.path.join(out_dir, SUMMARY_FILE)
  storage.write_file(summary, summary_markdown(meta, rows))
  plots = [
    p
    for p in (
      plot(meta, rows, axis, os.path.join(out_dir, PLOTS_DIR), lines, panels)
      for axis in (x or plot_axes(meta, rows))
    )
    if p
  ]
  done = sum(r["status"] == points_lib.DONE for r in rows)
  failed = sum(r["status"] == points_lib.FAILED for r in rows)
  return {
    "results": results,
    "summary": summary,
    "plots": plots,
    "done": done,
    "failed": failed,
    "total": len(rows),
  }
