r"""Prompt ensembles of a sweep's seeds: the paper's Table 3 (§7) in miniature.

    python scripts/ensemble_table.py --sweep_dir=build/scaling/table3 \
      --json=results/table3/ensembles.json
    python scripts/ensemble_table.py --json=results/table3/ensembles.json   # redraw only

The paper trains five prompts on one frozen model (other seeds) and combines
them by majority vote in one pass over the model; the ensemble beats the
members' mean and even the best member. Here, for each setting of a sweep (its
axes but the seed axis and the averaged task axis: a model size) and each
task, the seeds' best-step prompts (`MODEL_DIR/best/`, which the trainer keeps
and an archive copies) are evaluated as one ensemble: `PROMPT_FILES=[...]`
through `evaluation.evaluate`, every member decoded in the same batches, on
each split of the points' TEST_SPLIT, with the points' own config (model,
checkpoint, vocabulary, lengths, decoding, batch). That one pass gives the
ensemble's score (majority vote), each member's, their mean ± sample std over
the seeds, and the best member's: the member whose validation score at its
best step (`best.json`'s value) is highest, the lowest seed on a tie. It is
chosen on validation, as a user without the test labels would choose it.

The results, one JSON file (sorted keys, nothing that changes between runs):

    {"format": 1, "sweep": <name>, "seed_axis": "RANDOM_SEED", "seeds": [0, 1, ...],
     "task_axis": "task",
     "rows": [                                  # one per setting, in the sweep's order
       {"setting": {"size": "xs", ...},         # its labels (the seed and task axes aside)
        "parameters": 230816,                   # the model's, prompt aside (report's x)
        "tasks": [                              # in the sweep's order
          {"task": "supersense", "mixture_or_task_name": "wordnet_supersense",
           "metric": "wordnet_supersense/accuracy",   # what picked each member's best step
           "splits": ["test", "ood"],                 # the points' TEST_SPLIT
           "members": [                               # the seeds' order; member i is view i
             {"seed": 0, "point": <name>, "best_step": 1750, "validation": 22.75,
              "scores": {"test": 18.5, "ood": 20.0},  # this pass
              "recorded": {"test": 18.5, "ood": 20.0}}],  # the run's, at its best step
           "best_seed": 3,
           "summary": {"test": {"ensemble": .., "mean": .., "std": .., "best_member": ..},
                       "ood": {...}}}],
        "mean_over_tasks": {"test": {"ensemble": .., "mean": .., "std": .., "best_member": ..}}}]}

`mean_over_tasks` is the study's score: the ensemble's and the best member's
mean over the tasks; for the members, each seed's mean over the tasks, then
mean ± std over the seeds (the best member may be another seed on each task).
Splits that not every task has (supersense's `ood`) are by task only.
`markdown` and `plot` read only this JSON, so the tables and the figure can be
redrawn from it without the model.
"""

import collections
import contextlib
import dataclasses
import io
import json
import os
import statistics
import sys
import textwrap
from typing import Any, Optional, Sequence, TextIO

from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import storage
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import report as report_lib

FORMAT = 1  # the JSON's "format"
ENSEMBLE_VIEW = "ensemble"  # evaluation.ENSEMBLE_VIEW (not imported: it brings seqio)


class EnsembleError(ValueError):
  """A sweep that cannot make the table (a point missing or not done); one line."""


@dataclasses.dataclass(frozen=True)
class Member:
  """One seed's run: its best step's prompt and record."""

  seed: Any  # the seed axis's value
  point: str
  model_dir: str
  argv: tuple[str, ...]  # point.json's training command (MODEL_DIR and all)
  config_sha256: Optional[str]  # the config it trained with, as the sweep recorded it
  best: dict  # best.json: {"step", "metric", "mode", "value"}

  @property
  def prompt(self) -> str:
    return os.path.join(layout.best_dir(self.model_dir), layout.PROMPT_FILE_NAME)


@dataclasses.dataclass(frozen=True)
class Group:
  """The members of one setting and task: one ensemble."""

  setting: tuple[tuple[str, str], ...]  # (axis, label), the seed and task axes aside
  task: str  # the task axis's label ("" without one)
  members: tuple[Member, ...]  # in the seeds' order
  parameters: Optional[int]

  @property
  def name(self) -> str:
    labels = list(self.setting) + ([("task", self.task)] if self.task else [])
    return ",".join(f"{axis}={label}" for axis, label in labels)


