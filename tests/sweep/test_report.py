"""`report`: the best step by validation, averages over tasks then seeds, the test split
at that step, and the plots."""

import json
import os
import statistics

import pytest

from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import report as report_lib
from tests.sweep.helpers import (
  csv_rows,
  fake_point,
)


def test_report_picks_the_best_step_and_averages_over_seeds(tmp_path):
  sweep_dir = str(tmp_path)
  runs = {  # (PROMPT_LENGTH, seed) -> evaluations
    (1, 0): [(10, 50.0), (20, 60.0), (30, 55.0)],
    (1, 1): [(10, 70.0), (20, 65.0), (30, 70.0)],  # a tie: the earlier step
    (5, 0): [(10, 80.0), (20, 81.0), (30, 90.0)],
    (5, 1): [(10, 85.0), (20, 86.0), (30, 84.0)],
  }
  for (length, seed), evals in runs.items():
    fake_point(
      sweep_dir,
      f"PROMPT_LENGTH={length},RANDOM_SEED={seed}",
      [("PROMPT_LENGTH", length), ("RANDOM_SEED", seed)],
      evals,
    )
  fake_point(
    sweep_dir,
    "PROMPT_LENGTH=9,RANDOM_SEED=0",
    [("PROMPT_LENGTH", 9), ("RANDOM_SEED", 0)],
    [],
    status="failed",
  )
  result = report_lib.report(sweep_dir)
  rows = csv_rows(result["results"])
  best = {
    "PROMPT_LENGTH=1,RANDOM_SEED=0": (20, 60.0),
    "PROMPT_LENGTH=1,RANDOM_SEED=1": (10, 70.0),
    "PROMPT_LENGTH=5,RANDOM_SEED=0": (30, 90.0),
    "PROMPT_LENGTH=5,RANDOM_SEED=1": (20, 86.0),
  }
  for name, (step, value) in best.items():
    assert (int(rows[name]["best_step"]), float(rows[name]["best"])) == (step, value)
    assert float(rows[name]["eval/loss@best"]) == 2.0
  summary = open(result["summary"]).read()
  for length, seeds in ((1, (60.0, 70.0)), (5, (90.0, 86.0))):
    mean, std = statistics.mean(seeds), statistics.stdev(seeds)
    assert f"| {length} | 2/2 | 1,000 | {mean:.2f} ± {std:.2f} |" in summary, summary
  assert "| 9 | 0/1 |" in summary and "`PROMPT_LENGTH=9,RANDOM_SEED=0`: failed" in summary
  assert [os.path.basename(p) for p in result["plots"]] == ["eval_t_accuracy_vs_PROMPT_LENGTH.png"]
  # 'min' mode picks the lowest.
  record_path = os.path.join(sweep_dir, "PROMPT_LENGTH=5,RANDOM_SEED=0", "point.json")
  record = json.load(open(record_path))
  record["metric_mode"] = "min"
  points_lib.write_json(record_path, record)
  row = report_lib.point_row(os.path.dirname(record_path))
  assert (row["best_step"], row["best"]) == (10, 80.0)


def test_report_averages_over_tasks_per_seed_then_over_seeds(tmp_path):
  """`average_axes`: the paper's SuperGLUE score, a mean over tasks, per seed."""
  sweep_dir = str(tmp_path)
  best = {("a", 0): 60.0, ("b", 0): 80.0, ("a", 1): 70.0, ("b", 1): 75.0, ("a", 2): 90.0}
  for (task, seed), value in best.items():
    fake_point(
      sweep_dir,
      f"task={task},RANDOM_SEED={seed}",
      [("task", task), ("RANDOM_SEED", seed)],
      [(10, value - 1), (20, value)],
    )
  fake_point(
    sweep_dir, "task=b,RANDOM_SEED=2", [("task", "b"), ("RANDOM_SEED", 2)], [], status="failed"
  )
  meta = {
    "name": "fake",
    "axes": ["task", "RANDOM_SEED"],
    "seed_axes": ["RANDOM_SEED"],
    "average_axes": ["task"],
  }
  _, rows = report_lib.collect(sweep_dir)
  (setting,) = report_lib.settings(meta, rows)[1]
  per_seed = [statistics.mean([60.0, 80.0]), statistics.mean([70.0, 75.0])]  # seed 2: incomplete
  assert setting.values("best") == per_seed and setting.total == 3
  summary = report_lib.summary_markdown(meta, rows)
  assert (
    f"| 2/3 | 1,000 | {statistics.mean(per_seed):.2f} ± {statistics.stdev(per_seed):.2f} | 20 ± 0 |"
  ) in summary, summary
  assert "the mean over task of" in summary


