"""Where a sweep's points run: `local` subprocesses, or Ray tasks (`ray_executor`).

An executor gets the points still to run as `Job`s and reports each start and
end to the driver's `Events`; it decides nothing else. A point's process claims
its own cores (PROMPT_TUNING_CPU_CORES, see host.py), so concurrent points on
one host take different cores and each gets the same numbers wherever it runs.
"""

import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import time
from typing import Any, Optional, Protocol, Sequence

from prompt_tuning import host
from prompt_tuning.sweep import points

_PR_SET_PDEATHSIG = 1


@dataclasses.dataclass(frozen=True)
class Job:
  name: str
  argv: tuple[str, ...]  # argv[0] is "python": the interpreter of whoever runs it
  env: dict[str, str]
  log_path: str
  cwd: str
  resources: dict[str, float]


class Events(Protocol):
  def started(self, job: Job) -> None: ...

  def finished(self, job: Job, returncode: int, seconds: float) -> None: ...


def _stop_with_parent() -> None:
  """In the child, before exec: SIGTERM when the parent dies (the trainer saves and stops).

  A sweep driver that is killed (kill -9, a lost session) then leaves no
  orphaned points behind; the next run resumes them from their checkpoints.
  """
  try:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
  except (OSError, AttributeError):
    pass  # not Linux: orphans finish on their own


CACHE_VARIABLE = "JAX_COMPILATION_CACHE_DIR"
# JAX's own default skips computations that compile in under a second: a small
# model's steps, which is most of what a sweep of small models compiles.
MIN_COMPILE_TIME_VARIABLE = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"


def compilation_cache(environ: Optional[dict[str, str]] = None) -> dict[str, str]:
  """The variables that give every point one persistent JAX compilation cache.

  A sweep's points of one shape compile the same train, evaluation and
  decoding steps; with the cache the later ones read the executables from disk
  (XLA keys each by the computation, its compile options, the backend and the
  jax version, so a hit runs what a compile would have made). It changes how
  long a point takes, not what it computes, so it is no part of a point's
  recorded environment (command.sh, the config digest a `--reuse_from` copy
  matches). The cache is `$XDG_CACHE_HOME/prompt_tuning/jax` (`~/.cache/...`);
  a JAX_COMPILATION_CACHE_DIR already set wins (an empty one turns it off).
  """
  environ = os.environ if environ is None else environ
  if CACHE_VARIABLE in environ:
    return {}
  cache_home = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return {
    CACHE_VARIABLE: os.path.join(cache_home, "prompt_tuning", "jax"),
    MIN_COMPILE_TIME_VARIABLE: environ.get(MIN_COMPILE_TIME_VARIABLE, "0"),
  }


def start(job: Job) -> subprocess.Popen:
  """Starts a job's command, appending its output to its log (with `compilation_cache`)."""
  argv = [sys.executable if job.argv[0] == "python" else job.argv[0], *job.argv[1:]]
  with open(job.log_path, "a") as log:
    log.write(
      f"{points.ATTEMPT_HEADER}{time.strftime('%Y-%m-%d %H:%M:%S')} on "
      f"{os.uname().nodename}: "
      f"{' '.join(argv)}\n"
    )
    log.flush()
    return subprocess.Popen(
      argv,
      stdout=log,
      stderr=subprocess.STDOUT,
      stdin=subprocess.DEVNULL,
      cwd=job.cwd if os.path.isdir(job.cwd) else None,
      env={**os.environ, **compilation_cache(), **job.env},
      preexec_fn=_stop_with_parent,
      # Its own session: a Ctrl-C at the terminal reaches the driver only, which stops
      # each point with one SIGTERM (a second signal would cut its save short).
      start_new_session=True,
    )


def stop(process: subprocess.Popen, grace_s: float = 120.0, signalled: bool = False) -> int:
  """SIGTERM (the trainer saves its step and exits), then SIGKILL after `grace_s`."""
  if process.poll() is None:
    if not signalled:
      process.send_signal(signal.SIGTERM)
    try:
      process.wait(grace_s)
    except subprocess.TimeoutExpired:
      process.kill()
  return process.wait()


def run_job(job: Job) -> tuple[int, float]:
  """Runs one job to its end: (return code, seconds). Ctrl-C stops it cleanly."""
  begin = time.time()
  process = start(job)
  try:
    returncode = process.wait()
  except KeyboardInterrupt:
    returncode = stop(process)
  return returncode, time.time() - begin


def local(jobs: Sequence[Job], max_parallel: int, events: Events, poll_s: float = 0.5) -> None:
  """Runs the jobs as subprocesses of this host, at most `max_parallel` at once.

  Ctrl-C (or SIGTERM to the driver) stops the running ones as preemption does:
  each saves its current step; their ends are reported, then KeyboardInterrupt
  propagates.
  """
  queue = list(jobs)
  running: dict[subprocess.Popen, tuple[Job, float]] = {}

  def reap(wait: bool) -> None:
    if wait:  # every point saves its step at once, then each is waited for
      for process in running:
        if process.poll() is None:
          process.send_signal(signal.SIGTERM)
    for process in list(running):
      returncode = stop(process, signalled=True) if wait else process.poll()
      if returncode is not None:
        job, begin = running.pop(process)
        events.finished(job, returncode, time.time() - begin)

  previous = signal.signal(signal.SIGTERM, _raise_interrupt)
  try:
    while queue or running:
      while queue and len(running) < max_parallel:
        job = queue.pop(0)
        running[start(job)] = (job, time.time())
        events.started(job)
      time.sleep(poll_s)
      reap(wait=False)
  except KeyboardInterrupt:
    reap(wait=True)
    raise
  finally:
    signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: Any) -> None:
  del frame
  raise KeyboardInterrupt(signal.Signals(signum).name)


def default_parallel(resources: dict[str, float]) -> int:
  """As many points as this host's cores hold at the sweep's cores per point; one at a
  time when points need accelerators (each would take every chip of the host)."""
  if any(k != "CPU" for k in resources):
    return 1
  return max(1, host.available_cores() // max(1, int(resources.get("CPU", 1))))


def check_parallel(max_parallel: Optional[int], resources: dict[str, float]) -> int:
  if max_parallel is None:
    return default_parallel(resources)
  if max_parallel < 1:
    raise ValueError(f"--max_parallel={max_parallel}; give a positive number")
  return max_parallel
