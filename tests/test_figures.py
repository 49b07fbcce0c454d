"""`make figures` (scripts/scaling_figures.py) and Table 1's domain-shift table."""

import filecmp
import os
import statistics
import subprocess
import sys

import pytest

from prompt_tuning.sweep import domain_shift
from tests import conftest

TASK = "wordnet_supersense"


def _row(name, method, size, seed, test, ood, status="done", params=1000):
  return {
    "name": name,
    "method": method,
    "size": size,
    "RANDOM_SEED": seed,
    "status": status,
    "best_step": 250,
    "parameters_model": params,
    f"eval/{TASK}/accuracy@best": 1.0,
    f"eval/{TASK}/test/accuracy@best": test,
    f"eval/{TASK}/ood/accuracy@best": ood,
  }


def test_the_domain_shift_table_pairs_each_seeds_test_and_ood_numbers():
  rows = [
    _row("a", "prompt", "xs", 0, 50.0, 40.0),
    _row("b", "prompt", "xs", 1, 60.0, 30.0),
    _row("c", "model", "xs", 0, 90.0, 70.0),
    _row("d", "model", "xs", 1, 80.0, 80.0),
    _row("e", "model", "xs", 2, 99.0, 0.0, status="failed"),  # not done: left out
    {
      "name": "f",
      "status": "done",
      "best_step": 1,
      "method": "prompt",
      "size": "xs",
      "eval/wordnet_hypernym/accuracy@best": 50.0,
    },
  ]  # another task's point
  table = domain_shift.table(rows, TASK, ("method", "size"))
  assert [(r.key, r.in_domain, r.out_of_domain, r.drop) for r in table] == [
    (("prompt", "xs"), [50.0, 60.0], [40.0, 30.0], [10.0, 30.0]),
    (("model", "xs"), [90.0, 80.0], [70.0, 80.0], [20.0, 0.0]),
  ]
  text = domain_shift.markdown(table, ("method", "size"))
  assert (
    f"| prompt | xs | 1,000 | 2 | 55.00 ± {statistics.stdev([50, 60]):.2f} | 35.00 ± "
    f"{statistics.stdev([40, 30]):.2f} | 20.00 ± {statistics.stdev([10, 30]):.2f} | "
    f"65.0 ± {statistics.stdev([80, 50]):.1f} |"
  ) in text
  no_ood = {k: v for k, v in _row("g", "prompt", "s", 0, 1.0, 1.0).items() if "/ood/" not in k}
  with pytest.raises(ValueError, match="point g has no eval/wordnet_supersense/ood/accuracy"):
    domain_shift.table([no_ood], TASK, ("method",))


def test_make_figures_redraws_from_the_archives_and_leaves_docs_of_partial_ones(tmp_path):
  """Each complete archive's plot is the committed docs PNG, byte for byte; a partial
  archive (or none) leaves the docs' PNG as it is."""
  docs = tmp_path / "new" / "docs"  # a folder that does not exist yet: the script makes it
  result = subprocess.run(
    [
      sys.executable,
      "scripts/scaling_figures.py",
      f"--docs_dir={docs}",
      f"--out_dir={tmp_path / 'out'}",
    ],
    cwd=conftest.REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "## Table 1: domain shift" in result.stdout
  committed = os.path.join(conftest.REPO_ROOT, "docs", "scaling")
  for name in os.listdir(committed):
    if not name.endswith(".png"):
      continue
    if (docs / name).exists():  # redrawn from a complete archive: the committed bytes
      assert filecmp.cmp(docs / name, os.path.join(committed, name), shallow=False), name
    else:  # no complete archive yet: the script says so
      stem = name[:-4]
      assert (
        f"## {stem}\n\nno archive at results/{stem}" in result.stdout
        or f"{stem}: partial (" in result.stdout
      ), name


def test_the_by_task_table_pools_seeds_per_setting_and_task():
  import importlib.util  # pylint: disable=g-import-not-at-top

  spec = importlib.util.spec_from_file_location(
    "scaling_figures", os.path.join(conftest.REPO_ROOT, "scripts", "scaling_figures.py")
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  meta = {
    "axes": ["size", "method", "task", "RANDOM_SEED"],
    "seed_axes": ["RANDOM_SEED"],
    "average_axes": ["task"],
  }

  def row(method, task, seed, test, share, status="done"):
    return {
      "size": "xs",
      "method": method,
      "task": task,
      "RANDOM_SEED": seed,
      "status": status,
      f"eval/wordnet_{task}/test/accuracy@best": test,
      f"eval/wordnet_{task}/test/predictions/most_common_share@best": share,
      f"eval/wordnet_{task}/test/predictions/outside_labels_share@best": share / 10,
    }

  rows = [
    row("prompt", "supersense", 0, 10.0, 0.5),
    row("prompt", "supersense", 1, 20.0, 0.3),
    row("prompt", "hypernym", 0, 50.0, 1.0),
    row("model", "supersense", 0, 90.0, 0.125),
    row("model", "hypernym", 0, 99.0, 0.9, status="failed"),
  ]  # not done: left out
  text = module.by_task(meta, rows)
  assert (
    f"| xs | prompt | 15.00 ± {statistics.stdev([10, 20]):.2f} (2) | 40% | 4% | 50.00 (1) | "
    "100% | 10% |"
  ) in text
  assert "| xs | model | 90.00 (1) | 12% | 1% | — | — | — |" in text
  assert module.by_task({**meta, "average_axes": []}, rows) == ""
