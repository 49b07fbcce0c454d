"""The README's Python API example (the block building a Predictor) runs as written, offline."""

import os
import re
import subprocess
import sys

import pytest

from tests import conftest


@pytest.mark.integration
def test_readme_python_example_runs(tmp_path):
  readme = (conftest.REPO_ROOT / "README.md").read_text()
  blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S)
            if "gin_config.predictor(" in b]
  assert len(blocks) == 1
  script = tmp_path / "example.py"
  script.write_text(blocks[0])
  env = dict(os.environ,
             XLA_FLAGS="--xla_force_host_platform_device_count=1")
  result = subprocess.run([sys.executable, str(script)], cwd=conftest.REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert lines[0].startswith("sentiment ") and lines[1].startswith("topic ")
  assert "{'sentiment':" in lines[-1]
