"""docs/migrating.md: the original codebase's sst2-demo.sh command line, with only
`t5x.train` replaced by `prompt_tuning.train`, run as written from outside the repository.

Offline it must get past the flags (`--gin_search_paths` as one comma-separated
list, `--tfds_data_dir`), the gin files by their package paths, the task module
`prompt_tuning.data.glue` and the task name, then stop with one line on what it
cannot read from gs://t5-data: T5's vocabulary; with a local vocabulary, the
checkpoint.
"""

import os
import subprocess
import sys

import pytest

from tests import conftest
from tests.helpers import doc_blocks


def _run(block: str, tmp_path, extra: str = "") -> subprocess.CompletedProcess:
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir(exist_ok=True)
  shim = bin_dir / "python3"
  shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
  shim.chmod(0o755)
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir(exist_ok=True)
  script = block.replace("/tmp/", f"{tmp_path}/").rstrip("\n") + extra + "\n"
  env = dict(
    os.environ,
    PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    XLA_FLAGS="--xla_force_host_platform_device_count=1",
  )
  return subprocess.run(
    ["bash", "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
  )


def _errors(result) -> list[str]:
  assert result.returncode == 1, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


@pytest.mark.integration
@pytest.mark.slow
def test_the_original_sst2_demo_command_line_runs_to_its_first_offline_stop(request, tmp_path):
  (block,) = doc_blocks.run_by(request, "docs/migrating.md")
  assert "python3 -m prompt_tuning.train" in block and "t5x" not in block.split(
    "python3 -m prompt_tuning.train"
  )[1].split("--gin_file")[0].replace("T5X_DIR", "")
  first = _run(block, tmp_path)
  # find_module says on stderr that t5x and flaxformer are not needed here.
  assert "no module 't5x' is installed (not needed here" in first.stderr
  (line,) = _errors(first)
  assert line.startswith(
    "error: cannot read the SentencePiece vocabulary gs://t5-data/vocabs/"
    "cc_all.32000.100extra/sentencepiece.model ("
  ), line
  assert line.endswith(
    "set SENTENCEPIECE_MODEL_FILE to a local copy (offline, gs:// cannot be read)"
  ), line

  # With T5's vocabulary local (the tasks' through PROMPT_TUNING_T5_VOCABULARY, set by
  # conftest), the next thing it cannot read is the checkpoint.
  second = _run(
    block, tmp_path, f" \\\n  --gin.SENTENCEPIECE_MODEL_FILE=\"'{conftest.VOCAB_PATH}'\""
  )
  (line,) = _errors(second)
  assert line.startswith(
    "error: INITIAL_CHECKPOINT_PATH gs://t5-data/pretrained_models/t5x/"
    "t5_1_1_lm100k_base/checkpoint_1100000 could not be read"
  ), line


def test_find_module_prints_a_packages_directory_and_refuses_a_missing_one(tmp_path):
  def find(name):
    return subprocess.run(
      [sys.executable, "-m", "prompt_tuning.scripts.find_module", name],
      cwd=tmp_path,
      capture_output=True,
      text=True,
      timeout=60,
    )

  found = find("prompt_tuning")
  assert found.returncode == 0
  assert os.path.realpath(found.stdout.strip()) == os.path.realpath(
    conftest.REPO_ROOT / "prompt_tuning"
  )
  missing = find("t5x")
  assert missing.returncode == 1 and missing.stdout == ""
  assert missing.stderr.strip() == (
    "find_module: no module 't5x' is installed (not needed here: prompt_tuning runs without it)"
  )


def test_gin_search_paths_take_a_comma_separated_list():
  from prompt_tuning import cli  # pylint: disable=g-import-not-at-top

  assert cli.search_paths(["/a,/b/..,", "/c"]) == ["/a", "/b/..", "/c"]
