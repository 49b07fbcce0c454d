"""Decoding over the KV cache against transformers' generate() and brute-force enumeration."""

import dataclasses
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from prompt_tuning.inference import decoding
from prompt_tuning.models import t5
from tests.helpers import hf_reference


def _hf_with_eos_bias(cfg, seed=0, eos_boost=6.0):
  """A random HF T5 whose EOS logit is raised, so that generations end at varied lengths."""
  hf = hf_reference.random_hf_model(cfg, seed)
  with torch.no_grad():
    hf.lm_head.weight[decoding.EOS_ID] *= eos_boost
  return hf


def _hf_greedy(hf, embeds, mask, max_length):
  with torch.no_grad():
    out = hf.generate(
      inputs_embeds=torch.from_numpy(embeds.astype(np.float32)),
      attention_mask=torch.from_numpy(mask.astype(np.int64)),
      max_new_tokens=max_length,
      do_sample=False,
      num_beams=1,
      min_length=0,
      decoder_start_token_id=0,
      eos_token_id=decoding.EOS_ID,
      pad_token_id=0,
    )
  tokens = out.numpy()[:, 1:]  # drop the start token
  return np.pad(tokens, ((0, 0), (0, max_length - tokens.shape[1])))


def test_greedy_equals_transformers_generate_with_a_prompt_for_every_padded_row():
  cfg = hf_reference.TINY
  hf = _hf_with_eos_bias(cfg)
  params = hf_reference.params_of(hf, cfg)
  rng = np.random.default_rng(1)
  inputs = hf_reference.random_tokens(rng, 6, 11, cfg.vocab_size)
  prompt = rng.normal(size=(3, cfg.emb_dim)).astype(np.float32)
  max_length = 9
  model = t5.Transformer(cfg)
  out = jax.jit(
    lambda p, x, q: decoding.decode(model, {"params": p}, x, max_length=max_length, prompts=q)
  )(params, inputs, prompt)
  tokens = np.asarray(out.tokens[:, 0])
  table = np.asarray(params["token_embedder"]["embedding"])
  lengths = []
  for row, got in zip(inputs, tokens):  # one unpadded example at a time on the reference side
    real = row[row > 0]
    embeds = np.concatenate([prompt, table[real]])[None]
    want = _hf_greedy(hf, embeds, np.ones(embeds.shape[:2]), max_length)[0]
    np.testing.assert_array_equal(got, want)
    lengths.append(int(np.sum(got > 0)))
  assert len(set(lengths)) > 1 and min(lengths) < max_length  # some stopped at EOS early

  # The reported log-likelihood is the teacher-forced one of the returned sequence.
  ll = decoding.sequence_log_likelihood(model, {"params": params}, inputs, tokens, prompts=prompt)
  np.testing.assert_allclose(np.asarray(out.log_likelihood[:, 0]), np.asarray(ll), atol=1e-4)


