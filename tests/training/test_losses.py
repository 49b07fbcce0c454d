"""The loss against an independent float64 computation of its definition."""

import math

import numpy as np
import pytest

from prompt_tuning.training import losses


def _reference(logits, targets, weights, smoothing, z_loss):
  """Per-token loss written out from the definition, in float64 loops."""
  batch, length, vocab = logits.shape
  out = np.zeros((batch, length))
  zs = np.zeros((batch, length))
  for b in range(batch):
    for t in range(length):
      row = logits[b, t].astype(np.float64)
      log_z = math.log(sum(math.exp(v) for v in row))
      q = np.full(vocab, smoothing / (vocab - 1))
      q[targets[b, t]] = 1 - smoothing
      entropy = -sum(p * math.log(p) for p in q if p > 0)
      cross = -sum(q[i] * (row[i] - log_z) for i in range(vocab))
      zs[b, t] = z_loss * log_z**2
      out[b, t] = cross - entropy + zs[b, t]
  return out * weights, zs * weights


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize(
  "factor", [None, 7.0, "NUM_REAL_TARGET_TOKENS", "NUM_TOTAL_TARGET_TOKENS", "AVERAGE_PER_SEQUENCE"]
)
def test_weighted_cross_entropy_matches_definition(smoothing, factor):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 5, 11)).astype(np.float32) * 3
  targets = rng.integers(0, 11, size=(3, 5))
  weights = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], np.float32)
  per_token, per_z = _reference(logits, targets, weights, smoothing, 1e-4)
  if factor == "AVERAGE_PER_SEQUENCE":
    want = (per_token.sum(1) / weights.sum(1)).sum() / 3
    want_z = (per_z.sum(1) / weights.sum(1)).sum() / 3
  else:
    divisor = {
      None: 1.0,
      7.0: 7.0,
      "NUM_REAL_TARGET_TOKENS": weights.sum(),
      "NUM_TOTAL_TARGET_TOKENS": weights.size,
    }[factor]
    want, want_z = per_token.sum() / divisor, per_z.sum() / divisor
  loss, z, weight_sum = losses.weighted_cross_entropy(
    logits, targets, weights, smoothing, 1e-4, factor
  )
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  np.testing.assert_allclose(float(z), want_z, rtol=1e-5)
  if factor != "AVERAGE_PER_SEQUENCE":
    assert float(weight_sum) == weights.sum()


def test_perfect_prediction_scores_zero_under_smoothing():
  vocab = 6
  targets = np.array([[1, 4]])
  q = np.full((1, 2, vocab), 0.1 / (vocab - 1))
  q[0, 0, 1] = q[0, 1, 4] = 0.9
  loss, _, _ = losses.weighted_cross_entropy(
    np.log(q).astype(np.float32), targets, label_smoothing=0.1
  )
  assert abs(float(loss)) < 1e-5


def test_bad_options_are_named():
  x, y = np.zeros((1, 2, 3), np.float32), np.zeros((1, 2), np.int32)
  with pytest.raises(ValueError, match="unknown loss_normalizing_factor 'TOKENS'"):
    losses.weighted_cross_entropy(x, y, loss_normalizing_factor="TOKENS")
  with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
    losses.weighted_cross_entropy(x, y, label_smoothing=1.0)


def test_token_accuracy_ignores_padding():
  logits = np.zeros((1, 3, 4), np.float32)
  logits[0, 0, 2] = logits[0, 1, 1] = logits[0, 2, 3] = 1
  acc = losses.token_accuracy(logits, np.array([[2, 0, 0]]), np.array([[1, 1, 0]]))
  assert float(acc) == 0.5