def _seed_order(value: Any) -> tuple:
  number = isinstance(value, (int, float)) and not isinstance(value, bool)
  return (0, float(value), "") if number else (1, 0.0, str(value))


def groups(sweep_dir: str) -> tuple[dict, list[Group]]:
  """(sweep.json, its ensembles): every setting and task with each seed's best prompt.

  Raises:
    EnsembleError: naming the first point that is not there, not done, or has no
      best prompt (`MODEL_DIR/best/`), or a setting that lacks a seed others have.
  """
  if not os.path.isdir(sweep_dir):
    raise EnsembleError(
      f"--sweep_dir={sweep_dir} does not exist; give a sweep directory or an archive of one"
    )
  meta, rows = report_lib.collect(sweep_dir)
  if not rows:
    raise EnsembleError(f"{sweep_dir} holds no sweep points (no */{points_lib.POINT_FILE})")
  seed_axes, averaged = list(meta.get("seed_axes", [])), list(meta.get("average_axes", []))
  if len(seed_axes) != 1 or len(averaged) > 1:
    raise EnsembleError(
      f"sweep {meta.get('name')} has seed axes {seed_axes} and averaged axes "
      f"{averaged}; an ensemble table needs one seed axis (RANDOM_SEED) and "
      "at most one averaged (task) axis"
    )
  (seed_axis,), task_axis = seed_axes, (averaged[0] if averaged else None)
  present = {row["name"] for row in rows}
  for name in meta.get("points", []):
    if name not in present:
      raise EnsembleError(
        f"point {name}: not in {sweep_dir} (its sweep lists it); run the "
        "sweep's missing points, or archive them too"
      )
  seeds: dict[str, Any] = {}  # label -> value
  found: dict[tuple, dict[str, tuple[dict, dict]]] = {}
  for row in rows:
    record = points_lib.read_json(os.path.join(sweep_dir, row["name"], points_lib.POINT_FILE))
    labels = [(axis, label) for axis, label, _ in record["axes"]]
    seed = next((label, value) for axis, label, value in record["axes"] if axis == seed_axis)
    seeds[seed[0]] = seed[1]
    setting = tuple((a, l) for a, l in labels if a not in (seed_axis, task_axis))
    task = next((l for a, l in labels if a == task_axis), "")
    found.setdefault((setting, task), {})[seed[0]] = (row, record)
  order = sorted(seeds, key=lambda label: _seed_order(seeds[label]))
  if len(order) < 2:
    raise EnsembleError(
      f"sweep {meta.get('name')} has one {seed_axis} ({', '.join(order)}); "
      "an ensemble needs two seeds or more"
    )
  result = []
  for (setting, task), by_seed in found.items():
    members, parameters = [], None
    for label in order:
      if label not in by_seed:
        any_record = next(iter(by_seed.values()))[1]
        name = ",".join(
          f"{axis}={label if axis == seed_axis else dict(setting).get(axis, task)}"
          for axis, _, _ in any_record["axes"]
        )
        raise EnsembleError(
          f"point {name}: not in {sweep_dir}; the ensemble needs every seed "
          f"of the sweep ({seed_axis} {', '.join(order)}): run it"
        )
      row, record = by_seed[label]
      members.append(_member(sweep_dir, row, record, seeds[label]))
      parameters = parameters or row.get("parameters_model")
    result.append(Group(setting, task, tuple(members), parameters))
  return meta, result


def _member(sweep_dir: str, row: dict, record: dict, seed: Any) -> Member:
  name = row["name"]
  if row["status"] != points_lib.DONE:
    raise EnsembleError(
      f"point {name}: {row['status']}, not done; finish the sweep (rerun its command) first"
    )
  model_dir = os.path.join(sweep_dir, name)
  best = layout.best_dir(model_dir)
  for path in (os.path.join(best, layout.BEST_RECORD), os.path.join(best, layout.PROMPT_FILE_NAME)):
    if not os.path.isfile(path):
      raise EnsembleError(
        f"point {name}: no {os.path.relpath(path, model_dir)} in "
        f"{model_dir}; the trainer keeps its best step's prompt there (a "
        "run made before it did must be trained again)"
      )
  with open(os.path.join(best, layout.BEST_RECORD)) as f:
    best_record = json.load(f)
  return Member(
    seed, name, model_dir, tuple(record["argv"]), record.get("config_sha256"), best_record
  )


