r"""Redraws docs/scaling.md's figures and prints its tables from the shipped archives (`make figures`).

Nothing trains and no model runs: every number comes from `results/<name>/`
(archives of the study's sweeps, `python -m prompt_tuning.sweep archive`),
read by the sweep `report` as it reads a live sweep directory.

* Figures 1, 3(a), 3(b), 3(c), SPoT's and the extended Figure 1's: `report`'s plot
  of the main metric (the test split at the best validation step, mean over the two
  tasks) against the model's parameters, and its summary table; the PNG goes to
  docs/scaling/<name>.png when the archive holds every point of its sweep.
  A partial archive (a sweep still running, in slices) is reported with its
  count, its plot left under --out_dir: the docs keep their figure until the
  archive is complete.
* Table 1 (domain shift): Figure 1's supersense points, in-domain test against
  the out-of-domain split at the same step (`prompt_tuning.sweep.domain_shift`).
* Table 3 (prompt ensembles): results/table3/ensembles.json, which
  scripts/ensemble_table.py wrote from one pass over the frozen model per size
  and task (`prompt_tuning.sweep.ensembles`); its table and plot.

    python scripts/scaling_figures.py [--out_dir=build/figures] [--docs_dir=docs/scaling]
"""

import argparse
import os
import shutil
import statistics
import sys

from prompt_tuning.sweep import domain_shift
from prompt_tuning.sweep import driver
from prompt_tuning.sweep import ensembles
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import report as report_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# results/<name> -> <name>.png (issue 28's: "spot", SPoT's transfer against Figure 1's init;
# "methods", the extended Figure 1: Figure 1's lines, per-layer prompts and P-tuning v2)
FIGURES = ("figure1", "figure3a", "figure3b", "figure3c", "spot", "methods")
DOMAIN_SHIFT = ("figure1", "wordnet_supersense", ("method", "size"))  # archive, task, by


def _planned(archive: str) -> int:
  """How many points the archive's sweep file has (an archive may hold a slice of them)."""
  return len(_plan(archive).points)


def _plan(archive: str):
  meta = points_lib.read_json(os.path.join(archive, points_lib.SWEEP_FILE))
  return driver.load(
    os.path.join(REPO, "prompt_tuning", "configs", "sweeps", f"{meta['name']}.gin")
  )


def by_task(meta: dict, rows: list) -> str:
  """Each averaged-over task alone, per setting: test accuracy at the best step (mean ± std
  over seeds), and the shares of the test predictions there that are the most common one and
  that are none of the task's labels (means); markdown."""
  averaged, seeds = meta.get("average_axes", []), meta.get("seed_axes", [])
  if averaged != ["task"]:
    return ""
  keys = [a for a in meta["axes"] if a not in averaged and a not in seeds]
  shares = ("most_common_share", "outside_labels_share")
  groups: dict = {}
  for row in rows:
    if row["status"] != points_lib.DONE:
      continue
    test = [k for k in row if k.endswith("/test/accuracy@best") and k.startswith("eval/")]
    task = _task_name(row, test)
    values = groups.setdefault(tuple(row[k] for k in keys), {}).setdefault(
      row["task"], {"test": [], **{share: [] for share in shares}}
    )
    values["test"].append(float(row[test[0]]))
    for share in shares:
      value = row.get(f"eval/{task}/test/predictions/{share}@best")
      if value not in (None, ""):
        values[share].append(float(value))
  tasks = list(dict.fromkeys(row["task"] for row in rows))
  header = keys + [
    f"{t}: {what}" for t in tasks for what in ("test", "most common", "outside labels")
  ]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for key, per_task in groups.items():
    cells = [str(v) for v in key]
    for task in tasks:
      values = per_task.get(task, {"test": [], **{share: [] for share in shares}})
      cells.append(
        report_lib.mean_std_text(values["test"])
        + (f" ({len(values['test'])})" if values["test"] else "")
      )
      for share in shares:
        cells.append(f"{100 * statistics.fmean(values[share]):.0f}%" if values[share] else "—")
    lines.append("| " + " | ".join(cells) + " |")
  return (
    "By task (test accuracy at the best validation step, mean ± std over seeds (runs); the "
    "shares of the test predictions there that are the most common one and that are none of "
    "the task's labels, means):\n\n" + "\n".join(lines) + "\n"
  )


