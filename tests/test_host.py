"""Process settings for CPU hosts: a CPU device per core, glibc's huge-page tunable."""

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