# What the members' commands may differ in: their seed, and where they wrote.
def _shared_argv(argv: Sequence[str], seed_axis: str) -> list[str]:
  return [a for a in argv if not a.startswith((f"--gin.{seed_axis}=", "--gin.MODEL_DIR="))]


def _check_config(group: Group, seed_axis: str) -> None:
  """The members differ only by seed, and each config is the one it trained with."""
  from prompt_tuning.sweep import driver  # pylint: disable=g-import-not-at-top

  first = group.members[0]
  for member in group.members:
    if _shared_argv(member.argv, seed_axis) != _shared_argv(first.argv, seed_axis):
      raise EnsembleError(
        f"point {member.point}: its command differs from {first.point}'s "
        f"beyond {seed_axis}; an ensemble's members share one frozen model "
        "and task"
      )
    if member.config_sha256:
      # The text the sweep digested when it prepared the point (driver.check_points).
      text = driver.config_text(*points_lib.config_of_argv(member.argv))
      if driver.config_digest(text) != member.config_sha256:
        raise EnsembleError(
          f"point {member.point}: its config differs from the one it trained "
          "with (a gin file it reads changed since); evaluate it at the "
          "commit that trained it"
        )


def _test_splits(value: Any) -> list[str]:
  return ["test"] if not value else [value] if isinstance(value, str) else list(value)


def _view_score(results: dict, view: str) -> tuple[str, str, float]:
  """A view's score by the rule that picked the members' best steps (early_stopping.score)."""
  from prompt_tuning.training import early_stopping  # pylint: disable=g-import-not-at-top

  metrics = {
    f"{task}/{name}": value
    for task, views in results.items()
    for name, value in views[view].items()
  }
  scored = early_stopping.score(metrics)
  if scored is None:
    raise EnsembleError(f"the evaluation gave no metric for {view} ({sorted(metrics)})")
  return scored


def _recorded(member: Member, split: str) -> Optional[float]:
  """The member's `split` score that its training recorded at its best step, if any."""
  metric = member.best["metric"].split("/")
  if len(metric) != 2:  # a mean over tasks: no single recorded test metric
    return None
  evals = report_lib.read_metrics(layout.metrics_file(member.model_dir)).evals
  value = evals.get(int(member.best["step"]), {}).get(f"eval/{metric[0]}/{split}/{metric[1]}")
  return None if value is None else float(value)