def _enumerate(model, variables, inputs, vocab, max_length, alpha):
  """Every EOS-ended sequence of at most max_length tokens, with its beam score, best first."""
  seqs = []
  for n in range(1, max_length + 1):
    for prefix in itertools.product(
      [v for v in range(vocab) if v != decoding.EOS_ID], repeat=n - 1
    ):
      seqs.append(list(prefix) + [decoding.EOS_ID] + [0] * (max_length - n))
  seqs = np.asarray(seqs, np.int32)
  results = []
  for row in inputs:
    x = np.repeat(row[None], len(seqs), axis=0)
    decoder_inputs = np.pad(seqs[:, :-1], ((0, 0), (1, 0)))
    logp = np.asarray(jax.nn.log_softmax(model.apply(variables, x, decoder_inputs)))
    token_logp = np.take_along_axis(logp, seqs[..., None], -1)[..., 0]
    length = np.argmax(seqs == decoding.EOS_ID, axis=1) + 1
    upto = np.arange(max_length)[None] < length[:, None]
    total = np.sum(np.where(upto, token_logp, 0.0), axis=1)
    score = total / ((5.0 + length) / 6.0) ** alpha
    order = np.argsort(-score, kind="stable")
    results.append((seqs[order], score[order], total[order]))
  return results


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_beam_search_finds_the_exhaustive_optimum(alpha):
  # 5 tokens and 4 steps: 64 beams keep every unfinished prefix, so the search
  # is exact and its kept beams are the enumeration's top 64.
  cfg = dataclasses.replace(hf_reference.TINY, vocab_size=5)
  model = t5.Transformer(cfg)
  rng = np.random.default_rng(2)
  inputs = hf_reference.random_tokens(rng, 2, 6, cfg.vocab_size)
  variables = model.init(jax.random.key(3), inputs, inputs[:, :2])
  max_length, beams = 4, 64
  out = decoding.decode(
    model,
    variables,
    inputs,
    max_length=max_length,
    method=decoding.BeamSearch(num_beams=beams, alpha=alpha),
  )
  for i, (seqs, score, total) in enumerate(
    _enumerate(model, variables, inputs, cfg.vocab_size, max_length, alpha)
  ):
    np.testing.assert_array_equal(np.asarray(out.tokens[i, 0]), seqs[0])
    np.testing.assert_allclose(np.asarray(out.scores[i]), score[:beams], atol=1e-5)
    np.testing.assert_allclose(np.asarray(out.log_likelihood[i]), total[:beams], atol=1e-5)


def test_beam_search_with_few_beams_is_consistent_and_stops_early():
  cfg = dataclasses.replace(hf_reference.TINY, vocab_size=7)
  model = t5.Transformer(cfg)
  inputs = hf_reference.random_tokens(np.random.default_rng(4), 3, 5, cfg.vocab_size)
  variables = model.init(jax.random.key(5), inputs, inputs[:, :2])
  out = decoding.decode(
    model, variables, inputs, max_length=6, method=decoding.BeamSearch(num_beams=3, alpha=0.6)
  )
  tokens, scores = np.asarray(out.tokens), np.asarray(out.scores)
  assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first
  # A random model may emit the padding id 0 mid-sequence, so lengths run to the EOS.
  flat = tokens.reshape(-1, 6)
  lengths = np.argmax(flat == decoding.EOS_ID, axis=1) + 1
  assert np.all(flat[np.arange(len(flat)), lengths - 1] == decoding.EOS_ID)
  decoder_inputs = np.pad(flat[:, :-1], ((0, 0), (1, 0)))
  logp = jax.nn.log_softmax(model.apply(variables, np.repeat(inputs, 3, axis=0), decoder_inputs))
  token_logp = np.take_along_axis(np.asarray(logp), flat[..., None], -1)[..., 0]
  ll = np.sum(np.where(np.arange(6)[None] < lengths[:, None], token_logp, 0.0), axis=1)
  np.testing.assert_allclose(np.asarray(out.log_likelihood).reshape(-1), ll, atol=1e-5)
  lengths = lengths.reshape(3, 3)
  np.testing.assert_allclose(
    scores, np.asarray(out.log_likelihood) / ((5.0 + lengths) / 6.0) ** 0.6, atol=1e-5
  )


