"""The paper's optimizer: Adafactor (optax) over the trainable variables only.

Prompt tuning (paper §3): learning rate 0.3, decay rate 0.8, no parameter
scaling, weight decay 1e-5, and unfactored second moments for the prompt (it is
a [P, E] matrix, but factoring its statistics would tie its rows together).
Model tuning (the baseline) uses learning rate 1e-3 with factored moments for
the weight matrices.
"""

from typing import Optional

import optax

from prompt_tuning.training import trainable


def adafactor(
  learning_rate: optax.ScalarOrSchedule = 0.3,
  decay_rate: float = 0.8,
  weight_decay_rate: Optional[float] = 1e-5,
  clipping_threshold: Optional[float] = 1.0,
  multiply_by_parameter_scale: bool = False,
  factor_params: bool = True,
) -> optax.GradientTransformation:
  """Adafactor over a flat `{path: array}` dict of trainable variables.

  Args:
    learning_rate: a constant (0.3 for prompts, 1e-3 for model tuning) or schedule.
    decay_rate: second-moment decay exponent (0.8).
    weight_decay_rate: decoupled weight decay (1e-5), or None.
    clipping_threshold: update clipping by block RMS (Adafactor's d=1), or None.
    multiply_by_parameter_scale: scale updates by each parameter's RMS.
    factor_params: factor the second moments of `params/` matrices; the prompt's
      are never factored.

  Returns:
    An optax transformation whose state covers only the given variables.
  """

  def make(factored: bool) -> optax.GradientTransformation:
    return optax.adafactor(
      learning_rate,
      decay_rate=decay_rate,
      multiply_by_parameter_scale=multiply_by_parameter_scale,
      clipping_threshold=clipping_threshold,
      weight_decay_rate=weight_decay_rate,
      factored=factored,
    )

  def labels(flat: trainable.Flat) -> dict[str, str]:
    return {path: "params" if path.startswith("params/") else "prompt" for path in flat}

  return optax.multi_transform({"prompt": make(False), "params": make(factor_params)}, labels)