def evaluate_group(group: Group, seed_axis: str, eval_dir: str, log: TextIO = sys.stderr) -> dict:
  """One pass of the group's ensemble over its frozen model per split: its task entry.

  Predictions and metrics go under `eval_dir/<split>/` (`ensemble/`, and member
  i's under `i/`, as `python -m prompt_tuning.eval` writes them).
  """
  import gin  # pylint: disable=g-import-not-at-top
  from prompt_tuning import gin_config  # pylint: disable=g-import-not-at-top
  from prompt_tuning import host  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import decoding  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import evaluation  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import predictor as predictor_lib  # pylint: disable=g-import-not-at-top

  _check_config(group, seed_axis)
  first = group.members[0]
  gin.clear_config()
  try:  # the lowest seed's training config: the frozen model, task, lengths and decoding
    gin_config.parse_gin(*points_lib.config_of_argv(first.argv))
    macro = gin_config.optional_macro
    task_name = macro("MIXTURE_OR_TASK_NAME")
    splits = _test_splits(macro("TEST_SPLIT"))
    batch_size = macro("BATCH_SIZE", 32)
    host.use_a_cpu_device_per_core(batch_size)  # before JAX starts (a no-op after)
    model, vocabulary = gin_config.build_model(), gin_config.vocabulary()
    results = {}
    for split in splits:
      print(
        f"ensembles: {group.name}: {len(group.members)} prompts on {task_name}'s {split} split",
        file=log,
        flush=True,
      )
      with contextlib.redirect_stdout(log):  # evaluate's own table: progress, not the result
        results[split] = evaluation.evaluate(
          predictor=predictor_lib.PredictorConfig(
            model,
            vocabulary,
            macro("INITIAL_CHECKPOINT_PATH"),
            macro("TASK_FEATURE_LENGTHS"),
            prompt_files=[m.prompt for m in group.members],
            batch_size=batch_size,
            method=macro("DECODING") or decoding.Greedy(),
            seed=macro("RANDOM_SEED", 0),
            num_partitions=macro("NUM_PARTITIONS", 1),
          ),
          data=evaluation.SplitConfig(
            task_name,
            split,
            mixture_or_task_module=macro("MIXTURE_OR_TASK_MODULE"),
            use_cached=macro("USE_CACHED_TASKS", False),
          ),
          eval_output_dir=os.path.join(eval_dir, split),
        )
  finally:
    gin.clear_config()
  metric = first.best["metric"]
  members = []
  for i, member in enumerate(group.members):
    scores = {}
    for split in splits:
      name, _, value = _view_score(results[split], str(i))
      if name != member.best["metric"]:
        raise EnsembleError(
          f"point {member.point}: its best step was picked by "
          f"{member.best['metric']}, which this evaluation does not give "
          f"({name}); the table compares decoded metrics"
        )
      scores[split] = value
    members.append(
      {
        "seed": member.seed,
        "point": member.point,
        "best_step": int(member.best["step"]),
        "validation": member.best["value"],
        "scores": scores,
        "recorded": {s: _recorded(member, s) for s in splits},
      }
    )
  best = best_member(group.members)
  ensemble = {split: _view_score(results[split], ENSEMBLE_VIEW)[2] for split in splits}
  return {
    "task": group.task,
    "mixture_or_task_name": task_name,
    "metric": metric,
    "splits": splits,
    "members": members,
    "best_seed": group.members[best].seed,
    "summary": {
      split: summarize(
        ensemble[split], [m["scores"][split] for m in members], members[best]["scores"][split]
      )
      for split in splits
    },
  }


def best_member(members: Sequence[Member]) -> int:
  """The index of the member with the best validation score at its best step (best.json's
  value, its mode's direction); the lowest seed (the first) on a tie."""
  sign = lambda m: 1.0 if m.best.get("mode", "max") == "max" else -1.0
  return max(range(len(members)), key=lambda i: (sign(members[i]) * members[i].best["value"], -i))


def summarize(ensemble: float, members: Sequence[float], best: float) -> dict:
  std = statistics.stdev(members) if len(members) > 1 else None
  return {"ensemble": ensemble, "mean": statistics.fmean(members), "std": std, "best_member": best}


def _mean_over_tasks(tasks: Sequence[dict]) -> dict:
  """Per split every task has: the ensemble's and the best member's mean over tasks, and the
  members' mean ± std over seeds of each seed's mean over tasks."""
  common = [s for s in tasks[0]["splits"] if all(s in t["splits"] for t in tasks)]
  out = {}
  for split in common:
    per_seed = [
      statistics.fmean(t["members"][i]["scores"][split] for t in tasks)
      for i in range(len(tasks[0]["members"]))
    ]
    out[split] = summarize(
      statistics.fmean(t["summary"][split]["ensemble"] for t in tasks),
      per_seed,
      statistics.fmean(t["summary"][split]["best_member"] for t in tasks),
    )
  return out


def evaluate(sweep_dir: str, eval_dir: str, log: TextIO = sys.stderr) -> dict:
  """The table's results (the module docstring's JSON) for a sweep directory or archive.

  Args:
    sweep_dir: the sweep (live, or an archive: both keep each point's best/).
    eval_dir: where each pass writes its predictions and metrics, one directory
      per setting and task (`Group.name`).
  """
  meta, found = groups(sweep_dir)
  seed_axis = meta["seed_axes"][0]
  rows: dict[tuple, dict] = {}
  for group in found:
    entry = evaluate_group(group, seed_axis, os.path.join(eval_dir, group.name), log)
    row = rows.setdefault(
      group.setting, {"setting": dict(group.setting), "parameters": group.parameters, "tasks": []}
    )
    row["tasks"].append(entry)
  for row in rows.values():
    row["mean_over_tasks"] = _mean_over_tasks(row["tasks"])
  averaged = meta.get("average_axes") or [None]
  return {
    "format": FORMAT,
    "sweep": meta.get("name", ""),
    "seed_axis": seed_axis,
    "seeds": [m.seed for m in found[0].members],
    "task_axis": averaged[0],
    "rows": list(rows.values()),
  }