def test_sampling_follows_the_truncated_tempered_distribution():
  cfg = dataclasses.replace(hf_reference.TINY, vocab_size=8)
  model = t5.Transformer(cfg)
  inputs = np.tile(hf_reference.random_tokens(np.random.default_rng(6), 1, 5, 8), (4000, 1))
  variables = model.init(jax.random.key(7), inputs[:1], inputs[:1, :2])
  logits = np.asarray(model.apply(variables, inputs[:1], np.zeros((1, 1), np.int32)))[0, 0]
  temperature, top_p = 0.7, 0.8
  probs = np.exp(logits / temperature - np.max(logits / temperature))
  probs /= probs.sum()
  order = np.argsort(-probs)
  before = np.cumsum(probs[order]) - probs[order]
  nucleus = order[before < top_p]
  expected = np.zeros_like(probs)
  expected[nucleus] = probs[nucleus] / probs[nucleus].sum()

  sample = jax.jit(
    lambda v, x, key: decoding.decode(
      model,
      v,
      x,
      max_length=1,
      rng=key,
      method=decoding.Sampling(temperature=temperature, top_p=top_p),
    )
  )
  first = np.asarray(sample(variables, inputs, jax.random.key(0)).tokens[:, 0, 0])
  freq = np.bincount(first, minlength=8) / len(first)
  assert set(np.flatnonzero(freq)) <= set(nucleus.tolist())
  np.testing.assert_allclose(freq, expected, atol=0.03)
  assert len(nucleus) > 1  # the test distinguishes sampling from greedy

  greedy = decoding.decode(model, variables, inputs[:4], max_length=5).tokens
  for method in (
    decoding.Sampling(top_k=1),
    decoding.Sampling(temperature=0.0),
    decoding.Sampling(top_p=1e-6),
  ):
    got = decoding.decode(
      model, variables, inputs[:4], max_length=5, method=method, rng=jax.random.key(1)
    ).tokens
    np.testing.assert_array_equal(np.asarray(got), np.asarray(greedy))


def test_scanned_layers_decode_like_unrolled_ones():
  cfg = hf_reference.TINY
  model = t5.Transformer(cfg)
  scanned = t5.Transformer(dataclasses.replace(cfg, scan_layers=True))
  inputs = hf_reference.random_tokens(np.random.default_rng(8), 3, 7, cfg.vocab_size)
  variables = nn.meta.unbox(model.init(jax.random.key(9), inputs, inputs[:, :2]))
  stacked = {"params": t5.stack_layers(variables["params"])}
  for method in (decoding.Greedy(), decoding.BeamSearch(num_beams=2)):
    a = decoding.decode(model, variables, inputs, max_length=5, method=method)
    b = decoding.decode(scanned, stacked, inputs, max_length=5, method=method)
    np.testing.assert_array_equal(np.asarray(a.tokens), np.asarray(b.tokens))
    np.testing.assert_allclose(np.asarray(a.scores), np.asarray(b.scores), atol=1e-5)


def test_bad_settings_are_clear_errors():
  with pytest.raises(ValueError, match="top_p"):
    decoding.Sampling(top_p=0.0)
  with pytest.raises(ValueError, match="num_beams"):
    decoding.BeamSearch(num_beams=0)
  model = t5.Transformer(hf_reference.TINY)
  x = jnp.ones((1, 3), jnp.int32)
  variables = model.init(jax.random.key(0), x, x)
  with pytest.raises(ValueError, match="rng"):
    decoding.decode(model, variables, x, max_length=2, method=decoding.Sampling())


def _settings(max_tokens, temperature, top_p, seed):
  return decoding.RowSettings(
    np.asarray(max_tokens, np.int32),
    np.asarray(temperature, np.float32),
    np.asarray(top_p, np.float32),
    np.asarray(seed, np.uint32),
  )


