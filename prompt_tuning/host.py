"""Process settings that make XLA's CPU backend use the host well; entry points apply them.

Two problems with a plain process on a CPU host, measured in BENCHMARKS.md ("What
limits it", under the train-step benchmark against PEFT):

* XLA's CPU backend runs each matmul on one thread, and a transformer layer's
  matmuls mostly depend on each other, so one CPU device leaves cores idle.
  `use_a_cpu_device_per_core` asks XLA for one CPU device per core; the mesh's
  data axis then splits the batch over them.
* Each execution gets its temporaries as one large allocation, which glibc maps
  fresh every step, page by page. glibc's `glibc.malloc.hugetlb=1` tunable backs
  such mappings with transparent huge pages (far fewer page faults). glibc reads
  tunables only at start-up, so `reexec_with_huge_pages` restarts the same command
  once with it.

Accelerator platforms are unaffected by either. Both must run before JAX starts
its backends (the first `jax.devices()`).

A third setting makes runs repeatable across hosts and schedulers: XLA's CPU
results depend on how many cores the process may use (the same run pinned to
one core and to two gives different prompts; each is bitwise repeatable). With
`PROMPT_TUNING_CPU_CORES=N` in the environment, `claim_cpu_cores` restricts the
process to N of its cores before anything starts, taking cores that no other
run on the host has claimed; sweeps set it for every point.
"""

import fcntl
import os
import platform
import re
import sys
import tempfile
from typing import Optional

from absl import logging

DEVICE_COUNT_FLAG = "xla_force_host_platform_device_count"
_HUGE_PAGES = "glibc.malloc.hugetlb=1"
CPU_CORES_VARIABLE = "PROMPT_TUNING_CPU_CORES"
_CLAIMED_VARIABLE = "PROMPT_TUNING_CPU_CORES_CLAIMED"  # set once claimed (survives the re-exec)


def available_cores() -> int:
  """The cores this process may run on (its affinity where the platform has one)."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def use_a_cpu_device_per_core(batch_size: int) -> Optional[int]:
  """Sets XLA_FLAGS for one CPU device per core (a divisor of the batch).

  Does nothing if XLA_FLAGS already sets the device count (that choice wins).

  Args:
    batch_size: the per-host batch; the device count divides it.

  Returns:
    The device count set, or None if it was left alone.
  """
  flags = os.environ.get("XLA_FLAGS", "")
  if re.search(DEVICE_COUNT_FLAG, flags):
    return None
  cores = available_cores()
  count = max(d for d in range(1, cores + 1) if batch_size % d == 0)
  if count < cores:
    logging.warning(
      "BATCH_SIZE=%d does not divide over this host's %d cores: %d CPU device%s, %d core%s "
      "left idle; a BATCH_SIZE that is a multiple of %d uses them all",
      batch_size,
      cores,
      count,
      "" if count == 1 else "s",
      cores - count,
      "" if cores - count == 1 else "s",
      cores,
    )
  os.environ["XLA_FLAGS"] = f"{flags} --{DEVICE_COUNT_FLAG}={count}".strip()
  return count


def huge_pages_environment(environ: Optional[dict[str, str]] = None) -> Optional[dict[str, str]]:
  """`environ` with glibc's huge-page tunable added, or None if not glibc or already set."""
  environ = dict(os.environ if environ is None else environ)
  tunables = environ.get("GLIBC_TUNABLES", "")
  if platform.libc_ver()[0] != "glibc" or "glibc.malloc.hugetlb" in tunables:
    return None
  environ["GLIBC_TUNABLES"] = f"{tunables}:{_HUGE_PAGES}" if tunables else _HUGE_PAGES
  return environ


def _lock_directory() -> str:
  return os.path.join(tempfile.gettempdir(), f"prompt_tuning_cores.{os.getuid()}")


