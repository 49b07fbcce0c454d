"""The paper's Table 1 in miniature: in-domain against out-of-domain accuracy, per method and size.

The paper (§6) trains on one domain and evaluates zero-shot on another with the
same labels: prompt tuning loses less than model tuning. Here each point of a
sweep whose runs decode an out-of-domain split at every evaluation (TEST_SPLIT
['test', 'ood']: `eval/<task>/ood/<metric>`) gives, at the step its validation
split picks, its in-domain test number and its out-of-domain one; the drop is
their difference and "kept" the out-of-domain number as a percentage of the
in-domain one, per seed, then mean ± std over seeds (a method near chance has
little to lose: kept compares methods at different accuracies).

    rows = report.collect(sweep_dir_or_archive)[1]
    table = domain_shift.table(rows, task="wordnet_supersense", by=("method", "size"))
    print(domain_shift.markdown(table)); domain_shift.plot(table, "table1.png")
"""

import dataclasses
import os
import statistics
from typing import Any, Optional, Sequence

from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import report as report_lib

IN_DOMAIN, OUT_OF_DOMAIN = "test", "ood"


@dataclasses.dataclass(frozen=True)
class Row:
  key: tuple  # the values of `by`, e.g. ("prompt_tuning", "xs")
  parameters: Optional[int]  # the frozen model's (without the prompt)
  in_domain: list[float]  # one per seed
  out_of_domain: list[float]

  @property
  def drop(self) -> list[float]:
    return [a - b for a, b in zip(self.in_domain, self.out_of_domain)]

  @property
  def kept(self) -> list[float]:
    """Out-of-domain as a percentage of in-domain, per seed (nan where in-domain is 0)."""
    return [
      100.0 * b / a if a else float("nan") for a, b in zip(self.in_domain, self.out_of_domain)
    ]


def table(
  rows: Sequence[dict[str, Any]], task: str, by: Sequence[str], metric: str = "accuracy"
) -> list[Row]:
  """The done points of `task` grouped by the axes `by` (the seeds pooled), in sweep order.

  Raises:
    ValueError: a done point of `task` lacks the out-of-domain metric (its
      runs did not decode the split).
  """
  at_best = lambda split: f"eval/{task}/{split}/{metric}@best"
  groups: dict[tuple, list[dict]] = {}
  for row in rows:
    if row["status"] != points_lib.DONE or "best_step" not in row:
      continue
    if f"eval/{task}/{metric}@best" not in row:
      continue  # another task's point
    if at_best(OUT_OF_DOMAIN) not in row:
      raise ValueError(
        f"point {row['name']} has no {at_best(OUT_OF_DOMAIN)[:-5]}: its runs "
        f"did not decode the {OUT_OF_DOMAIN!r} split (TEST_SPLIT)"
      )
    groups.setdefault(tuple(row.get(axis) for axis in by), []).append(row)
  return [
    Row(
      key,
      group[0].get("parameters_model"),
      [float(r[at_best(IN_DOMAIN)]) for r in group],
      [float(r[at_best(OUT_OF_DOMAIN)]) for r in group],
    )
    for key, group in groups.items()
  ]


def markdown(rows: Sequence[Row], by: Sequence[str]) -> str:
  """The table as markdown: in-domain, out-of-domain, the drop and kept (%), mean ± std
  over seeds."""
  lines = [
    "| "
    + " | ".join(
      list(by) + ["parameters", "seeds", "in-domain (test)", "out-of-domain", "drop", "kept (%)"]
    )
    + " |",
    "|" + "---|" * (len(by) + 6),
  ]
  for row in rows:
    cells = [str(v) for v in row.key] + [
      f"{row.parameters:,}" if row.parameters else "",
      str(len(row.in_domain)),
      report_lib.mean_std_text(row.in_domain),
      report_lib.mean_std_text(row.out_of_domain),
      report_lib.mean_std_text(row.drop),
      report_lib.mean_std_text(row.kept, digits=1),
    ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], line_axis_values: Sequence[Any], path: str, title: str) -> str:
  """In-domain (solid) and out-of-domain (dashed) accuracy against the model's parameters,
  one colour per value of the first `by` axis (e.g. the method); ± std bands."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  figure, ax = plt.subplots(figsize=(5.5, 4))
  for value in line_axis_values:
    line_rows = sorted(
      (r for r in rows if r.key[0] == value and r.parameters), key=lambda r: r.parameters
    )
    if not line_rows:
      continue
    xs = [r.parameters for r in line_rows]
    colour = None
    for values_of, style, name in (
      (lambda r: r.in_domain, "-", "in-domain"),
      (lambda r: r.out_of_domain, "--", "out-of-domain"),
    ):
      means = [statistics.fmean(values_of(r)) for r in line_rows]
      stds = [statistics.stdev(values_of(r)) if len(values_of(r)) > 1 else 0.0 for r in line_rows]
      (line,) = ax.plot(xs, means, style, marker="o", color=colour, label=f"{value}, {name}")
      colour = line.get_color()
      ax.fill_between(
        xs,
        [m - s for m, s in zip(means, stds)],
        [m + s for m, s in zip(means, stds)],
        color=colour,
        alpha=0.15,
      )
    report_lib.x_ticks(ax, report_lib.PARAMETERS, xs)
  ax.set_xlabel("model parameters")
  ax.set_ylabel("accuracy at the best validation step")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8)
  ax.set_title(title, fontsize=9)
  figure.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  figure.savefig(path, dpi=110)
  plt.close(figure)
  return path