def _task_name(row: dict, test_keys: list) -> str:
  return test_keys[0][len("eval/") : -len("/test/accuracy@best")]


def figure(name: str, results: str, out_dir: str, docs_dir: str) -> None:
  archive = os.path.join(results, name)
  print(f"## {name}\n")
  if not os.path.isdir(archive):
    drawn = os.path.exists(os.path.join(docs_dir, f"{name}.png"))
    print(
      f"no archive at {os.path.relpath(archive, REPO)} yet: "
      + (
        f"docs/scaling/{name}.png and its tables are from the sweep run before archives were "
        "kept (dated in docs/scaling.md)"
        if drawn
        else "not measured yet"
      )
      + "\n"
    )
    return
  result = report_lib.report(archive, out_dir=os.path.join(out_dir, name))
  total = _planned(archive)
  complete = result["done"] == total
  with open(result["summary"]) as f:
    print(f.read())
  print(by_task(*report_lib.collect(archive)))
  if not complete:
    plot = result["plots"][0] if result["plots"] else "none yet"
    held = (
      f"; the archive holds a slice, {result['total']} of its sweep's {total} points"
      if result["total"] < total
      else ""
    )
    print(
      f"{name}: partial ({result['done']}/{total} points done{held}): plot {plot}; "
      f"results.csv in {os.path.relpath(os.path.dirname(result['results']), REPO)}; "
      f"docs/scaling/{name}.png unchanged\n"
    )
    return
  if result["plots"]:
    target = os.path.join(docs_dir, f"{name}.png")
    shutil.copyfile(result["plots"][0], target)
    print(f"plot: {os.path.relpath(target, REPO)}\n")


def table1(results: str, out_dir: str, docs_dir: str) -> None:
  name, task, by = DOMAIN_SHIFT
  archive = os.path.join(results, name)
  print(f"## Table 1: domain shift ({task}, from results/{name})\n")
  if not os.path.isdir(archive):
    print(f"no archive at results/{name} yet\n")
    return
  _, rows = report_lib.collect(archive)
  table = domain_shift.table(rows, task, by)
  print(domain_shift.markdown(table, by))
  # Complete when every point of the task is done (the table reads no other task's points).
  labels = {r.get("task") for r in rows if f"eval/{task}/accuracy@best" in r}
  planned = sum(
    1 for p in _plan(archive).points if {c.axis: c.label for c in p.choices}.get("task") in labels
  )
  done = sum(1 for r in rows if r["status"] == points_lib.DONE and r.get("task") in labels)
  complete = bool(labels) and done == planned
  path = os.path.join(docs_dir if complete else out_dir, "table1.png")
  methods = list(dict.fromkeys(r.key[0] for r in table))
  domain_shift.plot(
    table,
    methods,
    path,
    f"{task}: in-domain test against out-of-domain (ood)\nat the step the validation split picks",
  )
  print(
    f"plot: {os.path.relpath(path, REPO)}"
    + ("" if complete else f" (partial: {done} of the task's {planned} points done)")
    + "\n"
  )


def table3(results: str, docs_dir: str) -> None:
  path = os.path.join(results, "table3", "ensembles.json")
  print("## Table 3: prompt ensembles (results/table3/ensembles.json)\n")
  if not os.path.isfile(path):
    print("not measured yet: scripts/ensemble_table.py writes it from the table-3 sweep\n")
    return
  table = ensembles.read_json(path)
  print(ensembles.markdown(table))
  target = os.path.join(docs_dir, "table3.png")
  ensembles.plot(table, target)
  print(f"plot: {os.path.relpath(target, REPO)}\n")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--results", default=os.path.join(REPO, "results"))
  parser.add_argument("--out_dir", default=os.path.join(REPO, "build", "figures"))
  parser.add_argument("--docs_dir", default=os.path.join(REPO, "docs", "scaling"))
  args = parser.parse_args(argv)
  os.makedirs(args.docs_dir, exist_ok=True)
  for name in FIGURES:
    figure(name, args.results, args.out_dir, args.docs_dir)
  table1(args.results, args.out_dir, args.docs_dir)
  table3(args.results, args.docs_dir)
  return 0


if __name__ == "__main__":
  sys.exit(main())
