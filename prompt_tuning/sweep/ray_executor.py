"""The `ray` executor: each point is a Ray task on an existing cluster (or a local one).

Ray schedules the tasks by the resources the sweep file declares per point
(`CPU`, `GPU`, custom ones such as `TPU`); this module only submits them and
waits. The task runs the point's command as a subprocess on whichever node Ray
picks, so the sweep directory must be on storage every node sees, and the
project installed at the same path there. The only module that imports Ray.
"""

import os
import time
from typing import Sequence

from prompt_tuning.sweep import executors


def _connect():
  import ray  # pylint: disable=g-import-not-at-top

  if not ray.is_initialized():
    address = os.environ.get("RAY_ADDRESS")
    # RAY_ADDRESS: an existing cluster; without it Ray starts a local instance.
    ray.init(
      address=address or None, log_to_driver=False, include_dashboard=False if not address else None
    )
  return ray


def _options(resources: dict[str, float]) -> dict:
  options = {"num_cpus": resources.get("CPU", 1), "max_retries": 0}
  if "GPU" in resources:
    options["num_gpus"] = resources["GPU"]
  custom = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
  if custom:
    options["resources"] = custom
  return options


def run(
  jobs: Sequence[executors.Job], max_parallel: int, events: executors.Events, poll_s: float = 1.0
) -> None:
  """Submits the jobs as Ray tasks, at most `max_parallel` in flight; reports their ends.

  Ctrl-C cancels the tasks in flight: each point gets SIGTERM, saves its step
  and stops; then KeyboardInterrupt propagates.
  """
  ray = _connect()
  remote = ray.remote(executors.run_job)
  queue = list(jobs)
  in_flight: dict = {}  # ObjectRef -> Job
  try:
    while queue or in_flight:
      while queue and len(in_flight) < max_parallel:
        job = queue.pop(0)
        in_flight[remote.options(**_options(job.resources)).remote(job)] = job
        events.started(job)
      ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=poll_s)
      for ref in ready:
        job = in_flight.pop(ref)
        try:
          returncode, seconds = ray.get(ref)
        except ray.exceptions.RayError as e:  # the worker or its node died
          with open(job.log_path, "a") as log:
            log.write(f"error: the Ray task died: {str(e).splitlines()[0]}\n")
          returncode, seconds = -1, 0.0
        events.finished(job, returncode, seconds)
  except KeyboardInterrupt:
    for ref in in_flight:
      ray.cancel(ref)
    deadline = time.time() + 150
    for ref, job in in_flight.items():
      try:
        returncode, seconds = ray.get(ref, timeout=max(1.0, deadline - time.time()))
      except Exception:  # pylint: disable=broad-except  # cancelled or lost
        returncode, seconds = 143, 0.0
      events.finished(job, returncode, seconds)
    raise
