"""Only what trains gets gradients and optimizer state; frozen weights stay bitwise."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from prompt_tuning.training import losses
from prompt_tuning.training import optimizers
from prompt_tuning.training import trainable
from tests.helpers import hf_reference

CFG = hf_reference.TINY


@pytest.fixture(scope="module")
def setup():
  model = t5.Transformer(CFG, prompts.Prompt(4, CFG.emb_dim))
  rng = np.random.default_rng(0)
  inputs = hf_reference.random_tokens(rng, 4, 8, CFG.vocab_size)
  targets = rng.integers(2, CFG.vocab_size, (4, 5)).astype(np.int32)
  dec = np.concatenate([np.zeros((4, 1), np.int32), targets[:, :-1]], axis=1)
  variables = nn.meta.unbox(model.init(jax.random.key(0), inputs, dec))
  return model, variables, (inputs, dec, targets)


def test_partition_modes(setup):
  _, variables, _ = setup
  train, frozen = trainable.partition(variables, "prompt")
  assert list(train) == ["prompt/encoder/prompt/prompt"]
  assert all(p.startswith("params/") for p in frozen)
  train, frozen = trainable.partition(variables, "all")
  assert not frozen and len(train) == len(trainable.flatten(variables))
  train, _ = trainable.partition(variables, [r"params/.*/layer_norm/scale", r"prompt/.*"])
  assert "prompt/encoder/prompt/prompt" in train
  assert "params/encoder/layers_0/pre_mlp_layer_norm/scale" not in train  # fullmatch only
  train, _ = trainable.partition(variables, [r"params/.*_layer_norm/scale"])
  assert "params/encoder/layers_0/pre_mlp_layer_norm/scale" in train
  with pytest.raises(ValueError, match="no variable path matches"):
    trainable.partition(variables, [r"params/nothing"])
  with pytest.raises(ValueError, match="what trains must be 'prompt', 'all' or a list"):
    trainable.partition(variables, "prompts")
  jax.tree_util.tree_map(
    np.testing.assert_array_equal, trainable.merge(*trainable.partition(variables)), variables
  )


def test_an_empty_prompt_stays_frozen():
  model = t5.Transformer(CFG, prompts.Prompt(0, CFG.emb_dim))
  tokens = jnp.ones((1, 3), jnp.int32)
  variables = nn.meta.unbox(model.init(jax.random.key(0), tokens, tokens))
  train, frozen = trainable.partition(variables, "all")  # model tuning of a plain T5
  assert list(frozen) == ["prompt/encoder/prompt/prompt"]
  assert set(train) == {p for p in trainable.flatten(variables) if p.startswith("params/")}
  with pytest.raises(
    ValueError,
    match=r"there is no prompt to train: the model's prompt has "
    r"length 0 \(PROMPT_LENGTH=0\)",
  ):
    trainable.partition(variables, "prompt")


@pytest.mark.parametrize("length", ["ten", 2.5, True, -1])
def test_a_prompt_length_that_is_no_count_is_one_line_naming_the_macro(length):
  model = t5.Transformer(CFG, prompts.Prompt(length, CFG.emb_dim))
  tokens = jnp.ones((1, 3), jnp.int32)
  with pytest.raises(
    ValueError,
    match=rf"prompt length \(PROMPT_LENGTH\) is {length!r}; it "
    "must be an integer >= 0",
  ):
    model.init(jax.random.key(0), tokens, tokens)


@pytest.mark.parametrize("what", ["prompt", "all"])
def test_steps_change_exactly_what_trains(setup, what):
  model, variables, (inputs, dec, targets) = setup
  before = {k: np.array(v) for k, v in trainable.flatten(variables).items()}  # host copies
  train, frozen = trainable.partition(variables, what)
  tx = optimizers.adafactor(0.3 if what == "prompt" else 1e-3)
  opt_state = tx.init(train)
  # Optimizer state exists only for what trains.
  state_leaves = jax.tree_util.tree_leaves(opt_state)
  assert sum(x.size for x in state_leaves) < 4 * sum(x.size for x in train.values())

  @jax.jit
  def step(train, opt_state):
    def loss_fn(train):
      logits = model.apply(trainable.merge(train, frozen), inputs, dec)
      return losses.weighted_cross_entropy(
        logits, targets, z_loss=1e-4, loss_normalizing_factor="NUM_REAL_TARGET_TOKENS"
      )[0]

    loss, grads = jax.value_and_grad(loss_fn)(train)
    updates, opt_state = tx.update(grads, opt_state, train)
    return optax.apply_updates(train, updates), opt_state, loss

  first = None
  for _ in range(5):
    train_new, opt_state, loss = step(train, opt_state)
    first = first if first is not None else float(loss)
    for path in train:
      assert not np.array_equal(train_new[path], train[path]), path
    train = train_new
  _, _, last = step(train, opt_state)
  assert float(last) < first
  after = trainable.flatten(trainable.merge(train, frozen))
  assert set(after) == set(before)
  for path, value in before.items():
    if path in frozen:
      np.testing.assert_array_equal(np.asarray(after[path]), value, err_msg=path)  # bitwise
    else:
      assert not np.array_equal(np.asarray(after[path]), value), path


def test_prompt_second_moments_are_not_factored():
  # Widths >= 128, where optax factors a matrix's second moments.
  train = {
    "prompt/encoder/prompt/prompt": jnp.zeros((200, 256)),
    "params/encoder/layers_0/mlp/wi_0/kernel": jnp.zeros((256, 512)),
  }
  state = optimizers.adafactor().init(train)
  v = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(state):
    match = re.search(r"\.(v_row|v_col|v)\['(.+)'\]$", jax.tree_util.keystr(path))
    if match:
      v.setdefault(match[2], {})[match[1]] = leaf.shape
  assert v["prompt/encoder/prompt/prompt"]["v"] == (200, 256)  # full statistics
  assert v["params/encoder/layers_0/mlp/wi_0/kernel"]["v_row"] == (256,)  # factored
  assert v["params/encoder/layers_0/mlp/wi_0/kernel"]["v_col"] == (512,)