def write_json(results: dict, path: str) -> None:
  if os.path.dirname(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
  storage.write_file(path, json.dumps(results, indent=1, sort_keys=True) + "\n")


def read_json(path: str) -> dict:
  results = points_lib.read_json(path)
  if results is None:
    raise FileNotFoundError(f"{path} not found; make it with --sweep_dir=<the sweep>")
  if results.get("format") != FORMAT:
    raise EnsembleError(
      f"{path} has format {results.get('format')!r}; this code reads format {FORMAT}"
    )
  return results


def _metric_label(results: dict) -> str:
  names = {t["metric"].split("/")[-1] for row in results["rows"] for t in row["tasks"]}
  return names.pop() if len(names) == 1 else "score"


def _varying(results: dict) -> tuple[list[str], dict[str, str]]:
  """The setting axes whose labels differ between rows, and those every row shares."""
  axes = list(results["rows"][0]["setting"])
  labels = {a: {row["setting"][a] for row in results["rows"]} for a in axes}
  varying = [a for a in axes if len(labels[a]) > 1] or axes
  return varying, {a: results["rows"][0]["setting"][a] for a in axes if a not in varying}


def _pm(summary: dict) -> str:
  std = summary["std"]
  return f"{summary['mean']:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
  return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
    "| " + " | ".join(cells) + " |" for cells in lines
  ]


def markdown(results: dict) -> str:
  """The tables: the mean over tasks, then each task, per split (the JSON alone)."""
  varying, shared = _varying(results)
  rows, metric = results["rows"], _metric_label(results)
  seeds = ", ".join(str(s) for s in results["seeds"])
  task_axis = results.get("task_axis") or "task"
  lines = [
    f"# Prompt ensembles: sweep {results['sweep']}",
    "",
    f"{len(results['seeds'])} prompts per row and {task_axis} ({results['seed_axis']} "
    f"{seeds}), each its run's prompt at the step with the best validation score, "
    "evaluated together in one pass over the frozen model. members: their mean ± sample "
    "std over the seeds; best member: the one with the best validation score (the "
    "lowest seed on a tie), chosen before the test split is seen; ensemble: their "
    f"majority vote. {metric}."
    + (" " + ", ".join(f"{a}={v}" for a, v in shared.items()) + " in every row." if shared else ""),
    "",
  ]
  splits = list(rows[0]["mean_over_tasks"])
  for split in splits if len(rows[0]["tasks"]) > 1 else []:
    lines += [f"Mean over {task_axis}, {split} split:", ""]
    cells = []
    for row in rows:
      s = row["mean_over_tasks"][split]
      cells.append(
        [row["setting"][a] for a in varying]
        + [
          f"{row['parameters']:,}" if row["parameters"] else "—",
          _pm(s),
          f"{s['best_member']:.2f}",
          f"{s['ensemble']:.2f}",
          f"{s['ensemble'] - s['mean']:+.2f}",
          f"{s['ensemble'] - s['best_member']:+.2f}",
        ]
      )
    lines += _table(
      varying
      + [
        "parameters",
        "members",
        "best member",
        "ensemble",
        "ensemble − members",
        "ensemble − best",
      ],
      cells,
    ) + [""]
  by_split = list(dict.fromkeys(s for row in rows for t in row["tasks"] for s in t["splits"]))
  for split in by_split:
    lines += [f"By {task_axis}, {split} split:", ""]
    cells = []
    for row in rows:
      for task in row["tasks"]:
        if split in task["splits"]:
          s = task["summary"][split]
          cells.append(
            [row["setting"][a] for a in varying]
            + [
              task["task"] or task["mixture_or_task_name"],
              _pm(s),
              f"{s['best_member']:.2f} ({task['best_seed']})",
              f"{s['ensemble']:.2f}",
              f"{s['ensemble'] - s['mean']:+.2f}",
              f"{s['ensemble'] - s['best_member']:+.2f}",
            ]
          )
    lines += _table(
      varying
      + [
        task_axis,
        "members",
        "best member (seed)",
        "ensemble",
        "ensemble − members",
        "ensemble − best",
      ],
      cells,
    ) + [""]
  lines.append(agreement(results))
  return "\n".join(lines) + "\n"


