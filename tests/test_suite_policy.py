"""The suite's own policies: the shared vocabulary is loud in CI, a stated skip locally."""

import os
import shutil
import subprocess
import sys

import pytest

from tests import conftest


def _copy_of_the_suite(tmp_path):
  """tests/ and pytest.ini in a directory with no shared/ beside it."""
  repo = tmp_path / "repo"
  shutil.copytree(
    conftest.REPO_ROOT / "tests", repo / "tests", ignore=shutil.ignore_patterns("__pycache__")
  )
  shutil.copy(conftest.REPO_ROOT / "pytest.ini", repo / "pytest.ini")
  assert not (tmp_path / "shared").exists()
  return repo


def _pytest(repo, *args, ci):
  env = {k: v for k, v in os.environ.items() if k != "CI"}
  env.update({"CI": "true"} if ci else {})
  env.pop("PROMPT_TUNING_T5_VOCABULARY", None)  # conftest derives it from the repo
  return subprocess.run(
    [sys.executable, "-m", "pytest", *args],
    cwd=repo,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


@pytest.mark.integration
def test_missing_vocabulary_fails_ci_and_skips_locally_with_the_reason(tmp_path):
  repo = _copy_of_the_suite(tmp_path)
  missing = str(tmp_path / "shared" / "data" / "t5_sentencepiece.model")
  ci = _pytest(repo, "tests/models/test_prompt_init.py", ci=True)
  assert ci.returncode != 0
  assert f"the T5 SentencePiece model is missing: {missing}" in ci.stdout + ci.stderr
  local = _pytest(repo, "tests/models/test_prompt_init.py", ci=False)
  assert local.returncode == 0, local.stdout[-2000:]
  assert "SKIPPED" in local.stdout and missing in local.stdout  # -rs shows the reason
