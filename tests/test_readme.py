"""The README's Python blocks and the own-task command run as written, offline."""

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests import conftest


def _run_python_block(tmp_path, marker: str) -> subprocess.CompletedProcess:
  """Runs the README's one ```python block containing `marker`, from the repository root."""
  readme = (conftest.REPO_ROOT / "README.md").read_text()
  blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if marker in b]
  assert len(blocks) == 1
  script = tmp_path / "example.py"
  script.write_text(blocks[0])
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  result = subprocess.run([sys.executable, str(script)], cwd=conftest.REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


@pytest.mark.integration
def test_readme_python_example_runs(tmp_path):
  lines = _run_python_block(tmp_path, "gin_config.predictor(").stdout.splitlines()
  assert lines[0].startswith("sentiment ") and lines[1].startswith("topic ")
  assert "{'sentiment':" in lines[-1]


def _readme_command(section: str, start: str) -> list[str]:
  """The README block of `section` that starts with `start`, as argv."""
  command = re.search(r"```\n(" + re.escape(start) + r".*?)```", section, flags=re.S)[1]
  return shlex.split(command.replace("\\\n", " "))


def _run(args, tmp_path, paths):
  """Runs a README command from the repository root with its /tmp paths moved to tmp_path."""
  assert args[:3] == ["PYTHONPATH=.", "python", "-m"] or args[:2] == ["python", "-m"]
  args = args[args.index("python"):]
  for old, new in paths.items():
    args = [a.replace(old, str(tmp_path / new)) for a in args]
  env = dict(os.environ, PYTHONPATH=str(tmp_path),
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  result = subprocess.run([sys.executable] + args[1:], cwd=conftest.REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


@pytest.mark.integration
@pytest.mark.slow
def test_readme_own_task_then_its_eval_and_infer_commands_run(tmp_path):
  """"Your own task" (its module, its training command), then the eval and infer commands
  of "Evaluation, inference, ensembles" on the prompt it trains: as written, offline."""
  readme = (conftest.REPO_ROOT / "README.md").read_text()
  section = readme[readme.index("### Your own task"):]
  module = re.search(r"```python\n# my_tasks.py\n(.*?)```", section, flags=re.S)[1]
  (tmp_path / "my_tasks.py").write_text(module)
  paths = {"/tmp/my_sentiment_eval": "eval", "/tmp/my_sentiment": "run",
           "in.jsonl": "in.jsonl", "out.jsonl": "out.jsonl"}
  result = _run(_readme_command(section, "PYTHONPATH=. python -m prompt_tuning.train"),
                tmp_path, paths)
  assert "train: step=6" in result.stdout
  assert "my_sentiment/accuracy=" in result.stderr

  evaluation = readme[readme.index("## Evaluation, inference, ensembles"):]
  result = _run(_readme_command(evaluation, "PYTHONPATH=. python -m prompt_tuning.eval"),
                tmp_path, paths)
  assert (tmp_path / "eval" / "metrics.json").exists(), result.stderr[-2000:]
  (tmp_path / "in.jsonl").write_text('{"inputs": "review: a gorgeous, moving film"}\n')
  _run(_readme_command(evaluation, "python -m prompt_tuning.infer"), tmp_path, paths)
  lines = (tmp_path / "out.jsonl").read_text().splitlines()
  assert len(lines) == 1 and {"inputs", "prediction", "score"} <= set(json.loads(lines[0]))


@pytest.mark.integration
def test_readme_model_example_prints_the_small_parameter_count(tmp_path):
  assert _run_python_block(tmp_path, "T5.1.1 Small").stdout.split() == ["76961152"]


def test_readme_sweep_file_is_the_shipped_mini_sweep():
  """The Sweeps section's sweep file is configs/sweeps/wordnet_mini.gin (comments aside),
  which tests/test_sweep.py parses into valid runs."""
  readme = (conftest.REPO_ROOT / "README.md").read_text()
  section = readme[readme.index("## Sweeps"):]
  block = re.search(r"```\n(from __gin__ import dynamic_registration\n.*?)```", section,
                    flags=re.S)[1]
  shipped = (conftest.REPO_ROOT / "configs" / "sweeps" / "wordnet_mini.gin").read_text()
  assert block.strip() == "\n".join(
      line for line in shipped.splitlines() if not line.startswith("#")).strip()
