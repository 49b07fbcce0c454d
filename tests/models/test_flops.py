"""The hand count of a step's FLOPs (models/flops.py), behind BENCHMARKS.md's GPU MFU.

Checked against every matrix product in the step's program (its jaxpr, scans counted
per iteration).
"""

import dataclasses
import math

import jax
from jax.extend import core as jax_core
import numpy as np
import pytest

from prompt_tuning import partitioning
from prompt_tuning.checkpoints import variables as variables_lib
from prompt_tuning.models import flops
from prompt_tuning.models import prompt_init
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from prompt_tuning.training import optimizers
from prompt_tuning.training import train_state


def _dot_flops(jaxpr, times=1):
  """2 x output size x contracted size, summed over the dot_generals of a jaxpr and its sub-jaxprs."""
  total = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "dot_general":
      (lhs_contracting, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += (
        times
        * 2
        * math.prod(eqn.outvars[0].aval.shape)
        * math.prod(lhs[i] for i in lhs_contracting)
      )
    inner = times * (eqn.params["length"] if eqn.primitive.name == "scan" else 1)
    for param in eqn.params.values():
      for sub in param if isinstance(param, (list, tuple)) else [param]:
        sub = getattr(sub, "jaxpr", sub)
        if isinstance(sub, jax_core.Jaxpr):
          total += _dot_flops(sub, inner)
  return total


def _batch(batch_size, input_length, target_length):
  rng = np.random.default_rng(0)
  targets = rng.integers(2, 100, (batch_size, target_length), dtype=np.int32)
  return {
    "encoder_input_tokens": rng.integers(2, 100, (batch_size, input_length), dtype=np.int32),
    "decoder_input_tokens": np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], 1),
    "decoder_target_tokens": targets,
    "decoder_loss_weights": np.ones_like(targets, np.float32),
  }


@pytest.mark.slow
def test_hand_count_of_a_prompt_tuning_step_equals_its_programs_matrix_products():
  # heads x head width (60) unlike the width (48), and encoder and decoder depths unlike,
  # so a count that confuses them fails.
  config = t5.T5Config(
    vocab_size=32128,
    emb_dim=48,
    num_heads=3,
    head_dim=20,
    mlp_dim=112,
    num_encoder_layers=2,
    num_decoder_layers=3,
    dropout_rate=0.0,
    dtype="float32",
  )
  batch_size, inputs, prompt, targets = 8, 512, 100, 16
  hand = flops.prompt_step_flops(config, batch_size, inputs, prompt, targets)
  weights, attention = flops.matmul_flops(config, batch_size, inputs, prompt, targets)
  assert min(2 * weights, 3 * attention) > 0.3 * hand  # both kinds of product weigh here
  part = partitioning.Partitioner(1, devices=jax.devices()[:1])
  batch = _batch(batch_size, inputs, targets)
  optimizer = optimizers.adafactor(0.3)
  counted = {}
  for scan in (True, False):
    model = t5.Transformer(
      dataclasses.replace(config, scan_layers=scan),
      prompts.Prompt(prompt, config.emb_dim, prompt_init.random_uniform(0.5)),
    )
    variables, shardings = variables_lib.init_variables(model, part, None, seed=0)
    setup = train_state.setup_step(model, part, optimizer, variables, shardings, "prompt", seed=0)
    step = train_state.make_train_step(model, optimizer)
    counted[scan] = _dot_flops(jax.make_jaxpr(step)(setup.state, setup.frozen, batch).jaxpr)
  # Scanned (as the GPU checks run it), every layer's backward is taken: exactly the count.
  assert counted[True] == hand
  # Unrolled, JAX skips the backward of the first decoder layer's self-attention
  # (it does not depend on the prompt): slightly less.
  np.testing.assert_allclose(counted[False], hand, rtol=5e-3)
  assert counted[False] < hand
