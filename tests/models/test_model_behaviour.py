"""Properties users rely on: P=0 is plain T5, padding is invisible, only the prompt trains,
the decode cache equals teacher forcing, scanned/rematerialized layers change nothing."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from tests.helpers import hf_reference
from tests.helpers import model_init

CFG = hf_reference.TINY


def _tokens(seed=0, batch=3, length=9):
  return hf_reference.random_tokens(np.random.default_rng(seed), batch, length, CFG.vocab_size)


def _decoder_inputs(seed=0, batch=3, length=6):
  rng = np.random.default_rng(seed + 100)
  return np.concatenate(
    [np.zeros((batch, 1)), rng.integers(2, CFG.vocab_size, (batch, length - 1))], axis=1
  ).astype(np.int32)


def _init(model, inputs, decoder_inputs, seed=0):
  return model_init.init_variables(model, inputs, decoder_inputs, seed)


def test_zero_length_prompt_is_exactly_the_plain_model():
  inputs, dec = _tokens(), _decoder_inputs()
  plain = t5.Transformer(CFG)
  params = _init(plain, inputs, dec)["params"]
  empty = t5.Transformer(CFG, prompts.Prompt(0, CFG.emb_dim))
  variables = _init(empty, inputs, dec)
  assert variables["prompt"]["encoder"]["prompt"]["prompt"].shape == (0, CFG.emb_dim)
  got = empty.apply({"params": params, "prompt": variables["prompt"]}, inputs, dec)
  want = plain.apply({"params": params}, inputs, dec)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("combine", ["prefix", "prefix_after_first", "suffix"])
def test_padding_never_changes_a_real_tokens_output(combine):
  model = t5.Transformer(CFG, prompts.Prompt(3, CFG.emb_dim, combine=combine))
  inputs = _tokens(batch=3, length=7)
  dec = _decoder_inputs()
  variables = _init(model, inputs, dec)
  lengths = (inputs > 0).sum(1)
  encoded, _ = model.apply(variables, inputs, method="encode")
  logits = model.apply(variables, inputs, dec)
  # The same examples with 5 more padding positions, and each example alone.
  padded = np.pad(inputs, ((0, 0), (0, 5)))
  encoded_padded, _ = model.apply(variables, padded, method="encode")
  logits_padded = model.apply(variables, padded, dec)
  np.testing.assert_allclose(logits_padded, logits, rtol=0, atol=1e-5)
  for i in range(len(inputs)):
    alone = inputs[i : i + 1, : lengths[i]]
    logits_alone = model.apply(variables, alone, dec[i : i + 1])
    np.testing.assert_allclose(logits_alone[0], logits[i], rtol=0, atol=1e-5)
    encoded_alone, mask_alone = model.apply(variables, alone, method="encode")
    real = np.asarray(mask_alone[0])
    assert real.all()
    # Real positions are the first n+P of the alone example; find them in the batch.
    _, mask = model.apply(variables, inputs[i : i + 1], method="encode")
    np.testing.assert_allclose(encoded[i][np.asarray(mask[0])], encoded_alone[0], rtol=0, atol=1e-5)
    _, mask_padded = model.apply(variables, padded[i : i + 1], method="encode")
    np.testing.assert_allclose(
      encoded_padded[i][np.asarray(mask_padded[0])], encoded_alone[0], rtol=0, atol=1e-5
    )


def test_suffix_and_after_first_layouts():
  embedded = jnp.arange(2 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 1) + 1
  mask = jnp.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
  prompt = -jnp.ones((2, 2, 1))
  x, m = prompts.suffix_prompt(embedded, mask, prompt)
  np.testing.assert_array_equal(x[..., 0], [[1, 2, -1, -1, 3, 4], [5, 6, 7, 8, -1, -1]])
  np.testing.assert_array_equal(m, [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
  x, m = prompts.prefix_prompt_after_first(embedded, mask, prompt)
  np.testing.assert_array_equal(x[..., 0], [[1, -1, -1, 2, 3, 4], [5, -1, -1, 6, 7, 8]])
  np.testing.assert_array_equal(m, [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
  with pytest.raises(ValueError, match="unknown prompt combiner 'middle'"):
    prompts.Prompt(2, 1, combine="middle").combiner()


def test_prompt_lives_in_its_own_collection_and_alone_gets_gradients():
  model = t5.Transformer(CFG, prompts.Prompt(4, CFG.emb_dim))
  inputs, dec = _tokens(), _decoder_inputs()
  variables = _init(model, inputs, dec)
  assert set(variables) == {"params", "prompt"}
  assert "prompt" not in jax.tree_util.keystr(variables["params"])
  targets = np.roll(dec, -1, axis=1)

  def loss(prompt_vars):
    logits = model.apply({"params": variables["params"], "prompt": prompt_vars}, inputs, dec)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), targets[..., None], -1))

  grads = jax.jit(jax.grad(loss))(variables["prompt"])
  g = grads["encoder"]["prompt"]["prompt"]
  assert g.shape == (4, CFG.emb_dim) and float(jnp.abs(g).sum()) > 0


def test_prompt_width_must_match_the_model():
  model = t5.Transformer(CFG, prompts.Prompt(4, CFG.emb_dim + 1))
  with pytest.raises(ValueError, match="prompt embed_dim=33 differs from the model's emb_dim=32"):
    model.init(jax.random.key(0), _tokens(), _decoder_inputs())


def _decode_step_by_step(model, variables, inputs, dec, prompts_arg=None):
  encoded, mask = model.apply(variables, inputs, prompts=prompts_arg, method="encode")
  length = dec.shape[1]
  step = jax.jit(
    lambda v, c, tok: model.apply(
      {**v, "cache": c},
      encoded,
      mask,
      tok,
      decode=True,
      max_decode_length=length,
      method="decode",
      mutable=["cache"],
    )
  )
  logits, state = model.apply(
    variables,
    encoded,
    mask,
    dec[:, :1],
    decode=True,
    max_decode_length=length,
    method="decode",
    mutable=["cache"],
  )
  outs = [logits]
  for t in range(1, length):
    logits, state = step(variables, state["cache"], dec[:, t : t + 1])
    outs.append(logits)
  return np.concatenate(outs, axis=1)


@pytest.mark.parametrize("scan_layers", [False, True], ids=["layers", "scanned"])
def test_cached_single_step_decoding_equals_teacher_forcing(scan_layers):
  cfg = CFG if not scan_layers else t5.T5Config(**{**CFG.__dict__, "scan_layers": True})
  model = t5.Transformer(cfg, prompts.Prompt(3, cfg.emb_dim))
  inputs, dec = _tokens(), _decoder_inputs(length=8)
  variables = _init(model, inputs, dec)
  full = model.apply(variables, inputs, dec)
  stepped = _decode_step_by_step(model, variables, inputs, dec)
  np.testing.assert_allclose(stepped, np.asarray(full), rtol=0, atol=1e-5)


def test_scan_and_remat_give_the_unscanned_outputs_and_gradients():
  inputs, dec = _tokens(), _decoder_inputs()
  plain = t5.Transformer(CFG, prompts.Prompt(3, CFG.emb_dim))
  variables = _init(plain, inputs, dec)
  stacked = {"params": t5.stack_layers(variables["params"]), "prompt": variables["prompt"]}
  for policy in ("none", "full", "minimal"):
    cfg = t5.T5Config(**{**CFG.__dict__, "scan_layers": True, "remat_policy": policy})
    scanned = t5.Transformer(cfg, prompts.Prompt(3, CFG.emb_dim))
    shapes = nn.meta.unbox(t5.init_shapes(scanned))
    assert jax.tree_util.tree_map(lambda x: x.shape, shapes["params"]) == jax.tree_util.tree_map(
      lambda x: x.shape, stacked["params"]
    )
    np.testing.assert_allclose(
      scanned.apply(stacked, inputs, dec), plain.apply(variables, inputs, dec), rtol=0, atol=1e-5
    )
    loss = lambda m, v: (
      lambda p: jnp.sum(m.apply({"params": v["params"], "prompt": p}, inputs, dec) ** 2)
    )
    np.testing.assert_allclose(
      jax.jit(jax.grad(loss(scanned, stacked)))(stacked["prompt"])["encoder"]["prompt"]["prompt"],
      jax.jit(jax.grad(loss(plain, variables)))(variables["prompt"])["encoder"]["prompt"]["prompt"],
      rtol=1e-4,
      atol=1e-4,
    )
  roundtrip = t5.unstack_layers(stacked["params"])
  jax.tree_util.tree_map(np.testing.assert_array_equal, roundtrip, variables["params"])


def test_scanned_parameters_name_the_layers_axis():
  cfg = t5.T5Config(**{**CFG.__dict__, "scan_layers": True})
  specs = nn.get_partition_spec(t5.init_shapes(t5.Transformer(cfg)))
  assert tuple(specs["params"]["encoder"]["layers"]["attention"]["query"]["kernel"]) == (
    "layers",
    "embed",
    "joined_kv",
  )


def test_partition_names_of_parameters():
  model = t5.Transformer(CFG, prompts.Prompt(4, CFG.emb_dim))
  specs = jax.tree_util.tree_map(
    tuple,
    nn.get_partition_spec(t5.init_shapes(model)),
    is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec),
  )
  p = specs["params"]
  assert p["token_embedder"]["embedding"] == ("vocab", "embed")
  assert p["encoder"]["layers_0"]["attention"]["out"]["kernel"] == ("joined_kv", "embed")
  assert p["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"] == ("embed", "mlp")
  assert p["encoder"]["layers_0"]["mlp"]["wo"]["kernel"] == ("mlp", "embed")
  assert p["encoder"]["relpos_bias"]["rel_embedding"] == ("heads", "relpos_buckets")
  assert p["decoder"]["logits_dense"]["kernel"] == ("embed", "vocab")
  assert p["decoder"]["layers_1"]["pre_cross_attention_layer_norm"]["scale"] == ("embed",)
  assert specs["prompt"]["encoder"]["prompt"]["prompt"] == ("prompt", "prompt_embed")


def test_bfloat16_activations_with_float32_parameters():
  cfg = t5.T5Config(**{**CFG.__dict__, "dtype": "bfloat16"})
  model = t5.Transformer(cfg, prompts.Prompt(3, CFG.emb_dim))
  inputs, dec = _tokens(), _decoder_inputs()
  variables = _init(model, inputs, dec)
  assert {x.dtype for x in jax.tree_util.tree_leaves(variables)} == {jnp.dtype("float32")}
  encoded, _ = model.apply(variables, inputs, method="encode")
  logits = model.apply(variables, inputs, dec)
  assert encoded.dtype == jnp.bfloat16 and logits.dtype == jnp.float32
  # Frozen weights held in the activation dtype work as they are.
  half = jax.tree_util.tree_map(lambda x: x.astype(jnp.bfloat16), variables["params"])
  logits_half = model.apply({"params": half, "prompt": variables["prompt"]}, inputs, dec)
  np.testing.assert_allclose(logits_half, logits, atol=0.1)
  f32 = t5.Transformer(
    t5.T5Config(**{**CFG.__dict__, "dtype": "float32"}), prompts.Prompt(3, CFG.emb_dim)
  )
  np.testing.assert_allclose(logits, f32.apply(variables, inputs, dec), atol=0.1)


@pytest.mark.parametrize("scan_layers", [False, True])
def test_param_dtype_is_every_parameters_dtype(scan_layers):
  # The query kernel's init once divided by a numpy float32 scalar, which made it
  # float32 in a bfloat16 model (2.25 GiB more at XXL).
  cfg = t5.T5Config(
    **{**CFG.__dict__, "dtype": "bfloat16", "param_dtype": "bfloat16", "scan_layers": scan_layers}
  )
  variables = _init(
    t5.Transformer(cfg, prompts.Prompt(3, CFG.emb_dim)), _tokens(), _decoder_inputs()
  )
  dtypes = {
    "/".join(str(getattr(k, "key", k)) for k in path): x.dtype
    for path, x in jax.tree_util.tree_leaves_with_path(variables["params"])
  }
  assert {name: d for name, d in dtypes.items() if d != jnp.bfloat16} == {}
  assert any("query" in name for name in dtypes)


def test_dropout_is_active_only_when_enabled():
  cfg = t5.T5Config(**{**CFG.__dict__, "dropout_rate": 0.3})
  model = t5.Transformer(cfg)
  inputs, dec = _tokens(), _decoder_inputs()
  variables = _init(model, inputs, dec)
  a = model.apply(variables, inputs, dec)
  np.testing.assert_array_equal(a, model.apply(variables, inputs, dec))
  b = model.apply(variables, inputs, dec, enable_dropout=True, rngs={"dropout": jax.random.key(1)})
  c = model.apply(variables, inputs, dec, enable_dropout=True, rngs={"dropout": jax.random.key(2)})
  assert not np.allclose(a, b) and not np.allclose(b, c)


@pytest.mark.parametrize("combine", ["prefix", "prefix_after_first", "suffix"])
def test_prompts_of_different_lengths_padded_and_masked_equal_each_alone(combine):
  # What a server's prompt table does: prompts of lengths 1, 3 and 5 padded to
  # 6 in one batch. Each row must give what its own prompt gives unpadded:
  # the padded slots attended to by nothing, and taking no position.
  model = t5.Transformer(CFG, prompts.Prompt(6, CFG.emb_dim, combine=combine))
  inputs, dec = _tokens(batch=3, length=7), _decoder_inputs()
  variables = _init(model, inputs, dec)
  params = {"params": variables["params"]}
  rng = np.random.default_rng(1)
  lengths = [1, 3, 5]
  table = rng.normal(size=(3, 6, CFG.emb_dim)).astype(np.float32)
  mask = np.arange(6)[None, :] < np.asarray(lengths)[:, None]
  table[~mask] = 1e3  # garbage in the padded slots: it must not leak
  logits = model.apply(params, inputs, dec, prompts=table, prompt_mask=mask)
  for i, n in enumerate(lengths):
    alone = model.apply(params, inputs[i : i + 1], dec[i : i + 1], prompts=table[i : i + 1, :n])
    np.testing.assert_allclose(logits[i], alone[0], rtol=0, atol=2e-5)
  # Unmasked, the padding would change the rows (the test can tell).
  unmasked = model.apply(params, inputs, dec, prompts=table)
  assert not np.allclose(unmasked[0], logits[0], atol=1e-3)
  # A full mask is the plain batched call.
  full = model.apply(params, inputs, dec, prompts=table, prompt_mask=np.ones_like(mask))
  np.testing.assert_allclose(full, unmasked, rtol=0, atol=2e-5)


@pytest.mark.parametrize("combine", ["prefix", "suffix"])
def test_encoding_only_the_attended_positions_changes_no_row(combine):
  # A server's batch of short rows: padded prompts and padded inputs moved to the
  # tail and dropped (encoded_length) give each row's logits unchanged.
  model = t5.Transformer(CFG, prompts.Prompt(6, CFG.emb_dim, combine=combine))
  inputs, dec = _tokens(batch=3, length=9), _decoder_inputs()
  inputs[:, 5:] = 0  # every input at most 5 tokens
  variables = _init(model, inputs, dec)
  params = {"params": variables["params"]}
  table = np.random.default_rng(2).normal(size=(3, 6, CFG.emb_dim)).astype(np.float32)
  mask = np.arange(6)[None, :] < np.asarray([2, 6, 4])[:, None]
  full = model.apply(params, inputs, dec, prompts=table, prompt_mask=mask)
  needed = int((mask.sum(1) + (inputs > 0).sum(1)).max())
  encoded, kept = model.apply(
    params, inputs, prompts=table, prompt_mask=mask, encoded_length=needed, method="encode"
  )
  assert encoded.shape[1] == needed < 6 + 9
  assert kept.sum() == mask.sum() + (inputs > 0).sum()
  short = model.apply(params, encoded, kept, dec, method="decode")
  np.testing.assert_allclose(short, full, rtol=0, atol=2e-5)
  # Dropping an attended position would show (the test can tell).
  encoded, kept = model.apply(
    params, inputs, prompts=table, prompt_mask=mask, encoded_length=needed - 1, method="encode"
  )
  assert not np.allclose(model.apply(params, encoded, kept, dec, method="decode"), full, atol=1e-3)
