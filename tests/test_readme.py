"""The command blocks of README.md and docs/*.md that the tests run, run as written, offline.

Each test reads its blocks with `doc_blocks.run_by(request, <page>)`: the blocks of that
page whose first line is `# run by tests/test_readme.py::<the test>`. The rule for the
others is in tests/helpers/doc_blocks.py; tests/test_docs_commands.py checks every block.
"""

import json
import re

import pytest

from tests import conftest
from tests.helpers import doc_blocks


@pytest.mark.integration
@pytest.mark.slow
def test_quickstart_trains_evaluates_and_predicts(request, tmp_path):
  """The README's quickstart: train, eval and infer, in a row, on the prompt it trains."""
  train, evaluate, infer = doc_blocks.run_by(request, "README.md")
  results = [doc_blocks.run_shell(train, tmp_path)]
  assert "train: step=30 " in results[0].stdout
  results.append(doc_blocks.run_shell(evaluate, tmp_path))
  metrics = json.loads((tmp_path / "quickstart_eval" / "metrics.json").read_text())
  assert "accuracy" in json.dumps(metrics)
  results.append(doc_blocks.run_shell(infer, tmp_path))
  lines = (tmp_path / "out.jsonl").read_text().splitlines()
  assert len(lines) == 1 and {"inputs", "prediction", "score"} <= set(json.loads(lines[0]))
  for result in results:  # TensorFlow's loading lines (4-5 a command) stay off the console
    noise = [l for l in result.stderr.splitlines() if re.search("cuInit|cuda drivers|oneDNN", l)]
    assert not noise, noise


@pytest.mark.integration
def test_quickstart_sweep_commands_run(request, tmp_path):
  """The README's sweep quickstart: a dry run creates nothing; report reads a shipped archive."""
  (block,) = doc_blocks.run_by(request, "README.md")
  result = doc_blocks.run_shell(block, tmp_path)
  assert "sweep wordnet_mini: 12 points" in result.stdout + result.stderr
  assert "dry run: nothing ran" in result.stdout + result.stderr
  assert not (tmp_path / "sweeps").exists()
  assert re.search(r"^sweep: \d+/\d+ points done results=", result.stdout, flags=re.M)
  assert (tmp_path / "report" / "figure1" / "summary.md").exists()
  assert not (conftest.REPO_ROOT / "results" / "figure1" / "summary.md").exists()


@pytest.mark.integration
def test_listing_the_wordnet_tasks_runs(request, tmp_path):
  (block,) = doc_blocks.run_by(request, "docs/tasks.md")
  listed = doc_blocks.run_shell(block, tmp_path)
  assert re.search(
    r"^wordnet_supersense +task +splits: train, validation, test, ood$", listed.stdout, flags=re.M
  ), listed.stdout
  assert all("wordnet" in line.split()[0] for line in listed.stdout.splitlines())
  # TensorFlow's loading lines stay off the console (an E-level `failed call to cuInit`
  # on a host without a GPU among them); only the listing's own summary line is there.
  assert listed.stderr.splitlines() == ["tasks: 7 registered names matching"]
  # The multi-task mixture and its two tasks (their inputs led by the task's sentinel).
  (mixture,) = re.findall(r"^wordnet_multitask +mixture +tasks: (.*)$", listed.stdout, re.M)
  assert sorted(mixture.split(", ")) == [
    "wordnet_multitask.wordnet_hypernym",
    "wordnet_multitask.wordnet_supersense",
  ]


@pytest.mark.integration
@pytest.mark.slow
def test_own_task_module_and_its_training_command_run(request, tmp_path):
  """docs/tasks.md's "Your own task": its module, then its training command, offline."""
  module, command = doc_blocks.run_by(request, "docs/tasks.md")
  assert module.splitlines()[1] == "# my_tasks.py"
  (tmp_path / "my_tasks.py").write_text(module)
  result = doc_blocks.run_shell(
    command, tmp_path, replace={"PYTHONPATH=. ": f"PYTHONPATH={tmp_path} "}
  )
  assert "train: step=6" in result.stdout
  assert "my_sentiment/accuracy=" in result.stderr
  assert (tmp_path / "my_sentiment" / "numpy_checkpoints" / "checkpoint_6").is_dir()


@pytest.mark.integration
def test_python_api_example_runs(request, tmp_path):
  (block,) = doc_blocks.run_by(request, "docs/evaluation.md")
  lines = doc_blocks.run_python(block, tmp_path).stdout.splitlines()
  assert lines[0].startswith("sentiment ") and lines[1].startswith("topic ")
  assert "{'sentiment':" in lines[-1]


@pytest.mark.integration
def test_model_example_prints_the_small_parameter_count(request, tmp_path):
  (block,) = doc_blocks.run_by(request, "docs/architecture.md")
  assert doc_blocks.run_python(block, tmp_path).stdout.split() == ["76961152"]


def test_a_prompt_saved_by_the_original_code_loads(request, tmp_path):
  (block,) = doc_blocks.run_by(request, "docs/migrating.md")
  assert doc_blocks.run_python(block, tmp_path).stdout.split() == ["(100,", "768)"]


def test_sweep_file_is_the_shipped_mini_sweep():
  """docs/sweeps.md's sweep file is configs/sweeps/wordnet_mini.gin (comments aside),
  which tests/sweep/test_sweep_files.py parses into valid runs."""
  (block,) = [b.text for b in doc_blocks.blocks("docs/sweeps.md") if b.info == "gin"]
  shipped = (conftest.REPO_ROOT / "configs" / "sweeps" / "wordnet_mini.gin").read_text()
  assert (
    block.strip()
    == "\n".join(line for line in shipped.splitlines() if not line.startswith("#")).strip()
  )
