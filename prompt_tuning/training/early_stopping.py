"""The best evaluation of a run so far (early stopping's pick) and the prompt it scored with.

The paper reports the test split at the step with the best validation score;
with checkpoints every 500 steps and one kept, that step's prompt would never
be on disk. The trainer hands each evaluation to `BestEvaluation.update`, which
keeps, in `MODEL_DIR/best/`, `best.json` (`{"step", "metric", "mode", "value"}`)
and, when a prompt trains, that step's prompt (`encoder.prompt.prompt.npy`,
which PROMPT_FILE reads as it reads a numpy checkpoint directory).

The score is the one `python -m prompt_tuning.sweep report` picks a point's best
step by, so the two agree: the single decoded validation metric
(`<task>/<metric>`) when there is one, else the mean over tasks of each task's
mean decoded metric (as SuperGLUE's score), else the teacher-forced loss
(lowest); the earliest step wins a tie.

A resumed run continues from its checkpoint's record of the best so far: each
checkpoint's record holds `best.json`'s fields and its numpy checkpoint
directory a copy of the best prompt (`best/<name>.npy`), so evaluations redone
after a resume replay exactly, whatever was written after the checkpoint.
"""

import json
import os
import shutil
import statistics
import tempfile
from typing import Any, Mapping, Optional

import numpy as np

from prompt_tuning.checkpoints import layout

# The prompt arrays' names inside a numpy checkpoint directory's copy.
CHECKPOINT_COPY = layout.BEST_DIR


# Evaluation metrics about the prompt itself, not a task (a wayward prompt's
# `wayward/nearest_match`): never scored.
NOT_TASKS = ("wayward",)


def score(metrics: Mapping[str, float]) -> Optional[tuple[str, str, float]]:
  """(metric name, 'max' or 'min', value) of one evaluation's metrics, or None.

  `metrics` are the trainer's evaluation metrics without the `eval/` prefix:
  teacher-forced `loss`, `accuracy`, ...; decoded validation metrics
  `<task>/<metric>`; other splits' `<task>/<split>/<metric>` and `NOT_TASKS`'
  `<name>/<metric>` (not scored).
  """
  tasks: dict[str, list[str]] = {}
  for name in metrics:
    parts = name.split("/")
    if len(parts) == 2 and parts[0] not in NOT_TASKS:
      tasks.setdefault(parts[0], []).append(name)
  if sum(len(names) for names in tasks.values()) == 1:
    ((name,),) = tasks.values()
    return name, "max", float(metrics[name])
  if tasks:
    value = statistics.fmean(
      statistics.fmean(float(metrics[m]) for m in names) for names in tasks.values()
    )
    return "score", "max", value
  if "loss" in metrics:
    return "loss", "min", float(metrics["loss"])
  return None


class BestEvaluation:
  """The best evaluation so far, kept in `MODEL_DIR/best/` (only the first host writes)."""

  def __init__(self, model_dir: str, write: bool):
    self._dir = layout.best_dir(model_dir)
    self._write = write
    self.record: Optional[dict[str, Any]] = None
    self._prompts: dict[str, np.ndarray] = {}  # file name -> [P, E] float32

  def restore(self, record: Optional[Mapping[str, Any]], numpy_step_dir: Optional[str]) -> None:
    """Takes up a checkpoint's best (None: a fresh run) and rewrites `best/` to match it."""
    self.record = dict(record) if record else None
    self._prompts = {}
    copy = os.path.join(numpy_step_dir, CHECKPOINT_COPY) if numpy_step_dir else None
    if self.record is not None and copy and os.path.isdir(copy):
      self._prompts = {
        name: np.load(os.path.join(copy, name))
        for name in sorted(os.listdir(copy))
        if name.endswith(".npy")
      }
    self._export()

  def update(self, step: int, metrics: Mapping[str, float], trainable: Mapping[str, Any]) -> bool:
    """Keeps this evaluation if it beats the best so far; returns whether it did."""
    scored = score(metrics)
    if scored is None:
      return False
    metric, mode, value = scored
    if self.record is not None:
      best = self.record["value"]
      if not (value > best if mode == "max" else value < best):
        return False
    self.record = {"step": int(step), "metric": metric, "mode": mode, "value": value}
    if self._write:  # prompts are replicated: the first host reads them
      self._prompts = {
        layout.numpy_prompt_name(path): np.asarray(value, np.float32)
        for path, value in trainable.items()
        if layout.is_prompt(path)
      }
    self._export()
    return True

  def checkpoint_arrays(self) -> dict[str, np.ndarray]:
    """What a checkpoint keeps of the best prompt: `{best/<name>.npy: array}`."""
    return {os.path.join(CHECKPOINT_COPY, name): array for name, array in self._prompts.items()}

  def _export(self) -> None:
    """Writes `best/` whole: a temporary directory swapped in (None: removes it)."""
    if not self._write:
      return
    parent = os.path.dirname(self._dir)
    os.makedirs(parent, exist_ok=True)
    for name in os.listdir(parent):  # left by a process killed while swapping
      if name.startswith((".tmp_best_", ".old_best_")):
        shutil.rmtree(os.path.join(parent, name), ignore_errors=True)
    old = None
    if os.path.exists(self._dir):
      old = tempfile.mkdtemp(dir=parent, prefix=".old_best_")
      os.rename(self._dir, os.path.join(old, "best"))
    if self.record is not None:
      tmp = tempfile.mkdtemp(dir=parent, prefix=".tmp_best_")
      for name, array in self._prompts.items():
        np.save(os.path.join(tmp, name), array)
      with open(os.path.join(tmp, layout.BEST_RECORD), "w") as f:
        json.dump(self.record, f, indent=1, sort_keys=True)
      os.rename(tmp, self._dir)
    if old is not None:
      shutil.rmtree(old, ignore_errors=True)
