"""The server on Ray Serve: N replicas of the app, one prompt table shared by all of them.

    python -m prompt_tuning.serve <the same gin files and flags> --ray_replicas=2

Each replica is a Ray Serve replica that builds and compiles the engine from the
gin files and flags a one-process server takes, then serves `serving.app`'s
FastAPI app; Ray Serve's HTTP proxy listens at --host:--port and spreads the
requests over the replicas. Every answer names its replica in an `X-Replica`
header; `/metrics` is the answering replica's own.

The prompt table is shared through one Ray actor, the registry (`PromptRegistry`):
a PUT or DELETE on any replica is recorded there, checked against the table's
capacity, before it is answered, and every replica brings its own table up to
date from the registry before a request reads it (`SharedTable.sync`, one
actor call). So a prompt added through one replica is served by every replica
from the next request on, and without a compilation (the table's writes are
compiled once, `engine.PromptTable`). On a cluster of several machines, every
path the gin files name must be readable from every node (gs://, or shared
storage), as for the sweeps' Ray executor.
"""

import asyncio
import dataclasses
import logging
import os
import re
import signal
import sys
import threading
from typing import Any, Optional, Sequence

from absl import flags
import numpy as np
import ray
from ray import serve

APP_NAME = "prompt_tuning"
REGISTRY = "prompt_tuning_prompt_registry"
NAMESPACE = "prompt_tuning_serve"


@dataclasses.dataclass(frozen=True)
class Setup:
  """What every replica needs to build the same engine as the others."""

  cwd: str  # the command's directory: relative paths in the gin files resolve from it
  gin_files: Sequence[str]
  gin_bindings: Sequence[str]
  gin_search_paths: Sequence[str]
  tfds_data_dir: Optional[str]
  sizes: Any  # inference.engine.Sizes (imported where the engine is built)
  max_queue: int
  api_key: Optional[str]


class PromptRegistry:
  """The shared table: the names served now, and each name's last change with its version.

  A Ray actor (its methods run one at a time). Replicas start from the prompts
  of PROMPT_FILES, the same in each; the registry holds what changed since.
  """

  def __init__(self, capacity: int):
    self._capacity = capacity
    self._version = 0
    self._last: dict[str, tuple[int, Optional[np.ndarray]]] = {}  # None: removed
    self._names: Optional[set[str]] = None  # set by the first replica that starts

  def start(self, names: Sequence[str]) -> None:
    """A replica's table as it started (PROMPT_FILES): the first one's is the table's."""
    if self._names is None:
      self._names = set(names)

  def names(self) -> list[str]:
    return sorted(self._names or ())

  def changes_since(self, version: int) -> tuple[int, list[tuple[int, str, Optional[np.ndarray]]]]:
    """The current version, and (version, name, vectors or None) of each name changed after
    `version`: the last change of each, in the order they were made."""
    changed = sorted((v, name, vectors) for name, (v, vectors) in self._last.items() if v > version)
    return self._version, changed

  def put(self, name: str, vectors: np.ndarray) -> Optional[bool]:
    """Records `name`'s vectors; whether it replaced one, or None when the table is full."""
    existed = name in self._names
    if not existed and len(self._names) >= self._capacity:
      return None
    self._version += 1
    self._last[name] = (self._version, vectors)
    self._names.add(name)
    return existed

  def remove(self, name: str) -> bool:
    """Records that `name` is gone; False when there is no such prompt."""
    if name not in self._names:
      return False
    self._version += 1
    self._last[name] = (self._version, None)
    self._names.discard(name)
    return True


class SharedTable:
  """A replica's side of the shared table: `serving.app.LocalTable`'s interface over the
  registry, applying its changes to this replica's engine."""

  def __init__(self, engine: Any, registry: Any):
    self.engine, self.registry = engine, registry
    self.version = 0
    self._lock = asyncio.Lock()

  async def sync(self) -> None:
    async with self._lock:
      version, changes = await self.registry.changes_since.remote(self.version)
      # Removals first: the table never holds more than the registry allowed.
      for _, name, vectors in changes:
        if vectors is None and self.engine.has_prompt(name):
          self.engine.remove_prompt(name)
      for _, name, vectors in changes:
        if vectors is not None:
          self.engine.set_prompt(name, vectors)
      self.version = max(self.version, version)

  async def put(self, name: str, prompt: np.ndarray) -> bool:
    vectors = self.engine.table.check(name, prompt)  # a ValueError says what is wrong
    existed = await self.registry.put.remote(name, vectors)
    if existed is None:
      raise ValueError(
        f"the prompt table is full ({self.engine.table.capacity} prompts, --max_prompts); "
        "remove one first"
      )
    await self.sync()
    return existed

  async def remove(self, name: str) -> None:
    if not await self.registry.remove.remote(name):
      raise KeyError(name)
    await self.sync()


