"""Process settings for CPU hosts: a CPU device per core, glibc's huge-page tunable."""

import logging
import os
import platform

import pytest

from prompt_tuning import host


@pytest.mark.parametrize("cores, batch, expected", [(2, 32, 2), (6, 32, 4), (8, 12, 6), (3, 7, 1)])
def test_a_cpu_device_per_core_divides_the_batch(monkeypatch, cores, batch, expected):
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
  assert host.use_a_cpu_device_per_core(batch) == expected
  assert os.environ["XLA_FLAGS"] == f"--xla_force_host_platform_device_count={expected}"


@pytest.mark.parametrize("cores, batch, said", [(2, 3, True), (6, 32, True), (2, 32, False)])
def test_a_batch_that_leaves_cores_idle_says_so(monkeypatch, caplog, cores, batch, said):
  """With BATCH_SIZE=3 on 2 cores a run fell back to one device without a word."""
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
  with caplog.at_level(logging.WARNING):
    count = host.use_a_cpu_device_per_core(batch)
  warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  if said:
    assert warned == [
      f"BATCH_SIZE={batch} does not divide over this host's {cores} cores: {count} CPU "
      f"device{'s' if count > 1 else ''}, {cores - count} core{'s' if cores - count > 1 else ''} "
      f"left idle; a BATCH_SIZE that is a multiple of {cores} uses them all"
    ]
  else:
    assert not warned


def test_a_device_count_in_xla_flags_wins(monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8 --xla_dump_to=/x")
  assert host.use_a_cpu_device_per_core(32) is None
  assert os.environ["XLA_FLAGS"] == "--xla_force_host_platform_device_count=8 --xla_dump_to=/x"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc tunables need glibc")
def test_huge_page_tunable_is_added_once_and_keeps_other_tunables():
  env = host.huge_pages_environment({"PATH": "/bin"})
  assert env == {"PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
  env = host.huge_pages_environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
  assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
  assert host.huge_pages_environment(env) is None
  assert host.huge_pages_environment({"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}) is None


_CLAIM = (
  "import os, sys, time\n"
  "from prompt_tuning import host\n"
  "cores = host.claim_cpu_cores({'PROMPT_TUNING_CPU_CORES': '1'})\n"
  "print(cores, sorted(os.sched_getaffinity(0)), flush=True)\n"
  "sys.stdin.read()\n"
)  # holds its core until the test closes stdin


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores")
def test_concurrent_runs_claim_different_cores_and_share_when_none_is_free(tmp_path):
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  allowed = sorted(os.sched_getaffinity(0))
  env = {**os.environ, "TMPDIR": str(tmp_path)}  # its own lock directory
  runs = []
  for _ in range(len(allowed) + 1):
    runs.append(
      subprocess.Popen(
        [sys.executable, "-c", _CLAIM],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
      )
    )
    runs[-1].first_line = runs[-1].stdout.readline()  # claimed before the next one starts
  claimed = [eval(r.first_line.split("] [")[0] + "]") for r in runs]  # pylint: disable=eval-used
  pinned = [eval("[" + r.first_line.split("] [")[1]) for r in runs]  # pylint: disable=eval-used
  for r in runs:
    r.communicate("")
  assert sorted(c[0] for c in claimed[:-1]) == allowed  # one core each, all different
  assert claimed == pinned  # and each process runs on its core only
  assert claimed[-1] == allowed[:1]  # none free: the first one, shared
  with pytest.raises(ValueError, match="PROMPT_TUNING_CPU_CORES='0'; it must be"):
    host.claim_cpu_cores({"PROMPT_TUNING_CPU_CORES": "0"})


@pytest.mark.parametrize(
  "argv, imports",
  [(["train", "--help"], False), (["train", "-h"], False), (["train", "--gin_file=x.gin"], True)],
)
def test_help_is_answered_without_importing_tensorflow(monkeypatch, argv, imports):
  """TensorFlow (the data pipelines') took 5 of --help's 7 s: help needs none of it."""
  monkeypatch.setattr(host, "claim_cpu_cores", lambda: None)
  monkeypatch.setattr(host, "reexec_with_huge_pages", lambda: None)
  imported = []
  monkeypatch.setattr(host, "import_tensorflow_quietly", lambda: imported.append(True))
  monkeypatch.setattr(host.sys, "argv", argv)
  host.set_up_process()
  assert bool(imported) == imports
