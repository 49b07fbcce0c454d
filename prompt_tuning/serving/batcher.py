"""Rows from concurrent requests, decoded together: whatever their prompts and settings.

One thread runs the engine. Requests put their rows on a bounded queue; the
thread takes every row waiting (up to the engine's largest batch) and decodes
them in one batch, so requests that arrive together are answered together,
and a row that arrives at an empty queue starts at once instead of waiting
for company. A full queue refuses new rows (`Overloaded`); `close` stops
taking rows and finishes those already queued.
"""

import concurrent.futures
import threading
import time
from typing import Callable, Optional, Sequence

from prompt_tuning.inference import engine as engine_lib


class Overloaded(Exception):
  """The queue cannot take the rows now; retry after `retry_after` seconds."""

  def __init__(self, message: str, retry_after: int):
    super().__init__(message)
    self.retry_after = retry_after


class Closed(Exception):
  """The batcher is shutting down and takes no more rows."""


class Batcher:
  """A bounded queue of rows and the thread that decodes them in batches.

  Attributes:
    max_queue: the most rows waiting at once.
  """

  def __init__(
    self,
    engine: engine_lib.Engine,
    *,
    max_queue: int = 256,
    on_batch: Optional[Callable[[int, float], None]] = None,
  ):
    """Builds the batcher (`start` starts its thread).

    Args:
      engine: a compiled `Engine`.
      max_queue: rows that may wait; more are refused.
      on_batch: called with each batch's size and seconds (metrics).
    """
    if max_queue < 1:
      raise ValueError(f"max_queue must be at least 1, got {max_queue}")
    self._engine, self.max_queue, self._on_batch = engine, int(max_queue), on_batch
    self._queue: list[tuple[engine_lib.Row, concurrent.futures.Future]] = []
    self._cond = threading.Condition()
    self._closed = False
    self._thread = threading.Thread(target=self._loop, name="batcher", daemon=True)
    self._seconds_per_batch = 0.1  # a running estimate, for Retry-After

  def start(self) -> "Batcher":
    self._thread.start()
    return self

  def depth(self) -> int:
    with self._cond:
      return len(self._queue)

  def submit(self, rows: Sequence[engine_lib.Row]) -> list[concurrent.futures.Future]:
    """Queues `rows` (all or none); each future gives its `Generation` or raises."""
    futures = [concurrent.futures.Future() for _ in rows]
    with self._cond:
      if self._closed:
        raise Closed("the server is shutting down")
      if len(self._queue) + len(rows) > self.max_queue:
        batches = (len(self._queue) + len(rows)) / self._engine.max_batch
        raise Overloaded(
          f"the queue is full ({len(self._queue)} of {self.max_queue} rows waiting); retry later",
          max(1, round(batches * self._seconds_per_batch + 0.5)),
        )
      self._queue.extend(zip(rows, futures))
      self._cond.notify()
    return futures

  def close(self, timeout: Optional[float] = None) -> None:
    """Takes no more rows, finishes the queued ones, and stops the thread."""
    with self._cond:
      self._closed = True
      self._cond.notify()
    if self._thread.is_alive():
      self._thread.join(timeout)

  def _take(self) -> list[tuple[engine_lib.Row, concurrent.futures.Future]]:
    with self._cond:
      while not self._queue and not self._closed:
        self._cond.wait()
      taken = self._queue[: self._engine.max_batch]
      del self._queue[: len(taken)]
      return taken

  def _loop(self) -> None:
    while True:
      taken = self._take()
      if not taken:
        return  # closed, and nothing left
      ready = [(row, f) for row, f in taken if f.set_running_or_notify_cancel()]
      if ready:
        self._run(ready)

  def _run(self, ready) -> None:
    start = time.perf_counter()
    try:
      # Each row's own result: a row whose prompt was removed while it waited fails
      # alone (KeyError), the others decode.
      results = self._engine.generate_each([row for row, _ in ready])
    except Exception as e:  # pylint: disable=broad-except  (the engine failed: every row hears)
      for _, future in ready:
        future.set_exception(e)
      return
    seconds = time.perf_counter() - start
    self._seconds_per_batch = 0.8 * self._seconds_per_batch + 0.2 * seconds
    for (_, future), result in zip(ready, results):
      if isinstance(result, Exception):
        future.set_exception(result)
      else:
        future.set_result(result)
    if self._on_batch is not None:
      self._on_batch(sum(not isinstance(r, Exception) for r in results), seconds)
