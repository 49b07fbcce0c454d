"""Prefix tuning as Hugging Face PEFT applies it to T5: keys and values before each decoder
layer's self-attention, from an adapter's tensor. Checked against `PeftModel` on random
weights (decoder weights unlike the encoder's, three layers so that PEFT's row order
matters): teacher-forced logits, and greedy decoding through the decode cache."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import peft as peft_lib
import pytest
import torch

from prompt_tuning.checkpoints import peft
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


def _naive(tensor: np.ndarray) -> np.ndarray:
  """Layer i from rows 2i and 2i + 1: the reading PEFT does not do."""
  rows = tensor.reshape(PREFIX, 2 * CFG.num_decoder_layers, CFG.num_heads, -1)
  return np.stack(
    [np.stack([rows[:, 2 * i], rows[:, 2 * i + 1]]) for i in range(CFG.num_decoder_layers)]
  )


def _logits(params, tokens, targets, prefix, cfg=CFG):
  model = t5.Transformer(cfg)
  encoded, mask = model.apply({"params": params}, jnp.asarray(tokens), method=model.encode)
  shifted = np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], axis=1)
  return np.asarray(
    model.apply(
      {"params": params},
      encoded,
      mask,
      jnp.asarray(shifted),
      prefix=jnp.asarray(prefix),
      method=model.decode,
    )
  )


def test_teacher_forced_logits_equal_peft_and_the_rows_order_matters(reference):
  model, params, tensor = reference
  rng = np.random.default_rng(0)
  tokens = hf_reference.random_tokens(rng, 4, 9, CFG.vocab_size)
  targets = rng.integers(2, CFG.vocab_size, size=(4, 6)).astype(np.int32)
  shifted = np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], axis=1)
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
      prefix=prefix,
      method=t5_model.decode,
      mutable=["cache"],
    )
    cache = updated["cache"]
    token = jnp.argmax(logits[:, -1], axis=-1)[:, None].astype(jnp.int32)
    got.append(np.asarray(token[:, 0]))
  got = np.stack(got, axis=1)
  np.testing.assert_array_equal(got, want)
  assert len({tuple(r) for r in got}) > 1  # the rows differ: the inputs matter
