"""training/data.batches: an evaluation's single pass counts every example of the split."""

import os

import numpy as np
import pytest

from prompt_tuning.training import data


@pytest.fixture(scope="module")
def eval_tasks(t5_vocab_path):
  os.environ.setdefault("T5_VOCAB", t5_vocab_path)  # what the helper module reads
  from tests.helpers import eval_tasks  # pylint: disable=g-import-not-at-top

  return eval_tasks


@pytest.mark.parametrize("batch_size", [4, 13, 32])
def test_one_pass_yields_every_example_once_in_full_batches(eval_tasks, batch_size):
  lengths = {"inputs": 16, "targets": 4}
  batches = list(
    data.batches("eval_sentiment", lengths, batch_size, split="validation", one_pass=True)
  )
  assert {len(b["encoder_input_tokens"]) for b in batches} == {batch_size}  # padded to full
  weights = np.concatenate([b["decoder_loss_weights"] for b in batches])
  real = weights.sum(axis=1) > 0
  assert real.sum() == len(eval_tasks.EXAMPLES)  # 13: none dropped, none twice
  assert not real[len(eval_tasks.EXAMPLES) :].any()  # the padding comes last
