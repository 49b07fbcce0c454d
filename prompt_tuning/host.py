"""Process settings that make XLA's CPU backend use the host well; entry points apply them.

Two measured problems with a plain process on a CPU host (BENCHMARKS.md):

* XLA's CPU backend runs each matmul on one thread, and a transformer layer's
  matmuls mostly depend on each other, so one CPU device leaves cores idle.
  `use_a_cpu_device_per_core` asks XLA for one CPU device per core; the mesh's
  data axis then splits the batch over them.
* Each execution gets its temporaries as one large allocation (2.1 GB per
  device for a T5.1.1 Small step at batch 32), which glibc maps fresh every
  step: about a million page faults and 2.5-3 s of kernel time per step on 2
  cores. glibc's `glibc.malloc.hugetlb=1` tunable backs such mappings with
  transparent huge pages (500x fewer faults). glibc reads tunables only at
  start-up, so `reexec_with_huge_pages` restarts the same command once with it.

Accelerator platforms are unaffected by either. Both must run before JAX starts
its backends (the first `jax.devices()`).
"""

import os
import platform
import re
import sys
from typing import Optional

_DEVICE_COUNT_FLAG = "xla_force_host_platform_device_count"
_HUGE_PAGES = "glibc.malloc.hugetlb=1"


def use_a_cpu_device_per_core(batch_size: int) -> Optional[int]:
  """Sets XLA_FLAGS for one CPU device per core (a divisor of the batch).

  Does nothing if XLA_FLAGS already sets the device count (that choice wins).

  Args:
    batch_size: the per-host batch; the device count divides it.

  Returns:
    The device count set, or None if it was left alone.
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if re.search(_DEVICE_COUNT_FLAG, flags):
    return None
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  count = max(d for d in range(1, (cores or 1) + 1) if batch_size % d == 0)
  os.environ["XLA_FLAGS"] = f"{flags} --{_DEVICE_COUNT_FLAG}={count}".strip()
  return count


def huge_pages_environment(environ: Optional[dict[str, str]] = None) -> Optional[dict[str, str]]:
  """`environ` with glibc's huge-page tunable added, or None if not glibc or already set."""
  environ = dict(os.environ if environ is None else environ)
  tunables = environ.get("GLIBC_TUNABLES", "")
  if platform.libc_ver()[0] != "glibc" or "glibc.malloc.hugetlb" in tunables:
    return None
  environ["GLIBC_TUNABLES"] = f"{tunables}:{_HUGE_PAGES}" if tunables else _HUGE_PAGES
  return environ


def reexec_with_huge_pages() -> None:
  """Replaces this process by the same command with the huge-page tunable (same PID).

  Returns (doing nothing) where the tunable is set already or glibc is not the
  C library; call it first thing in an entry point, before heavy imports.
  """
  environ = huge_pages_environment()
  if environ is not None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, environ)