def _load(setup: Setup, registry: Any) -> Any:
  """Builds and compiles this replica's engine; returns the app's state, serving."""
  os.chdir(setup.cwd)
  from prompt_tuning import host  # pylint: disable=g-import-not-at-top

  host.import_tensorflow_quietly()
  from prompt_tuning import cli  # pylint: disable=g-import-not-at-top
  from prompt_tuning import gin_config  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import engine as engine_lib  # pylint: disable=g-import-not-at-top
  from prompt_tuning.serving import app as app_lib  # pylint: disable=g-import-not-at-top

  if not flags.FLAGS.is_parsed():  # a fresh worker: the defaults (cli reads --verbose)
    flags.FLAGS.mark_as_parsed()
  cli.configure(setup.gin_files, setup.gin_bindings, setup.gin_search_paths, setup.tfds_data_dir)
  config = gin_config.macro_value("SERVED", "include configs/runs/prompt_serve.gin")
  engine = engine_lib.build_compiled(config, setup.sizes)
  replica = serve.get_replica_context().replica_id.unique_id
  state = app_lib.ServerState(api_key=setup.api_key, max_queue=setup.max_queue, replica=replica)
  ray.get(registry.start.remote(engine.prompt_names()))
  state.serve(engine, config.vocabulary, table=SharedTable(engine, registry))
  return state


@serve.ingress()
class Replica:
  """One replica: the engine, compiled before Ray Serve sends it a request, and the app."""

  async def __init__(self, setup: Setup):
    from prompt_tuning.serving import app as app_lib  # pylint: disable=g-import-not-at-top

    registry = ray.get_actor(REGISTRY, namespace=NAMESPACE)
    self._state = await asyncio.to_thread(_load, setup, registry)
    await self._state.table.sync()  # the changes made before this replica started
    self._app = app_lib.create_app(self._state)

  def __serve_build_asgi_app__(self):
    return self._app


def run(
  setup: Setup,
  *,
  replicas: int,
  address: Optional[str],
  cpus_per_replica: float,
  gpus_per_replica: float,
  host: str,
  port: int,
) -> None:
  """Starts (or joins, with `address`) a Ray instance, serves on it until SIGTERM or Ctrl-C,
  then lets every replica answer what it has received and exits (status 128 + the signal)."""
  stop = threading.Event()
  received, failed, started = [], False, False

  def on_signal(number, frame):
    del frame
    received.append(number)
    stop.set()

  ray.init(
    address=address or None,
    namespace=NAMESPACE,
    include_dashboard=False if not address else None,
    logging_level="warning",
    # The replicas' logs stay in Ray's session directory (/tmp/ray/session_latest/logs
    # on the head node): a failed start is reported here in one line.
    log_to_driver=False,
  )
  # After ray.init, which installs a handler that aborts the process on SIGTERM.
  for number in (signal.SIGTERM, signal.SIGINT):
    signal.signal(number, on_signal)
  logging.getLogger("ray.serve").setLevel(logging.WARNING)
  try:
    try:
      ray.get_actor(REGISTRY, namespace=NAMESPACE)
      print(
        "error: a prompt_tuning server already runs on this Ray cluster (one per cluster: "
        "Ray Serve has one HTTP address); stop it first",
        file=sys.stderr,
      )
      failed = True
      return
    except ValueError:  # none runs: this is the one
      pass
    registry = (
      ray.remote(PromptRegistry)
      .options(name=REGISTRY, num_cpus=0, get_if_exists=False)
      .remote(setup.sizes.max_prompts)
    )
    started = True
    serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
    deployment = serve.deployment(Replica).options(
      num_replicas=replicas,
      # The replica's own queue (--max_queue, 429 beyond it) bounds what waits,
      # so Ray Serve hands it every request it has.
      max_ongoing_requests=setup.max_queue,
      ray_actor_options={"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
      graceful_shutdown_timeout_s=30,
    )
    try:
      serve.run(deployment.bind(setup), name=APP_NAME, route_prefix="/")
    except RuntimeError as e:  # a replica failed to start (a bad file or macro): one line
      reports = [str(e)] + [
        d.message
        for a in serve.status().applications.values()
        for d in a.deployments.values()
        if d.message
      ]
      print(
        f"error: the replicas failed to start: {_cause(chr(10).join(reports))}", file=sys.stderr
      )
      failed = True
      return
    names = ray.get(registry.names.remote())
    print(
      f"serve: ready at http://{host}:{port} ({replicas} Ray Serve replica"
      f"{'s' * (replicas != 1)}; {len(names)} prompt{'s' * (len(names) != 1)}: "
      f"{', '.join(names[:5])}{' ...' if len(names) > 5 else ''})",
      flush=True,
    )
    while not stop.wait(1.0):
      pass
  finally:
    # Each replica answers what it has received first. On a cluster it joined, the
    # command removes its own app and leaves Serve to the cluster.
    if started and address:
      serve.delete(APP_NAME)
    elif started and not failed:
      serve.shutdown()
    ray.shutdown()  # a local instance stops here
    if failed:
      sys.exit(1)
  print("serve: stopped; every request it had received was answered", flush=True)
  sys.exit(128 + received[0] if received else 0)


_ERROR_LINE = re.compile(r"^(?:\(\w+ pid=\d+\) )?\s*((?:[\w.]+\.)?\w*(?:Error|Exception): .*)$")


def _cause(message: str) -> str:
  """The replica's own error in Ray Serve's report of a failed start (its last 'XError: ...'
  line; the last line when there is none)."""
  plain = re.sub(r"\x1b\[[0-9;]*m", "", message)
  lines = [l.strip() for l in plain.splitlines() if l.strip()]
  errors = [m.group(1) for l in lines if (m := _ERROR_LINE.match(l))]
  return errors[-1] if errors else (lines[-1] if lines else "no message")