def agreement(results: dict) -> str:
  """How the members' scores in these passes compare with those their runs recorded at the
  best step (the same prompt, model and split: a check that the config matches)."""
  pairs = [
    (m["scores"][s], m["recorded"][s])
    for row in results["rows"]
    for t in row["tasks"]
    for m in t["members"]
    for s in t["splits"]
    if m["recorded"].get(s) is not None
  ]
  if not pairs:
    return "No member's run recorded its test scores at its best step to compare with."
  same = sum(a == b for a, b in pairs)
  worst = max(abs(a - b) for a, b in pairs)
  return (
    f"Members' scores in these passes against those their runs recorded at the best "
    f"step: {same} of {len(pairs)} equal (largest difference {worst:.2f})."
  )


PLOT_SPLIT = "test"


def plot(results: dict, path: str) -> Optional[str]:
  """Ensemble, members' mean (± std band) and best member against the model's parameters
  (log x): the mean over tasks and each task, on the test split. Returns the PNG's path,
  or None when no row has a parameter count. The PNG holds no time or version."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  rows = sorted((r for r in results["rows"] if r["parameters"]), key=lambda r: r["parameters"])
  if not rows:
    return None
  counts = collections.Counter(r["parameters"] for r in rows)
  if max(counts.values()) > 1:
    varying, _ = _varying(results)
    raise EnsembleError(
      f"the plot draws one setting per parameter count; the rows differ in "
      f"{', '.join(varying)} at one size: plot a slice of the sweep"
    )
  split = (
    PLOT_SPLIT
    if PLOT_SPLIT in rows[0]["mean_over_tasks"]
    else next(iter(rows[0]["mean_over_tasks"]))
  )
  task_axis = results.get("task_axis") or "task"
  panels = [(f"mean over {task_axis}", lambda r: r["mean_over_tasks"][split])]
  if len(rows[0]["tasks"]) > 1:
    for j, task in enumerate(rows[0]["tasks"]):
      panels.append((f"{task_axis}={task['task']}", lambda r, j=j: r["tasks"][j]["summary"][split]))
  figure, axes = plt.subplots(
    1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False, sharey=False
  )
  xs = [r["parameters"] for r in rows]
  for (title, summary_of), ax in zip(panels, axes[0]):
    summaries = [summary_of(r) for r in rows]
    means = [s["mean"] for s in summaries]
    stds = [s["std"] or 0.0 for s in summaries]
    (line,) = ax.plot(xs, means, marker="o", label="members (mean ± std)")
    ax.fill_between(
      xs,
      [m - s for m, s in zip(means, stds)],
      [m + s for m, s in zip(means, stds)],
      color=line.get_color(),
      alpha=0.2,
    )
    ax.plot(
      xs, [s["best_member"] for s in summaries], marker="s", label="best member (on validation)"
    )
    ax.plot(xs, [s["ensemble"] for s in summaries], marker="^", label="ensemble (majority vote)")
    report_lib.x_ticks(ax, report_lib.PARAMETERS, xs)
    ax.set_xlabel("model parameters")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
  axes[0][0].set_ylabel(f"{_metric_label(results)}, {split} split")
  axes[0][0].legend(fontsize=8)
  text = (
    f"sweep {results['sweep']}: {len(results['seeds'])} prompts per size "
    f"({results['seed_axis']} {', '.join(str(s) for s in results['seeds'])}) and their "
    "majority vote in one pass over the frozen model vs model parameters"
  )
  figure.suptitle(textwrap.fill(text, report_lib.TITLE_CHARS_PER_PANEL * len(panels)), fontsize=9)
  figure.tight_layout()
  png = io.BytesIO()
  figure.savefig(png, format="png", dpi=110, metadata={"Software": None})
  plt.close(figure)
  if os.path.dirname(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
  storage.write_file(path, png.getvalue())
  return path
