"""A training run's directory (MODEL_DIR), named once.

    MODEL_DIR/
      config.gin                         the operative gin config, written at start
      checkpoints/<step>/                orbax: state/ (the train state), record/ (JSON)
      numpy_checkpoints/checkpoint_<step>/encoder.prompt.prompt.npy
                                         each trained prompt, [P, E] float32
      best/                              the best evaluation so far (early stopping's pick):
                                         best.json (step, metric, value) and, when a prompt
                                         trains, its prompt then (encoder.prompt.prompt.npy)
      inference_eval/                    the trainer's decoding-based evaluation
      events.out.tfevents.*              TensorBoard summaries (train/*, eval/* scalars)
      metrics.jsonl                      the same scalars as JSON lines, and a `start` line
                                         per run segment (parameter counts); what sweeps read

Every module that reads or writes one of these paths asks this one.
"""

import os
import re
from typing import Optional

from prompt_tuning.models import prompts

CONFIG_FILE = "config.gin"
CHECKPOINTS_DIR = "checkpoints"
NUMPY_DIR = "numpy_checkpoints"
INFERENCE_EVAL_DIR = "inference_eval"
BEST_DIR = "best"
BEST_RECORD = "best.json"
METRICS_FILE = "metrics.jsonl"
STATE_ITEM, RECORD_ITEM = "state", "record"  # the orbax items of one checkpoint step
PROMPT_COLLECTION = prompts.PROMPT_COLLECTION
PROMPT_PREFIX = PROMPT_COLLECTION + "/"  # flat variable paths of the prompt collection
_NUMPY_STEP = re.compile(r"^checkpoint_(\d+)$")


def config_file(model_dir: str) -> str:
  return os.path.join(model_dir, CONFIG_FILE)


def checkpoints_dir(model_dir: str) -> str:
  return os.path.join(model_dir, CHECKPOINTS_DIR)


def checkpoint_step_dir(model_dir: str, step: int) -> str:
  return os.path.join(model_dir, CHECKPOINTS_DIR, str(step))


def numpy_dir(model_dir: str) -> str:
  return os.path.join(model_dir, NUMPY_DIR)


def numpy_step_dir(model_dir: str, step: int) -> str:
  return os.path.join(model_dir, NUMPY_DIR, f"checkpoint_{step}")


def numpy_step(name: str) -> Optional[int]:
  """`checkpoint_<step>` -> step; None for anything else."""
  match = _NUMPY_STEP.match(name)
  return int(match[1]) if match else None


def best_dir(model_dir: str) -> str:
  return os.path.join(model_dir, BEST_DIR)


def inference_eval_dir(model_dir: str) -> str:
  return os.path.join(model_dir, INFERENCE_EVAL_DIR)


def metrics_file(model_dir: str) -> str:
  return os.path.join(model_dir, METRICS_FILE)


def is_prompt(path: str) -> bool:
  """Whether a flat variable path (`prompt/encoder/prompt/prompt`) is in the prompt collection."""
  return path.startswith(PROMPT_PREFIX)


def numpy_prompt_name(path: str) -> str:
  """`prompt/encoder/prompt/prompt` -> `encoder.prompt.prompt.npy`."""
  if is_prompt(path):
    path = path[len(PROMPT_PREFIX) :]
  return ".".join(path.split("/")) + ".npy"


# What PROMPT_FILE finds in a numpy checkpoint directory.
PROMPT_FILE_NAME = numpy_prompt_name(PROMPT_PREFIX + "encoder/prompt/prompt")
