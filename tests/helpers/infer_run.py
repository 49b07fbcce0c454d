"""`python -m prompt_tuning.infer` on a random transformers T5 of tiny.gin's shape: the
inputs, the command and the checkpoint that tests/test_infer.py and the PEFT tests share."""

import os
import subprocess
import sys

import torch

from prompt_tuning.inference import decoding
from tests import conftest
from tests.helpers import hf_reference

LENGTHS = {"inputs": 12, "targets": 7}
TEXTS = [
  "hello",
  "the quick brown fox jumps over the lazy dog",
  "a",
  "prompt tuning at scale",
  "one two three four five six seven eight nine ten eleven twelve thirteen",
  "T5 reads this sentence.",
  "yes",
  "numbers 1 2 3",
]


def command(hf_dir, input_file, output_file, *extra):
  """`python -m prompt_tuning.infer` on tiny.gin's model in `hf_dir`, with its environment
  (one CPU device): `(argv, env)`. `--gin_file` flags in `extra` go before the run file."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  cmd = [
    sys.executable,
    "-m",
    "prompt_tuning.infer",
    "--gin_file=configs/test/tiny.gin",
    *[a for a in extra if a.startswith("--gin_file")],
    "--gin_file=configs/runs/prompt_infer.gin",
    f"--gin.INITIAL_CHECKPOINT_PATH='{hf_dir}'",
    f"--gin.SENTENCEPIECE_MODEL_FILE='{conftest.VOCAB_PATH}'",
    f"--gin.TASK_FEATURE_LENGTHS={LENGTHS}",
    f"--input_file={input_file}",
    f"--output_file={output_file}",
    *[a for a in extra if not a.startswith("--gin_file")],
  ]
  return cmd, env


def run_infer(tmp_path, hf_dir, input_file, output_file, *extra):
  del tmp_path  # the callers' signature; the command writes only output_file
  cmd, env = command(hf_dir, input_file, output_file, "--gin.BATCH_SIZE=3", *extra)
  result = subprocess.run(
    cmd, cwd=conftest.REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def save_hf_checkpoint(directory):
  """A random HF T5 of tiny.gin's shape saved in `directory`, its EOS logit raised so that
  outputs end early: `(model, directory)`."""
  model = hf_reference.random_hf_model(hf_reference.TINY_GIN, seed=11)
  with torch.no_grad():
    model.lm_head.weight[decoding.EOS_ID] *= 6.0
  model.save_pretrained(directory)
  return model, str(directory)
