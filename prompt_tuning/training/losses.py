"""Token cross-entropy with z-loss and label smoothing, with t5x's meaning.

`weighted_cross_entropy` returns sums, as t5x's `compute_weighted_cross_entropy`
does; `loss_normalizing_factor` says what they are divided by:

* None: nothing (the loss is the sum over the batch's real target tokens);
* a number: that constant (t5x's pretraining uses 233472 for Mesh TF parity);
* 'NUM_REAL_TARGET_TOKENS': the number of non-padding target tokens (a mean);
* 'NUM_TOTAL_TARGET_TOKENS': batch size x target length, padding included;
* 'AVERAGE_PER_SEQUENCE': each sequence's loss is averaged over its own tokens,
  then summed over the batch and divided by the batch size.
"""

from typing import Optional, Union

import jax
import jax.numpy as jnp

Array = jax.Array
NormalizingFactor = Optional[Union[float, int, str]]

NORMALIZING_FACTORS = ("NUM_REAL_TARGET_TOKENS", "NUM_TOTAL_TARGET_TOKENS", "AVERAGE_PER_SEQUENCE")


def cross_entropy_with_logits(
  logits: Array, soft_targets: Array, z_loss: float
) -> tuple[Array, Array]:
  """Per-token loss `-sum(q * log_softmax(logits)) + z_loss * logsumexp(logits)**2`.

  The z-loss pushes the softmax normalizer towards 1 (log Z towards 0), which
  keeps bfloat16 logits well conditioned.

  Args:
    logits: `[..., vocab]`.
    soft_targets: `[..., vocab]` target distribution.
    z_loss: coefficient of the squared log normalizer.

  Returns:
    `(loss, z_loss_part)`, each `[...]`; `loss` includes `z_loss_part`.
  """
  logits = logits.astype(jnp.float32)
  log_z = jax.nn.logsumexp(logits, axis=-1)
  log_softmax = logits - log_z[..., None]
  loss = -jnp.sum(soft_targets * log_softmax, axis=-1)
  z_part = z_loss * jnp.square(log_z)
  return loss + z_part, z_part


def weighted_cross_entropy(
  logits: Array,
  targets: Array,
  weights: Optional[Array] = None,
  label_smoothing: float = 0.0,
  z_loss: float = 0.0,
  loss_normalizing_factor: NormalizingFactor = None,
) -> tuple[Array, Array, Array]:
  """The batch's token cross-entropy, t5x style.

  With label smoothing the target puts `1 - label_smoothing` on the label and
  spreads the rest uniformly over the other vocab entries; the smoothed
  distribution's own entropy is subtracted, so a perfect model scores 0.

  Args:
    logits: `[batch, length, vocab]`.
    targets: `[batch, length]` int token ids.
    weights: `[batch, length]` (1 at real tokens, 0 at padding); None weighs all.
    label_smoothing: in [0, 1).
    z_loss: z-loss coefficient (1e-4 in T5).
    loss_normalizing_factor: see the module docstring.

  Returns:
    `(loss, z_loss_part, weight_sum)`: the normalized loss (z-loss included),
    its z-loss part, and the sum of weights.
  """
  if not 0.0 <= label_smoothing < 1.0:
    raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
  vocab_size = logits.shape[-1]
  confidence = 1.0 - label_smoothing
  low_confidence = label_smoothing / (vocab_size - 1)
  entropy = -(
    confidence * jnp.log(confidence)
    + (vocab_size - 1) * low_confidence * jnp.log(low_confidence + 1e-20)
  )
  soft_targets = (
    jax.nn.one_hot(targets, vocab_size) * (confidence - low_confidence) + low_confidence
  )
  loss, z_part = cross_entropy_with_logits(logits, soft_targets, z_loss)
  loss = loss - entropy
  if weights is None:
    weights = jnp.ones(targets.shape, jnp.float32)
  weights = weights.astype(jnp.float32)

  if loss_normalizing_factor == "AVERAGE_PER_SEQUENCE":
    # Each token weighs 1 / (its sequence's token count); then a batch mean.
    per_sequence = jnp.maximum(jnp.sum(weights, axis=-1, keepdims=True), 1e-8)
    weights = weights / per_sequence
    factor = float(targets.shape[0])
  elif loss_normalizing_factor == "NUM_REAL_TARGET_TOKENS":
    factor = jnp.maximum(jnp.sum(weights), 1e-8)
  elif loss_normalizing_factor == "NUM_TOTAL_TARGET_TOKENS":
    factor = float(targets.size)
  elif loss_normalizing_factor is None:
    factor = 1.0
  elif (
    isinstance(loss_normalizing_factor, (int, float))
    and not isinstance(loss_normalizing_factor, bool)
    and loss_normalizing_factor > 0
  ):
    factor = float(loss_normalizing_factor)
  else:
    raise ValueError(
      f"unknown loss_normalizing_factor {loss_normalizing_factor!r}; use None, "
      f"a positive number, or one of {NORMALIZING_FACTORS}"
    )
  weight_sum = jnp.sum(weights)
  return (jnp.sum(loss * weights) / factor, jnp.sum(z_part * weights) / factor, weight_sum)


def token_accuracy(logits: Array, targets: Array, weights: Optional[Array] = None) -> Array:
  """Fraction of weighted target tokens whose argmax prediction is right."""
  correct = (jnp.argmax(logits, axis=-1) == targets).astype(jnp.float32)
  if weights is None:
    return jnp.mean(correct)
  weights = weights.astype(jnp.float32)
  return jnp.sum(correct * weights) / jnp.maximum(jnp.sum(weights), 1e-8)