def test_report_gives_the_test_split_at_the_step_validation_picks(tmp_path):
  """TEST_SPLIT: tables and plots report the test split at the best validation step."""
  sweep_dir = str(tmp_path)
  runs = {  # (size, task, seed) -> [(step, validation, test)]
    ("s", "a", 0): [(10, 50.0, 40.0), (20, 60.0, 45.0), (30, 55.0, 70.0)],
    ("s", "b", 0): [(10, 80.0, 81.0), (20, 70.0, 90.0)],
    ("s", "a", 1): [(10, 65.0, 61.0), (20, 65.0, 62.0)],  # a tie: the earlier step
    ("s", "b", 1): [(10, 70.0, 72.0), (20, 75.0, 74.0)],
    ("l", "a", 0): [(10, 90.0, 88.0)],
    ("l", "b", 0): [(10, 91.0, 87.0)],
  }
  for (size, task, seed), evals in runs.items():
    fake_point(
      sweep_dir,
      f"size={size},task={task},RANDOM_SEED={seed}",
      [("size", size), ("task", task), ("RANDOM_SEED", seed)],
      [(step, v) for step, v, _ in evals],
      task=f"wordnet_{task}",
      tests=[t for _, _, t in evals],
      params=(1000 if size == "s" else 8000, 10),
    )
  meta = {
    "name": "fake",
    "axes": ["size", "task", "RANDOM_SEED"],
    "seed_axes": ["RANDOM_SEED"],
    "average_axes": ["task"],
  }
  points_lib.write_json(os.path.join(sweep_dir, points_lib.SWEEP_FILE), meta)
  result = report_lib.report(sweep_dir)
  rows = csv_rows(result["results"])
  expected = {
    ("s", "a", 0): 45.0,
    ("s", "b", 0): 81.0,
    ("s", "a", 1): 61.0,
    ("s", "b", 1): 74.0,
    ("l", "a", 0): 88.0,
    ("l", "b", 0): 87.0,
  }
  for (size, task, seed), test in expected.items():
    assert float(rows[f"size={size},task={task},RANDOM_SEED={seed}"]["test"]) == test
  per_seed = [statistics.mean([45.0, 81.0]), statistics.mean([61.0, 74.0])]
  summary = open(result["summary"]).read()
  assert "`eval/<task>/accuracy`" in summary and "`eval/<task>/test/accuracy`" in summary
  assert (
    summary.rstrip()
    .splitlines()[-2]
    .endswith(f"| {statistics.mean(per_seed):.2f} ± {statistics.stdev(per_seed):.2f} |")
  ), summary
  assert summary.rstrip().splitlines()[-1].endswith(f"| {statistics.mean([88.0, 87.0]):.2f} |")
  assert [os.path.basename(p) for p in result["plots"]] == [
    "eval__task__test_accuracy_vs_parameters.png"
  ]


def test_a_plot_title_fits_its_figure():
  """A long sweep name, an averaged axis and a test metric: the title wraps inside the figure
  (it ran off both sides of a one-panel plot)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  meta = {
    "name": "wordnet_scaling_figure3b_with_a_longer_name",
    "seed_axes": ["RANDOM_SEED"],
    "average_axes": ["task"],
  }
  for panels in (1, 3):
    title = report_lib.plot_title(
      meta, "eval/<task>/test/accuracy", "test", report_lib.PARAMETERS, panels
    )
    assert " ".join(title.split()) == (
      "sweep wordnet_scaling_figure3b_with_a_longer_name: mean over task of "
      "eval/<task>/test/accuracy at the best step on validation vs model parameters "
      "(mean ± std over RANDOM_SEED)"
    )
    figure, _ = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    text = figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.canvas.draw()
    box, page = text.get_window_extent(), figure.bbox
    plt.close(figure)
    assert page.x0 <= box.x0 and box.x1 <= page.x1, (panels, box, page)


@pytest.mark.parametrize(
  "x,values",
  [
    (report_lib.PARAMETERS, [230_816, 600_048, 1_845_568, 6_050_304]),  # the WordNet family
    (report_lib.PARAMETERS, [77e6, 248e6, 783e6, 2.85e9, 11.1e9]),  # T5.1.1 Small to XXL
    ("PROMPT_LENGTH", [1, 5, 20, 100, 150]),
  ],
)
def test_a_plots_x_labels_are_its_values_and_do_not_overlap(x, values):
  """The x axis of a scaling plot: log-scale, labelled at the points (231K ... 6.05M) and
  nowhere else (matplotlib's minor labels between close sizes ran into each other)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  figure, ax = plt.subplots(figsize=(5.5, 4))
  ax.plot(values, range(len(values)), marker="o")
  report_lib.x_ticks(ax, x, values)
  figure.tight_layout()
  figure.canvas.draw()
  labels = [
    t
    for t in ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True)
    if t.get_visible()
    and t.get_text()
    and ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]
  ]
  boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: b.x0)
  plt.close(figure)
  assert ax.get_xscale() == "log"
  assert [t.get_text() for t in sorted(labels, key=lambda t: t.get_position()[0])] == (
    ["231K", "600K", "1.85M", "6.05M"]
    if values[0] == 230_816
    else ["77M", "248M", "783M", "2.85B", "11.1B"]
    if x == report_lib.PARAMETERS
    else ["1", "5", "20", "100", "150"]
  )
  assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), boxes


def test_parameter_counts_read_as_the_paper_writes_sizes():
  assert [
    report_lib.count_label(n) for n in (950, 230_816, 999_500, 1_845_568, 77e6, 11.1e9, 2e12)
  ] == ["950", "231K", "1M", "1.85M", "77M", "11.1B", "2000B"]