def test_decode_by_row_mixes_prompt_lengths_and_settings_each_row_as_if_alone():
  # What the server compiles: rows of different prompt lengths, greedy and
  # sampled, each with its own max_tokens and seed, in one batch.
  cfg = hf_reference.TINY
  hf = _hf_with_eos_bias(cfg, eos_boost=2.0)
  params = hf_reference.params_of(hf, cfg)
  model = t5.Transformer(cfg)
  rng = np.random.default_rng(3)
  inputs = hf_reference.random_tokens(rng, 5, 8, cfg.vocab_size)
  lengths = np.asarray([2, 4, 4, 1, 3])
  table = rng.normal(size=(5, 4, cfg.emb_dim)).astype(np.float32)
  mask = np.arange(4)[None, :] < lengths[:, None]
  table[~mask] = 7.0  # what a padded slot holds must not matter
  max_length = 7
  settings = _settings(
    [7, 3, 7, 7, 0], [0.0, 0.0, 1.5, 0.8, 0.0], [1.0, 1.0, 0.9, 1.0, 1.0], [0, 0, 11, 12, 0]
  )
  run = jax.jit(
    lambda p, x, s, q, m: decoding.decode_by_row(
      model, {"params": p}, x, s, max_length=max_length, prompts=q, prompt_mask=m, top_logprobs=3
    )
  )
  out = jax.device_get(run(params, inputs, settings, table, mask))
  # Greedy rows: what `decode` gives for the unpadded prompt alone, cut at max_tokens.
  for i in (0, 1):
    alone = decoding.decode(
      model,
      {"params": params},
      inputs[i : i + 1],
      max_length=max_length,
      prompts=table[i : i + 1, : lengths[i]],
    )
    want = np.asarray(alone.tokens[0, 0])[: settings.max_tokens[i]]
    np.testing.assert_array_equal(out.tokens[i, : len(want)], want)
    n = int(out.length[i])
    assert n == min(settings.max_tokens[i], list(want).index(1) + 1 if 1 in want else len(want))
    np.testing.assert_array_equal(out.tokens[i, n:], 0)
    if n == max_length or 1 in want:  # the whole sequence: its log-likelihood is decode's
      np.testing.assert_allclose(out.token_logprobs[i].sum(), alone.log_likelihood[0, 0], atol=1e-4)
    np.testing.assert_array_equal(out.top_ids[i, :n, 0], out.tokens[i, :n])  # greedy: the top token
  assert out.length[1] <= 3
  assert out.length[4] == 0 and not out.tokens[4].any()  # a filler row generates nothing
  # Every row alone (batch of one, its own settings) gives the same tokens.
  for i in range(5):
    one = jax.tree_util.tree_map(lambda a, i=i: a[i : i + 1], settings)
    alone = jax.device_get(
      run(
        params,
        inputs[i : i + 1],
        one,
        table[i : i + 1, : lengths[i]],
        mask[i : i + 1, : lengths[i]],
      )
    )
    np.testing.assert_array_equal(alone.tokens[0], out.tokens[i], err_msg=f"row {i}")
    np.testing.assert_allclose(alone.token_logprobs[0], out.token_logprobs[i], atol=1e-5)
  # The seed decides a sampled row: another seed, other tokens (over a few tries).
  other = [
    jax.device_get(run(params, inputs, settings._replace(seed=settings.seed + s), table, mask))
    for s in (1, 2, 3)
  ]
  assert any((o.tokens[2] != out.tokens[2]).any() for o in other)
  assert all((o.tokens[0] == out.tokens[0]).all() for o in other)  # greedy rows ignore seeds


def test_decode_by_row_top_p_near_zero_is_greedy():
  cfg = hf_reference.TINY
  params = hf_reference.params_of(_hf_with_eos_bias(cfg, eos_boost=1.0), cfg)
  model = t5.Transformer(cfg)
  inputs = hf_reference.random_tokens(np.random.default_rng(4), 3, 6, cfg.vocab_size)
  run = lambda s: decoding.decode_by_row(model, {"params": params}, inputs, s, max_length=6)
  greedy = run(_settings([6] * 3, [0.0] * 3, [1.0] * 3, [0, 1, 2]))
  nucleus = run(_settings([6] * 3, [2.0] * 3, [1e-6] * 3, [0, 1, 2]))
  hot = run(_settings([6] * 3, [2.0] * 3, [1.0] * 3, [0, 1, 2]))
  np.testing.assert_array_equal(nucleus.tokens, greedy.tokens)
  assert (hot.tokens != greedy.tokens).any()  # the check can tell sampling from greedy