def claim_cpu_cores(environ: Optional[dict[str, str]] = None) -> Optional[list[int]]:
  """Restricts this process to PROMPT_TUNING_CPU_CORES=N of its cores, if that is set.

  Cores are claimed with a lock file each (in the temp directory): concurrent
  runs on one host (a sweep's points, Ray tasks) get different cores, and a
  core is free again when its process ends, however it ends. When fewer than N
  are free, the first N allowed are shared, with a warning: the results are
  the same, only slower.

  Returns:
    The cores now used, or None if the variable is unset.

  Raises:
    ValueError: N is not a positive integer or exceeds the cores allowed.
  """
  environ = os.environ if environ is None else environ
  wanted = environ.get(CPU_CORES_VARIABLE)
  if not wanted:
    return None
  if environ.get(_CLAIMED_VARIABLE):  # claimed before this process re-executed itself
    return [int(c) for c in environ[_CLAIMED_VARIABLE].split(",")]
  if not hasattr(os, "sched_setaffinity"):  # not Linux: no pinning (nor its guarantee)
    logging.warning(
      "%s is set, but this platform cannot pin a process to cores", CPU_CORES_VARIABLE
    )
    return None
  allowed = sorted(os.sched_getaffinity(0))
  if not wanted.isdigit() or not 1 <= int(wanted) <= len(allowed):
    raise ValueError(
      f"{CPU_CORES_VARIABLE}={wanted!r}; it must be a number of cores from 1 "
      f"to the {len(allowed)} this process may use"
    )
  count, cores, fds = int(wanted), [], []
  try:
    os.makedirs(_lock_directory(), exist_ok=True)
    for core in allowed:
      fd = os.open(os.path.join(_lock_directory(), f"{core}.lock"), os.O_RDWR | os.O_CREAT)
      try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except OSError:
        os.close(fd)
        continue
      os.set_inheritable(fd, True)  # held until this process (after any re-exec) ends
      cores.append(core)
      fds.append(fd)
      if len(cores) == count:
        break
  except OSError:
    pass  # no usable lock directory: share
  if len(cores) < count:
    logging.warning(
      "%s=%d: only %d of this host's cores are unclaimed; sharing the first %d",
      CPU_CORES_VARIABLE,
      count,
      len(cores),
      count,
    )
    for fd in fds:  # not used: free for other runs
      os.close(fd)
    cores = allowed[:count]
  os.sched_setaffinity(0, cores)
  environ[_CLAIMED_VARIABLE] = ",".join(map(str, cores))
  return cores


def set_up_process() -> None:
  """What an entry point does first, before the heavy imports: `claim_cpu_cores`, then
  `reexec_with_huge_pages` (the restarted process keeps the cores)."""
  try:
    claim_cpu_cores()
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  reexec_with_huge_pages()
  if not asks_for_help(sys.argv):  # help needs no data pipeline: printed in 2 s, not 7
    import_tensorflow_quietly()


# absl's help flags (it exits 1 after them; cli.run answers them itself and exits 0).
HELP_FLAGS = frozenset({"--help", "-help", "-h", "-?", "--helpshort", "--helpfull"})


def asks_for_help(argv: list[str]) -> bool:
  return bool(HELP_FLAGS.intersection(argv[1:]))


# What TensorFlow's native libraries print while they load, before anything can set their
# logging: the C++ logger's start-up notice, oneDNN's, and the search for a GPU (on a host
# without one an E-level `failed call to cuInit`), each twice. Not about the run.
_TENSORFLOW_LOAD_NOISE = (
  "All log messages before absl::InitializeLog() is called",
  "oneDNN custom operations are on",
  "Could not find cuda drivers on your machine",
  "failed call to cuInit",
)


def _asks_verbose(argv: list[str]) -> bool:
  return any(
    a in ("--verbose", "-verbose") or a.lower() in ("--verbose=true", "--verbose=1") for a in argv
  )


def import_tensorflow_quietly() -> None:
  """Imports TensorFlow (the data pipelines' library) with its loading noise off the console.

  Its native libraries print `_TENSORFLOW_LOAD_NOISE` on stderr while they load; this
  imports it with stderr caught and passes on every other line. It also hides the GPUs
  from TensorFlow, which only feeds data here (the accelerators are JAX's), as t5x does.
  With --verbose on the command line it does neither.
  """
  if "tensorflow" in sys.modules or _asks_verbose(sys.argv):
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ INFO lines
  sys.stdout.flush()
  sys.stderr.flush()
  console = os.dup(2)
  with tempfile.TemporaryFile() as caught:
    os.dup2(caught.fileno(), 2)
    try:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top

      tf.config.set_visible_devices([], "GPU")
    finally:
      sys.stderr.flush()
      os.dup2(console, 2)
      os.close(console)
      caught.seek(0)
      lines = caught.read().decode(errors="replace").splitlines(keepends=True)
      kept = [l for l in lines if not any(noise in l for noise in _TENSORFLOW_LOAD_NOISE)]
      sys.stderr.write("".join(kept))
      sys.stderr.flush()


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
