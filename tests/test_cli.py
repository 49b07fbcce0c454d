"""What a newcomer asks the command line: the tasks there are, the macros a run needs."""

import os
import subprocess
import sys

import pytest
import seqio

from prompt_tuning import tasks
from tests import conftest


def test_listing_names_the_bundled_and_paper_tasks():
  lines = tasks.listing(["prompt_tuning.data.tasks"], "wordnet_supersense")
  assert lines and lines[0].startswith("wordnet_supersense  task  splits: ")
  assert "validation" in lines[0]
  mixtures = tasks.listing(["prompt_tuning.data.tasks"], "super_glue_v102")
  assert any("  mixture  tasks: " in line for line in mixtures)
  assert tasks.listing(["prompt_tuning.data.tasks"], "no_such_task_name") == []


def test_a_task_whose_data_is_not_prepared_is_listed_saying_so(tmp_path, monkeypatch):
  """The paper's tasks read tfds datasets that a fresh machine has not prepared: the listing
  lists them all the same (it exited 1 on the first, `Task dpr_v001_simple has no splits`)."""
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))  # nothing prepared there
  # As in a fresh `python -m prompt_tuning.tasks`: no builder that another test of this worker
  # loaded from its mock data dir (seqio keeps them for the process).
  monkeypatch.setattr(seqio.utils.LazyTfdsLoader, "_MEMOIZED_BUILDERS", {})
  lines = tasks.listing(["prompt_tuning.data.tasks"], "dpr_v001_simple")
  assert lines[0] == (
    "dpr_v001_simple  task  no data: tfds dataset definite_pronoun_resolution:1.1.0 not prepared"
  )


@pytest.mark.integration
def test_help_and_the_tasks_command():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  helped = subprocess.run(
    [sys.executable, "-m", "prompt_tuning.train", "--help"],
    cwd=conftest.REPO_ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
  )
  # Asking for help is no error (absl's own --help exits 1); it shows the entry point's
  # flags and the shared ones, not every library's.
  assert helped.returncode == 0, helped.stderr[-2000:]
  assert "REQUIRED macros (configs/runs/prompt_finetune.gin): MODEL_DIR," in helped.stdout
  for flag in (
    "--verbose",
    "--gin_file",
    "--gin_search_paths",
    "--tfds_data_dir",
    "--[no]multiprocess",
  ):
    assert flag in helped.stdout, flag
  assert "--jax_" not in helped.stdout
  listed = subprocess.run(
    [sys.executable, "-m", "prompt_tuning.tasks", "--filter=wordnet"],
    cwd=conftest.REPO_ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert listed.returncode == 0, listed.stderr[-2000:]
  # TensorFlow's loading lines stay off the console (an E-level `failed call to cuInit`
  # on a host without a GPU among them); only the listing's own summary line is there.
  assert listed.stderr.splitlines() == ["tasks: 4 registered names matching"]
  names = [line.split()[0] for line in listed.stdout.splitlines()]
  assert "wordnet_supersense" in names and all("wordnet" in n for n in names)


def test_the_console_drops_the_libraries_info_and_their_two_idle_warnings():
  import logging  # pylint: disable=g-import-not-at-top

  from prompt_tuning import cli  # pylint: disable=g-import-not-at-top

  def record(level, msg, path="/site-packages/seqio/evaluation.py"):
    return logging.LogRecord("absl", level, path, 1, msg, None, None)

  keep = cli._OwnInfoOnly().filter  # pylint: disable=protected-access
  assert not keep(
    record(
      logging.WARNING,
      "Given sequence lengths are longer than necessary "
      "for some evaluation inputs or targets, resulting in wasted computation.",
    )
  )
  assert not keep(
    record(
      logging.WARNING,
      "Using an uncached FunctionDataset for training is "
      "not recommended since it often results in insufficient shuffling",
    )
  )
  assert keep(
    record(
      logging.WARNING,
      "Given sequence lengths *may be* insufficient for some "
      "evaluation inputs or targets. Such sequences will be truncated",
    )
  )
  assert not keep(record(logging.INFO, "orbax: saved"))
  assert keep(record(logging.INFO, "step 1/2", os.path.join(cli._PACKAGE_DIR, "x.py")))  # pylint: disable=protected-access
