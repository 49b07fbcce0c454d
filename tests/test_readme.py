"""The README's Python blocks and the own-task command run as written, offline."""

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


@pytest.mark.integration
@pytest.mark.slow
def test_readme_own_task_module_and_command_run(tmp_path):
  """The "Your own task" section: its module, imported by its training command, offline."""
  readme = (conftest.REPO_ROOT / "README.md").read_text()
  section = readme[readme.index("### Your own task"):]
  module = re.search(r"```python\n# my_tasks.py\n(.*?)```", section, flags=re.S)[1]
  command = re.search(r"```\n(PYTHONPATH=\. python -m prompt_tuning.train .*?)```", section,
                      flags=re.S)[1]
  (tmp_path / "my_tasks.py").write_text(module)
  args = shlex.split(command.replace("\\\n", " "))
  assert args[:3] == ["PYTHONPATH=.", "python", "-m"]
  model_dir = tmp_path / "run"
  args = [sys.executable] + [
      f"--gin.MODEL_DIR='{model_dir}'" if a.startswith("--gin.MODEL_DIR=") else a
      for a in args[2:]]
  env = dict(os.environ, PYTHONPATH=str(tmp_path),
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  result = subprocess.run(args, cwd=conftest.REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "train: step=6" in result.stdout
  assert "my_sentiment/accuracy=" in result.stderr


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
