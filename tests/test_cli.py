"""What a newcomer asks the command line: the tasks there are, the macros a run needs."""

import errno
import os
import re
import shutil
import subprocess
import sys

import pytest
import seqio

from prompt_tuning import tasks
from tests import conftest


def test_listing_names_the_bundled_and_paper_tasks():
  lines = tasks.listing(["prompt_tuning.data.tasks"], "wordnet_supersense")
  (line,) = [line for line in lines if line.startswith("wordnet_supersense  task  splits: ")]
  assert "validation" in line
  # And the multi-task mixture's copy of it, its inputs led by the task's sentinel.
  assert any(line.startswith("wordnet_multitask.wordnet_supersense  task") for line in lines)
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
def test_help_shows_the_entry_points_flags_and_the_shared_ones():
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=1",
    PYTHONPROFILEIMPORTTIME="1",  # each import on stderr, through the entry point's restart
  )
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
    "--log_dir",
  ):
    assert flag in helped.stdout, flag
  assert "--jax_" not in helped.stdout
  # Help needs no data pipeline: TensorFlow (5 of the 7 s help took) is not imported.
  imported = re.findall(r"^import time:.*\| +([\w.]+)$", helped.stderr, flags=re.M)
  assert "jax" in imported and "tensorflow" not in imported, helped.stderr[-2000:]
  # The tasks command: tests/test_readme.py::test_listing_the_wordnet_tasks_runs runs it.


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


def test_a_full_disk_is_said_on_one_line_with_what_to_do(tmp_path, monkeypatch):
  """A full disk while writing MODEL_DIR was a 43-line OSError; numpy's and tensorstore's
  write errors carry no errno ("2560 requested and 992 written"), so the free space where the
  command writes decides, or above it when the failed run removed its MODEL_DIR."""
  from prompt_tuning import cli  # pylint: disable=g-import-not-at-top

  model_dir = tmp_path / "run"  # never made: as a failed run leaves it
  monkeypatch.setattr(cli, "_output_directory", str(model_dir))
  free = {"bytes": 10 << 30}
  asked = []

  def disk_usage(path):
    asked.append(path)
    return shutil._ntuple_diskusage(100 << 30, (100 << 30) - free["bytes"], free["bytes"])  # pylint: disable=protected-access

  monkeypatch.setattr(shutil, "disk_usage", disk_usage)
  short_write = OSError("2560 requested and 992 written")
  assert cli.describe_failure(short_write) == "2560 requested and 992 written"
  assert asked == [str(tmp_path)]
  free["bytes"] = 8192
  assert cli.describe_failure(short_write) == (
    f"no space left on the disk of {model_dir} (2560 requested and 992 written); free some "
    "and rerun the same command (a training run resumes from its last saved step)"
  )
  monkeypatch.setattr(cli, "_output_directory", "gs://bucket/run")  # not this disk's space
  assert cli.describe_failure(short_write) == "2560 requested and 992 written"
  monkeypatch.setattr(cli, "_output_directory", None)
  assert cli.describe_failure(OSError(errno.ENOSPC, "No space left on device")).startswith(
    "no space left ([Errno 28] No space left on device); free some"
  )
  assert cli.describe_failure(ValueError("PROMPT_LENGTH=0")) == "PROMPT_LENGTH=0"


@pytest.mark.integration
def test_training_onto_a_full_disk_stops_on_one_line_and_the_rerun_finishes(tmp_path):
  """On a real full file system (a small tmpfs; skipped where this process may not mount)."""
  disk = tmp_path / "disk"
  disk.mkdir()
  mounted = subprocess.run(
    ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True
  )
  if mounted.returncode != 0:
    pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
  try:
    (disk / "filler").write_bytes(b"\0" * (570 << 10))  # 30 KiB left: the checkpoint fails
    command = [
      sys.executable,
      "-m",
      "prompt_tuning.train",
      "--gin_file=configs/runs/wordnet_demo.gin",
      f"--gin.MODEL_DIR='{disk / 'run'}'",
      "--gin.TRAIN_STEPS=2",
    ]
    run = lambda: subprocess.run(  # noqa: E731
      command, cwd=conftest.REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    failed = run()
    assert failed.returncode == 1, failed.stderr[-3000:]
    not_info = [line for line in failed.stderr.splitlines() if not line.startswith("I")]
    assert len(not_info) == 1 and not_info[0].startswith(
      f"error: no space left on the disk of {disk / 'run'} ("
    ), failed.stderr[-3000:]
    (disk / "filler").unlink()
    done = run()
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"prompt={disk / 'run'}/numpy_checkpoints/checkpoint_2" in done.stdout
  finally:
    subprocess.run(["umount", str(disk)], check=False)
