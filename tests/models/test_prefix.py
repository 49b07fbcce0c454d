"""Prefix tuning as Hugging Face PEFT applies it to T5: keys and values before each decoder
layer's self-attention, from an adapter's tensor. Checked against `PeftModel` on random
weights (decoder weights unlike the encoder's, three layers so that PEFT's row order
matters): teacher-forced logits, and greedy decoding through the decode cache."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import peft as peft_lib
import pytest
import torch

from prompt_tuning.checkpoints import peft
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from tests.helpers import hf_reference

CFG = dataclasses.replace(hf_reference.TINY, num_encoder_layers=3, num_decoder_layers=3)
PREFIX = 5


@pytest.fixture(scope="module")
def reference():
  hf = hf_reference.random_hf_model(CFG, seed=3)
  hf_reference.assert_untied(hf)
  params = hf_reference.params_of(hf, CFG)
  model = peft_lib.get_peft_model(
    hf, peft_lib.PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=PREFIX)
  ).eval()
  with torch.no_grad():
    table = model.prompt_encoder["default"].embedding.weight
    table.copy_(torch.randn_like(table))
  tensor = model.get_prompt_embedding_to_save("default").detach().numpy()
  return model, params, tensor


def _batch(seed: int, rows: int, target_length: int):
  """Random inputs, targets and the targets shifted right (the decoder's inputs)."""
  rng = np.random.default_rng(seed)
  tokens = hf_reference.random_tokens(rng, rows, 9, CFG.vocab_size)
  targets = rng.integers(2, CFG.vocab_size, size=(rows, target_length)).astype(np.int32)
  return tokens, targets, _shift(targets)


def _shift(targets: np.ndarray) -> np.ndarray:
  return np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], axis=1)


def _naive(tensor: np.ndarray) -> np.ndarray:
  """Layer i from rows 2i and 2i + 1: the reading PEFT does not do."""
  rows = tensor.reshape(PREFIX, 2 * CFG.num_decoder_layers, CFG.num_heads, -1)
  return np.stack(
    [np.stack([rows[:, 2 * i], rows[:, 2 * i + 1]]) for i in range(CFG.num_decoder_layers)]
  )


def _logits(params, tokens, targets, prefix, cfg=CFG):
  model = t5.Transformer(cfg)
  encoded, mask = model.apply({"params": params}, jnp.asarray(tokens), method=model.encode)
  shifted = _shift(targets)
  return np.asarray(
    model.apply(
      {"params": params},
      encoded,
      mask,
      jnp.asarray(shifted),
      prefixes=jnp.asarray(prefix),
      method=model.decode,
    )
  )


def test_teacher_forced_logits_equal_peft_and_the_rows_order_matters(reference):
  model, params, tensor = reference
  tokens, targets, shifted = _batch(0, 4, 6)
  with torch.no_grad():
    want = model(
      input_ids=torch.from_numpy(tokens.astype(np.int64)),
      attention_mask=torch.from_numpy((tokens > 0).astype(np.int64)),
      decoder_input_ids=torch.from_numpy(shifted.astype(np.int64)),
    ).logits.numpy()
  prefix = peft.prefix_from_peft(tensor, CFG.num_decoder_layers, CFG.num_heads)
  assert prefix.shape == (3, 2, PREFIX, CFG.num_heads, CFG.head_dim)
  np.testing.assert_allclose(_logits(params, tokens, targets, prefix), want, atol=2e-4, rtol=2e-4)
  # Scanned layers take each layer's slice of the prefix as the loop does.
  scanned = dataclasses.replace(CFG, scan_layers=True)
  np.testing.assert_allclose(
    _logits(t5.stack_layers(params), tokens, targets, prefix, scanned), want, atol=2e-4, rtol=2e-4
  )
  # The check can tell: rows read in the naive order, or no prefix, give other logits.
  for wrong in (_naive(tensor), np.zeros_like(prefix)):
    assert np.abs(_logits(params, tokens, targets, wrong) - want).max() > 0.1


def test_greedy_decoding_through_the_cache_equals_peft_generate(reference):
  model, params, tensor = reference
  prefix = jnp.asarray(peft.prefix_from_peft(tensor, CFG.num_decoder_layers, CFG.num_heads))
  rng = np.random.default_rng(1)
  tokens = hf_reference.random_tokens(rng, 16, 9, CFG.vocab_size)
  steps = 6
  with torch.no_grad():
    want = model.generate(
      input_ids=torch.from_numpy(tokens.astype(np.int64)),
      attention_mask=torch.from_numpy((tokens > 0).astype(np.int64)),
      max_new_tokens=steps,
      min_new_tokens=steps,
      do_sample=False,
      num_beams=1,
      decoder_start_token_id=0,
      eos_token_id=None,
      pad_token_id=0,
    )[:, 1:].numpy()
  t5_model = t5.Transformer(CFG)
  encoded, mask = t5_model.apply({"params": params}, jnp.asarray(tokens), method=t5_model.encode)
  cache, token, got = None, jnp.zeros((16, 1), jnp.int32), []
  for _ in range(steps):
    variables = {"params": params, **({"cache": cache} if cache is not None else {})}
    logits, updated = t5_model.apply(
      variables,
      encoded,
      mask,
      token,
      decode=True,
      max_decode_length=steps,
      prefixes=prefix,
      method=t5_model.decode,
      mutable=["cache"],
    )
    cache = updated["cache"]
    token = jnp.argmax(logits[:, -1], axis=-1)[:, None].astype(jnp.int32)
    got.append(np.asarray(token[:, 0]))
  got = np.stack(got, axis=1)
  np.testing.assert_array_equal(got, want)
  assert len({tuple(r) for r in got}) > 1  # the rows differ: the inputs matter


