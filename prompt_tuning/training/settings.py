"""The trainer's settings as a few named objects: what it trains on, where it saves,
how it optimizes, when it evaluates.

`configs/runs/prompt_finetune.gin` binds each from the run's macros and hands
them to `trainer.train` (t5x's DatasetConfig and SaveCheckpointConfig, levanter's
TrainerConfig, are the models). Each checks its values when it is made, so a
setting no run can use is a one-line error naming its macro before the trainer
creates anything.
"""

import dataclasses
import numbers
from typing import Any, Callable, Mapping, Optional

import numpy as np
import optax

from prompt_tuning import partitioning
from prompt_tuning.training import trainable

# `fn(step, merged variables) -> {name: value}`: metrics beside the teacher-forced ones.
InferEvalFn = Callable[[int, dict[str, Any]], Mapping[str, float]]
# Builds the InferEvalFn once the partitioner exists: `(partitioner, output
# directory or None on other hosts) -> fn or None`. The entry point hands in
# `inference.evaluation.infer_eval(...)` (configs/runs/prompt_finetune.gin).
InferEvalFactory = Callable[[partitioning.Partitioner, Optional[str]], Optional[InferEvalFn]]


def check_positive(name: str, value: Any, optional: bool = False) -> None:
  """A one-line error unless `value` is a positive integer (or None, when optional)."""
  if optional and value is None:
    return
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    allowed = "a positive integer" + (" or None" if optional else "")
    raise ValueError(f"{name}={value!r}; it must be {allowed}")


@dataclasses.dataclass(frozen=True)
class DataSettings:
  """What the run trains on.

  Attributes:
    mixture_or_task_name: MIXTURE_OR_TASK_NAME, a registered seqio task or mixture.
    task_feature_lengths: TASK_FEATURE_LENGTHS, `{'inputs': N, 'targets': M}`; the
      prompt adds P encoder positions to N.
    batch_size: BATCH_SIZE, the global batch.
    mixture_or_task_module: MIXTURE_OR_TASK_MODULE, imported so that the task registers.
    use_cached_tasks: USE_CACHED_TASKS: read seqio's offline cache.
    vocabulary: VOCABULARY, the model's; the task's must be the same.
  """

  mixture_or_task_name: str
  task_feature_lengths: Mapping[str, int]
  batch_size: int = 32
  mixture_or_task_module: Optional[str] = None
  use_cached_tasks: bool = False
  vocabulary: Any = None

  def __post_init__(self):
    check_positive("BATCH_SIZE", self.batch_size)
    lengths = self.task_feature_lengths
    if not isinstance(lengths, Mapping) or set(lengths) != {"inputs", "targets"}:
      raise ValueError(
        f"TASK_FEATURE_LENGTHS={lengths!r}; give both lengths, e.g. {{'inputs': 128, 'targets': 8}}"
      )
    for feature, length in lengths.items():
      check_positive(f"TASK_FEATURE_LENGTHS['{feature}']", length)


@dataclasses.dataclass(frozen=True)
class CheckpointSettings:
  """Where the run starts from and saves to.

  Attributes:
    model_dir: MODEL_DIR: checkpoints, numpy prompts, the config and the summaries.
    initial_checkpoint_path: INITIAL_CHECKPOINT_PATH, the frozen model's checkpoint;
      None: a random model from the run's seed.
    checkpoint_period: CHECKPOINT_PERIOD, steps between checkpoints (and one at the end).
    keep_checkpoints: KEEP_CHECKPOINTS, how many to keep (None: all).
  """

  model_dir: str
  initial_checkpoint_path: Optional[str] = None
  checkpoint_period: int = 1000
  keep_checkpoints: Optional[int] = None

  def __post_init__(self):
    check_positive("CHECKPOINT_PERIOD", self.checkpoint_period)
    check_positive("KEEP_CHECKPOINTS", self.keep_checkpoints, optional=True)


@dataclasses.dataclass(frozen=True)
class OptimizationSettings:
  """What trains, on which loss, with which optimizer.

  Attributes:
    optimizer: over the trainable variables (None: the paper's Adafactor).
    learning_rate: LEARNING_RATE, the optimizer's (constant or schedule), for the
      `train/learning_rate` summary.
    what_trains: WHAT_TRAINS: 'prompt', 'all', or regexes over variable paths.
    z_loss, label_smoothing, loss_normalizing_factor: the loss (see `losses`).
    regularizer: None, or a term added to the loss, `(trainable) -> (term, metrics)`,
      which may also `report(variables) -> (metrics, text)` at each evaluation
      (`wayward.Wayward`, configs/prompts/wayward.gin).
  """

  optimizer: Optional[optax.GradientTransformation] = None
  learning_rate: Optional[optax.ScalarOrSchedule] = None
  what_trains: trainable.WhatTrains = trainable.PROMPT_TUNING
  z_loss: float = 1e-4
  label_smoothing: float = 0.0
  loss_normalizing_factor: Any = "NUM_REAL_TARGET_TOKENS"
  regularizer: Optional[Callable[[dict[str, Any]], tuple[Any, dict[str, Any]]]] = None

  def __post_init__(self):
    rate = self.learning_rate
    if (
      rate is not None
      and not callable(rate)
      and (
        isinstance(rate, bool)
        or not isinstance(rate, numbers.Real)
        or not np.isfinite(rate)
        or rate <= 0
      )
    ):
      raise ValueError(f"LEARNING_RATE={rate!r}; it must be a positive number (or a schedule)")

  def loss_options(self) -> dict[str, Any]:
    """The loss's settings, as the train step takes them."""
    return {
      "z_loss": self.z_loss,
      "label_smoothing": self.label_smoothing,
      "loss_normalizing_factor": self.loss_normalizing_factor,
      "regularizer": self.regularizer,
    }


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
  """When and how the run evaluates on its task's validation split.

  Attributes:
    eval_period: EVAL_PERIOD, steps between evaluations (teacher-forced loss and token
      accuracy, plus `infer_eval`'s metrics) and at the last step; None: none.
    infer_eval: at each evaluation, also run the function this factory builds
      (`InferEvalFactory`; the run file hands in `evaluation.infer_eval`, t5x's
      infer_eval: the decoding of the validation split with every task's seqio
      metrics, written under `MODEL_DIR/inference_eval`), its metrics written under
      `eval/`; None: the teacher-forced metrics only.
  """

  eval_period: Optional[int] = None
  infer_eval: Optional[InferEvalFactory] = None

  def __post_init__(self):
    check_positive("EVAL_PERIOD", self.eval_period, optional=True)
