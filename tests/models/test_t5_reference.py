"""Our T5.1.1 (with and without prompts) equals transformers' T5 on the same weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prompt_tuning.models import prompt_init
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from tests.helpers import hf_reference

ATOL = 1e-4  # float32, as the foundation issue specifies; never relax it.


def _embed(params, tokens):
  return np.asarray(params["token_embedder"]["embedding"])[tokens]


@pytest.mark.parametrize(
  "cfg", [hf_reference.TINY, hf_reference.SMALL_2L], ids=["tiny", "small_widths_2_layers"]
)
def test_plain_model_matches_transformers(cfg):
  hf = hf_reference.random_hf_model(cfg)
  hf_reference.assert_untied(hf)
  params = hf_reference.params_of(hf, cfg)
  rng = np.random.default_rng(0)
  inputs = hf_reference.random_tokens(rng, 3, 13, cfg.vocab_size)
  targets = rng.integers(2, cfg.vocab_size, size=(3, 7)).astype(np.int32)
  decoder_inputs = np.concatenate([np.zeros((3, 1), np.int32), targets[:, :-1]], axis=1)

  model = t5.Transformer(cfg)
  encoded, mask = jax.jit(lambda p, x: model.apply({"params": p}, x, method="encode"))(
    params, inputs
  )
  logits = jax.jit(lambda p, x, y: model.apply({"params": p}, x, y))(params, inputs, decoder_inputs)

  ref_encoded, ref_logits = hf_reference.run_hf(
    hf, _embed(params, inputs), inputs > 0, decoder_inputs
  )
  np.testing.assert_array_equal(np.asarray(mask), inputs > 0)
  np.testing.assert_allclose(np.asarray(encoded), ref_encoded, rtol=0, atol=ATOL)
  np.testing.assert_allclose(np.asarray(logits), ref_logits, rtol=0, atol=ATOL)
  assert np.abs(ref_logits).max() > 1.0  # the comparison is not between near-zeros


def _reference_layout(combine, embedded, mask, prompt):
  """Builds [inputs_embeds, attention_mask] example by example, independently of prompts.py."""
  rows, masks = [], []
  for e, m in zip(embedded, mask):
    n = int(m.sum())
    ones = np.ones(len(prompt), bool)
    if combine == "prefix":
      rows.append(np.concatenate([prompt, e])), masks.append(np.concatenate([ones, m]))
    elif combine == "prefix_after_first":
      rows.append(np.concatenate([e[:1], prompt, e[1:]]))
      masks.append(np.concatenate([m[:1], ones, m[1:]]))
    else:  # suffix: after the last real token, before the padding.
      rows.append(np.concatenate([e[:n], prompt, e[n:]]))
      masks.append(np.concatenate([m[:n], ones, m[n:]]))
  return np.stack(rows), np.stack(masks)


@pytest.mark.parametrize("combine", ["prefix", "prefix_after_first", "suffix"])
@pytest.mark.parametrize(
  "cfg", [hf_reference.TINY, hf_reference.SMALL_2L], ids=["tiny", "small_widths_2_layers"]
)
def test_prompted_model_matches_transformers_inputs_embeds(cfg, combine):
  hf = hf_reference.random_hf_model(cfg, seed=1)
  hf_reference.assert_untied(hf)
  params = hf_reference.params_of(hf, cfg)
  rng = np.random.default_rng(1)
  prompt_length = 5
  prompt = rng.normal(size=(prompt_length, cfg.emb_dim)).astype(np.float32)
  inputs = hf_reference.random_tokens(rng, 4, 11, cfg.vocab_size)
  decoder_inputs = rng.integers(0, cfg.vocab_size, size=(4, 6)).astype(np.int32)

  model = t5.Transformer(
    cfg, prompts.Prompt(prompt_length, cfg.emb_dim, prompt_init.from_array(prompt), combine)
  )
  variables = model.init(jax.random.key(0), inputs, decoder_inputs)
  np.testing.assert_array_equal(variables["prompt"]["encoder"]["prompt"]["prompt"].value, prompt)
  variables = {"params": params, "prompt": variables["prompt"]}
  encoded, mask = model.apply(variables, inputs, method="encode")
  logits = model.apply(variables, inputs, decoder_inputs)

  ref_embeds, ref_mask = _reference_layout(combine, _embed(params, inputs), inputs > 0, prompt)
  ref_encoded, ref_logits = hf_reference.run_hf(hf, ref_embeds, ref_mask, decoder_inputs)
  np.testing.assert_array_equal(np.asarray(mask), ref_mask)
  np.testing.assert_allclose(np.asarray(encoded), ref_encoded, rtol=0, atol=ATOL)
  np.testing.assert_allclose(np.asarray(logits), ref_logits, rtol=0, atol=ATOL)


def test_per_example_prompts_match_transformers():
  """A [batch, P, E] prompts argument gives each example its own prompt."""
  cfg = hf_reference.TINY
  hf = hf_reference.random_hf_model(cfg, seed=2)
  params = hf_reference.params_of(hf, cfg)
  rng = np.random.default_rng(2)
  per_example = rng.normal(size=(3, 4, cfg.emb_dim)).astype(np.float32)
  inputs = hf_reference.random_tokens(rng, 3, 9, cfg.vocab_size)
  decoder_inputs = rng.integers(0, cfg.vocab_size, size=(3, 5)).astype(np.int32)
  logits = t5.Transformer(cfg).apply(
    {"params": params}, inputs, decoder_inputs, prompts=jnp.asarray(per_example)
  )
  embedded = _embed(params, inputs)
  ref_embeds = np.concatenate([per_example, embedded], axis=1)
  ref_mask = np.concatenate([np.ones((3, 4), bool), inputs > 0], axis=1)
  _, ref_logits = hf_reference.run_hf(hf, ref_embeds, ref_mask, decoder_inputs)
  np.testing.assert_allclose(np.asarray(logits), ref_logits, rtol=0, atol=ATOL)


def test_logits_taken_from_the_embedding_fail_the_comparison():
  """The reference's logits and embedding tables differ, so the comparison sees which one a
  model uses: the same model with the embedding as its logits table is far outside ATOL."""
  cfg = hf_reference.TINY
  hf = hf_reference.random_hf_model(cfg)
  params = hf_reference.params_of(hf, cfg)
  embedding = np.asarray(params["token_embedder"]["embedding"])
  assert not np.array_equal(np.asarray(params["decoder"]["logits_dense"]["kernel"]), embedding.T)
  rng = np.random.default_rng(0)
  inputs = hf_reference.random_tokens(rng, 3, 13, cfg.vocab_size)
  decoder_inputs = rng.integers(0, cfg.vocab_size, size=(3, 7)).astype(np.int32)
  _, ref_logits = hf_reference.run_hf(hf, _embed(params, inputs), inputs > 0, decoder_inputs)
  model = t5.Transformer(cfg)
  right = np.asarray(model.apply({"params": params}, inputs, decoder_inputs))
  np.testing.assert_allclose(right, ref_logits, rtol=0, atol=ATOL)
  wrong_params = jax.tree_util.tree_map(np.asarray, params)
  wrong_params["decoder"]["logits_dense"]["kernel"] = embedding.T.copy()
  wrong = np.asarray(model.apply({"params": wrong_params}, inputs, decoder_inputs))
  assert np.abs(wrong - ref_logits).max() > 100 * ATOL
