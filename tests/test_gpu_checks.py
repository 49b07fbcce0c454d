"""scripts/gpu_checks.py: the hand count of a step's FLOPs behind BENCHMARKS.md's GPU MFU.

XLA's cost analysis cannot give them: it counts a scanned layer once, and on the
GPU it counted under 1% of the step. So the MFU figures use the script's hand
count, checked here against every matrix product in the step's program (its
jaxpr, scans counted per iteration).
"""

import importlib.util
import math
import os

import jax
from jax.extend import core as jax_core
import numpy as np
import pytest

from prompt_tuning import partitioning
from prompt_tuning.checkpoints import variables as variables_lib
from prompt_tuning.training import optimizers
from prompt_tuning.training import train_state
from tests import conftest


def _gpu_checks():
  spec = importlib.util.spec_from_file_location(
    "gpu_checks", os.path.join(conftest.REPO_ROOT, "scripts", "gpu_checks.py")
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


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


@pytest.mark.slow
def test_hand_count_of_a_prompt_tuning_step_equals_its_programs_matrix_products():
  gc = _gpu_checks()
  # heads x head width (60) unlike the width (48), so a count that confuses them fails.
  gc.SIZES["odd"] = (48, 3, 2, 20, 112)
  batch_size, inputs, prompt, targets = 8, 512, 100, 16
  hand = gc.prompt_step_flops("odd", batch_size, inputs, prompt, targets)
  weights, attention = gc.matmul_flops("odd", batch_size, inputs, prompt, targets)
  assert min(2 * weights, 3 * attention) > 0.3 * hand  # both kinds of product weigh here
  part = partitioning.Partitioner(1, devices=jax.devices()[:1])
  batch = gc._batch(batch_size, inputs, targets)
  counted = {}
  for scan in (True, False):
    model = gc._model(
      "odd", dtype="float32", param_dtype="float32", dropout=0.0, prompt_length=prompt, scan=scan
    )
    variables, shardings = variables_lib.init_variables(model, part, None, seed=0)
    setup = train_state.setup_step(
      model, part, optimizers.adafactor(0.3), variables, shardings, "prompt", seed=0
    )
    step = train_state.make_train_step(model, optimizers.adafactor(0.3))
    counted[scan] = _dot_flops(jax.make_jaxpr(step)(setup.state, setup.frozen, batch).jaxpr)
  # Scanned (as the GPU checks run it), every layer's backward is taken: exactly the count.
  assert counted[True] == hand
  # Unrolled, JAX skips the backward of the first decoder layer's self-attention
  # (it does not depend on the prompt): slightly less.
  np.testing.assert_allclose(counted[False], hand, rtol=5e-3)
  assert counted[False] < hand