def _apply(model, variables, tokens, shifted):
  encoded, mask = model.apply(variables, jnp.asarray(tokens), method=model.encode)
  return np.asarray(
    model.apply(variables, encoded, mask, jnp.asarray(shifted), method=model.decode)
  )


def _prefix(hidden_dim: int = 0) -> prompts.Prefix:
  return prompts.Prefix(
    length=PREFIX,
    num_layers=CFG.num_decoder_layers,
    num_heads=CFG.num_heads,
    head_dim=CFG.head_dim,
    embed_dim=CFG.emb_dim,
    hidden_dim=hidden_dim,
  )


def test_the_prefix_variable_in_the_prompt_collection_is_what_the_decoder_uses(reference):
  model, params, tensor = reference
  tokens, targets, shifted = _batch(2, 3, 5)
  prefix = peft.prefix_from_peft(tensor, CFG.num_decoder_layers, CFG.num_heads)
  t5_model = t5.Transformer(CFG, prefix=_prefix())
  variables = {"params": params, "prompt": {"decoder": {"prefix": {"prefix": prefix}}}}
  np.testing.assert_array_equal(
    _apply(t5_model, variables, tokens, shifted), _logits(params, tokens, targets, prefix)
  )
  # A prefix of another shape than the decoder's is refused.
  wrong = t5.Transformer(CFG, prefix=dataclasses.replace(_prefix(), num_layers=2))
  with pytest.raises(ValueError, match="does not fit this model's decoder"):
    _apply(wrong, variables, tokens, shifted)


def test_a_reparameterized_prefix_folds_into_the_prefix_it_gives():
  params = hf_reference.params_of(hf_reference.random_hf_model(CFG, seed=4), CFG)
  rng = np.random.default_rng(3)
  tokens = hf_reference.random_tokens(rng, 3, 9, CFG.vocab_size)
  shifted = np.concatenate(
    [np.zeros((3, 1), np.int32), rng.integers(2, CFG.vocab_size, size=(3, 4)).astype(np.int32)],
    axis=1,
  )
  mlp = _prefix(hidden_dim=16)
  with_mlp = t5.Transformer(CFG, prefix=mlp)
  variables = with_mlp.init(jax.random.PRNGKey(0), jnp.asarray(tokens), jnp.asarray(shifted))
  trained = variables["prompt"]["decoder"]["prefix"]
  assert sorted(trained) == sorted(prompts.PREFIX_MLP)
  folded = prompts.fold_prefix(mlp, trained)
  assert folded["prefix"].shape == mlp.shape
  plain = t5.Transformer(CFG, prefix=_prefix())
  want = _apply(with_mlp, {"params": params, "prompt": variables["prompt"]}, tokens, shifted)
  got = _apply(
    plain, {"params": params, "prompt": {"decoder": {"prefix": folded}}}, tokens, shifted
  )
  np.testing.assert_array_equal(got, want)  # bit for bit
  # The check can tell: an unfolded (freshly drawn) prefix gives other logits.
  other = plain.init(jax.random.PRNGKey(1), jnp.asarray(tokens), jnp.asarray(shifted))
  assert (
    np.abs(
      _apply(plain, {"params": params, "prompt": other["prompt"]}, tokens, shifted) - want
    ).max()
    > 0.1
  )


def test_the_peft_layout_reads_peft_s_table_as_it_is(reference):
  """PREFIX_LAYOUT='peft': the variable is PEFT's [P, 2L, heads, head_dim] table itself."""
  _, params, tensor = reference
  tokens, targets, shifted = _batch(4, 3, 5)
  rows = tensor.reshape(PREFIX, 2 * CFG.num_decoder_layers, CFG.num_heads, CFG.head_dim)
  model = t5.Transformer(CFG, prefix=dataclasses.replace(_prefix(), layout="peft"))
  variables = {"params": params, "prompt": {"decoder": {"prefix": {"prefix": rows}}}}
  want = _logits(
    params, tokens, targets, peft.prefix_from_peft(tensor, CFG.num_decoder_layers, CFG.num_heads)
  )
  np.testing.assert_array_equal(_apply(model, variables, tokens, shifted), want)
  # Its MLP form folds back into such a table, which decodes bit for bit the same.
  mlp = dataclasses.replace(_prefix(hidden_dim=8), layout="peft")
  with_mlp = t5.Transformer(CFG, prefix=mlp)
  init = with_mlp.init(jax.random.PRNGKey(2), jnp.asarray(tokens), jnp.asarray(shifted))
  folded = prompts.fold_prefix(mlp, init["prompt"]["decoder"]["prefix"])
  assert folded["prefix"].shape == rows.shape
  np.testing.assert_array_equal(
    _apply(model, {"params": params, "prompt": {"decoder": {"prefix": folded}}}, tokens, shifted),
    _apply(with_mlp, {"params": params, "prompt": init["prompt"]}, tokens, shifted),
  )
