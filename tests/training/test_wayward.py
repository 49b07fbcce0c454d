"""Wayward prompts: the distance and the nearest tokens against plain computations, and a
prompt trained with a large pull ends on the discrete prompt's tokens, without one not."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from prompt_tuning.training import optimizers
from prompt_tuning.training import train_state
from prompt_tuning.training import trainable
from prompt_tuning.training import wayward
from tests.helpers import hf_reference

CFG = hf_reference.TINY
IDS = (5, 17, 3, 42, 29)


def _wayward(table, gamma):
  return wayward.Wayward(IDS, np.asarray(table)[list(IDS)], gamma)


def test_distance_and_nearest_tokens_equal_plain_computations():
  rng = np.random.default_rng(0)
  table = rng.normal(size=(64, 8)).astype(np.float32)
  prompt = rng.normal(size=(5, 8)).astype(np.float32)
  w = _wayward(table, 0.5)
  want = sum(sum((p - d) ** 2) for p, d in zip(prompt, table[list(IDS)])) / 5
  assert float(w.distance(jnp.asarray(prompt))) == pytest.approx(want, rel=1e-5)
  term, metrics = w({wayward.PROMPT_PATH: jnp.asarray(prompt)})
  assert float(term) == pytest.approx(0.5 * want, rel=1e-5)
  assert float(metrics["wayward_distance"]) == pytest.approx(want, rel=1e-5)
  brute = [min(range(64), key=lambda v: float(np.sum((p - table[v]) ** 2))) for p in prompt]
  assert list(w.nearest(prompt, table)) == brute
  # Two positions moved next to their discrete token: 2 of 5 match.
  near = prompt.copy()
  near[[1, 3]] = table[[IDS[1], IDS[3]]] + 1e-3
  reported, text = w.report({wayward.PROMPT_PATH: near, wayward.EMBEDDING_PATH: table})
  assert reported["wayward/nearest_match"] == pytest.approx(0.4)
  assert text.split()[1] == str(IDS[1])
  with pytest.raises(ValueError, match="PROMPT_LENGTH"):
    w.distance(jnp.zeros((4, 8)))
  with pytest.raises(ValueError, match="a per-layer prompt"):
    w.distance(jnp.zeros((3, 5, 8)))
  with pytest.raises(ValueError, match="WAYWARD_GAMMA"):
    _wayward(table, -1.0)


def _train(gamma: float, steps: int = 60) -> float:
  """Trains a random 5-vector prompt on the tiny model; returns the nearest-token match."""
  model = t5.Transformer(CFG, prompts.Prompt(len(IDS), CFG.emb_dim))
  variables = nn.meta.unbox(
    model.init(
      {"params": jax.random.key(0)}, jnp.ones((1, 3), jnp.int32), jnp.ones((1, 2), jnp.int32)
    )
  )
  train, frozen = trainable.partition(variables, "prompt")
  table = np.asarray(frozen[wayward.EMBEDDING_PATH])
  regularizer = _wayward(table, gamma)
  tx = optimizers.adafactor(0.3)
  state = train_state.create(train, tx, seed=0)
  step = jax.jit(train_state.make_train_step(model, tx, regularizer=regularizer))
  rng = np.random.default_rng(1)
  for _ in range(steps):
    inputs = hf_reference.random_tokens(rng, 4, 6, CFG.vocab_size)
    targets = hf_reference.random_tokens(rng, 4, 3, CFG.vocab_size)
    batch = {
      "encoder_input_tokens": inputs,
      "decoder_input_tokens": np.pad(targets[:, :-1], ((0, 0), (1, 0))),
      "decoder_target_tokens": targets,
      "decoder_loss_weights": (targets > 0).astype(np.float32),
    }
    state, metrics = step(state, frozen, batch)
  assert "wayward_distance" in metrics
  reported, _ = regularizer.report({**frozen, **state.trainable})
  return reported["wayward/nearest_match"]


def test_a_large_pull_ends_on_the_discrete_prompts_tokens_and_none_does_not():
  assert _train(gamma=10.0) == 1.0
  assert _train(gamma=0.0) < 0.5
