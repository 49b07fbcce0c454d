"""Prompts deeper than the input: per-layer prompts (the original codebase's per_layer.py)
against a hand computation of each mode, and P-tuning v2's encoder prefix against the
keys and values a shallow prompt's positions have at each layer (the same encoding, so
placement and positions are both checked); both in one batch with a prompt per row."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prompt_tuning.inference import predictor as predictor_lib
from prompt_tuning.models import attention
from prompt_tuning.models import layers
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from tests.helpers import hf_reference
from tests.helpers import model_init

CFG = dataclasses.replace(hf_reference.TINY, num_encoder_layers=3)
P = 4
RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def _tokens(seed: int, rows: int = 3) -> np.ndarray:
  return hf_reference.random_tokens(np.random.default_rng(seed), rows, 7, CFG.vocab_size)


def _init(model: t5.Transformer) -> dict:
  return model_init.init_variables(model)  # RNGS's params key: the same variables


def _per_layer(mode: str) -> t5.Transformer:
  prompt = prompts.PerLayerPrompt(P, CFG.emb_dim, num_layers=CFG.num_encoder_layers, mode=mode)
  return t5.Transformer(CFG, prompt=prompt)


def _norm(params, x):
  return layers.LayerNorm(CFG.layer_norm_epsilon, jnp.float32).apply({"params": params}, x)


def _hand_encode(params, tokens, layer_prompts, mode):
  """Each layer applied in turn, the prompt positions of its input set by hand."""
  enc = params["encoder"]
  embedded = np.asarray(params["token_embedder"]["embedding"])[tokens]
  batch = tokens.shape[0]
  x = np.concatenate([np.broadcast_to(layer_prompts[0], (batch, P, CFG.emb_dim)), embedded], 1)
  mask = np.concatenate([np.ones((batch, P), bool), tokens > 0], axis=1)
  positions = jnp.arange(x.shape[1])
  bias = t5._relpos(CFG).apply(
    {"params": enc["relpos_bias"]}, positions, positions, bidirectional=True
  ) + attention.mask_to_bias(attention.key_padding_mask(jnp.asarray(mask)))
  for i in range(CFG.num_encoder_layers):
    x = np.array(x)
    if i > 0:
      x[:, :P] = layer_prompts[i] if mode == "replace" else x[:, :P] + layer_prompts[i]
    x = t5.EncoderLayer(CFG).apply({"params": enc[f"layers_{i}"]}, jnp.asarray(x), bias)
  return np.asarray(_norm(enc["encoder_norm"], x)), mask


@pytest.mark.parametrize("mode", ["replace", "add"])
def test_per_layer_prompts_equal_a_hand_computation(mode):
  model = _per_layer(mode)
  variables = _init(model)
  assert variables["prompt"]["encoder"]["prompt"]["prompt"].shape == (3, P, CFG.emb_dim)
  layer_prompts = np.asarray(jax.random.normal(jax.random.key(5), (3, P, CFG.emb_dim)))
  variables = {
    "params": variables["params"],
    "prompt": {"encoder": {"prompt": {"prompt": jnp.asarray(layer_prompts)}}},
  }
  tokens = _tokens(0)
  encoded, mask = model.apply(variables, jnp.asarray(tokens), method=model.encode)
  want, want_mask = _hand_encode(variables["params"], tokens, layer_prompts, mode)
  np.testing.assert_array_equal(np.asarray(mask), want_mask)
  np.testing.assert_allclose(np.asarray(encoded), want, atol=1e-5, rtol=1e-5)
  # The check can tell: the other mode, or a later layer's prompt left out, differs.
  other = "add" if mode == "replace" else "replace"
  assert (
    np.abs(_hand_encode(variables["params"], tokens, layer_prompts, other)[0] - want).max() > 1e-2
  )
  dropped = layer_prompts.copy()
  dropped[2] = 0.0 if mode == "add" else dropped[1]
  assert np.abs(_hand_encode(variables["params"], tokens, dropped, mode)[0] - want).max() > 1e-2
  # Scanned layers give the same, and the prompts by row too.
  scanned = dataclasses.replace(model, config=dataclasses.replace(CFG, scan_layers=True))
  stacked = {**variables, "params": t5.stack_layers(variables["params"])}
  got, _ = scanned.apply(stacked, jnp.asarray(tokens), method=scanned.encode)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=1e-5)
  rows = jnp.broadcast_to(jnp.asarray(layer_prompts), (3,) + layer_prompts.shape)
  got, _ = model.apply(variables, jnp.asarray(tokens), prompts=rows, method=model.encode)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-5, rtol=1e-5)


def test_per_layer_add_with_zero_later_layers_is_a_prompt_and_starts_there():
  model = _per_layer("add")
  variables = _init(model)
  value = variables["prompt"]["encoder"]["prompt"]["prompt"]
  np.testing.assert_array_equal(np.asarray(value[1:]), 0.0)  # 'add' starts from a prompt
  assert np.abs(np.asarray(value[0])).max() > 0
  tokens = jnp.asarray(_tokens(1))
  shallow = t5.Transformer(CFG, prompt=prompts.Prompt(P, CFG.emb_dim))
  plain_vars = {
    "params": variables["params"],
    "prompt": {"encoder": {"prompt": {"prompt": value[0]}}},
  }
  want, _ = shallow.apply(plain_vars, tokens, method=shallow.encode)
  got, _ = model.apply(variables, tokens, method=model.encode)
  np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def _prompt_keys_and_values(params, variables, model, tokens):
  """Each encoder layer's keys and values at the prompt's positions, `[L, 2, B, P, H, D]`."""
  _, state = model.apply(
    variables, tokens, method=model.encode, capture_intermediates=True, mutable=["intermediates"]
  )
  enc, inter = params["encoder"], state["intermediates"]["encoder"]
  prompt = variables["prompt"]["encoder"]["prompt"]["prompt"]
  embedded = params["token_embedder"]["embedding"][tokens]
  x = jnp.concatenate([jnp.broadcast_to(prompt, (len(tokens), P, CFG.emb_dim)), embedded], 1)
  out = []
  for i in range(CFG.num_encoder_layers):
    h = _norm(enc[f"layers_{i}"]["pre_attention_layer_norm"], x[:, :P])
    kv = [
      (h @ enc[f"layers_{i}"]["attention"][name]["kernel"]).reshape(
        len(tokens), P, CFG.num_heads, CFG.head_dim
      )
      for name in ("key", "value")
    ]
    out.append(jnp.stack(kv))
    x = inter[f"layers_{i}"]["__call__"][0]
  return jnp.stack(out)


def test_p_tuning_v2_prefix_equals_the_keys_and_values_a_prompt_has_at_each_layer():
  """An encoder prefix holding, at each layer, the keys and values the prompt's positions
  have there encodes the tokens exactly as the prompt does: P-tuning v2's prefix sits
  before every encoder layer's self-attention at positions 0..P-1."""
  shallow = t5.Transformer(CFG, prompt=prompts.Prompt(P, CFG.emb_dim))
  variables = _init(shallow)
  params = variables["params"]
  tokens = jnp.asarray(_tokens(2))
  want, want_mask = shallow.apply(variables, tokens, method=shallow.encode)
  rows = _prompt_keys_and_values(params, variables, shallow, tokens)  # [L, 2, B, P, H, D]
  deep = t5.Transformer(
    CFG,
    prefix=prompts.Prefix(
      P, CFG.num_encoder_layers, CFG.num_heads, CFG.head_dim, placement="encoder"
    ),
  )
  by_row = jnp.transpose(rows, (2, 0, 1, 3, 4, 5))  # what a bank hands the model
  got, mask = deep.apply({"params": params}, tokens, prompts=by_row, method=deep.encode)
  np.testing.assert_array_equal(np.asarray(mask), np.asarray(want_mask)[:, P:])
  np.testing.assert_allclose(np.asarray(got), np.asarray(want)[:, P:], atol=1e-5, rtol=1e-5)
  # The check can tell: the layers' prefixes shifted by one layer differ.
  shifted = jnp.roll(by_row, 1, axis=1)
  wrong, _ = deep.apply({"params": params}, tokens, prompts=shifted, method=deep.encode)
  assert np.abs(np.asarray(wrong) - np.asarray(want)[:, P:]).max() > 1e-2
  # Scanned layers take each layer's slice as the loop does.
  scanned = dataclasses.replace(deep, config=dataclasses.replace(CFG, scan_layers=True))
  got, _ = scanned.apply(
    {"params": t5.stack_layers(params)}, tokens, prompts=by_row, method=scanned.encode
  )
  np.testing.assert_allclose(np.asarray(got), np.asarray(want)[:, P:], atol=1e-5, rtol=1e-5)


def _bank_model(method: str) -> t5.Transformer:
  if method == "per_layer":
    return _per_layer("replace")
  placement = "encoder" if method == "p_tuning_v2" else "decoder"
  depth = CFG.num_encoder_layers if placement == "encoder" else CFG.num_decoder_layers
  prefix = prompts.Prefix(P, depth, CFG.num_heads, CFG.head_dim, placement=placement)
  return t5.Transformer(CFG, prefix=prefix)


@pytest.mark.parametrize("method", ["per_layer", "p_tuning_v2", "prefix"])
def test_a_bank_of_one_method_decodes_each_row_as_its_prompt_alone(method):
  model = _bank_model(method)
  variables = _init(model)
  method_name, shape = t5.method_shape(model)
  shape = tuple(P if n is None else n for n in shape)
  bank = {
    name: np.asarray(jax.random.normal(jax.random.key(10 + i), shape))
    for i, name in enumerate("abc")
  }
  tokens = _tokens(3, rows=6)
  lengths = {"inputs": tokens.shape[1], "targets": 5}
  mixed = predictor_lib.Predictor(
    model, variables["params"], None, task_feature_lengths=lengths, prompts=bank, batch_size=6
  )
  index = np.array([0, 1, 2, 2, 1, 0], np.int32)
  got = mixed.predict_tokens(tokens, index).tokens
  outputs = set()
  for i in range(3):  # each prompt's rows alone: a batch of that prompt only (one compile)
    want = mixed.predict_tokens(tokens[index == i], np.full(2, i, np.int32)).tokens
    np.testing.assert_array_equal(got[index == i], want)
    outputs.add(want.tobytes())
  assert len(outputs) == 3  # the prompts matter
  # The model's own values are a one-prompt bank.
  own = predictor_lib.own_prompt(model, variables)
  assert list(own) == [predictor_lib.DEFAULT_PROMPT] and own["default"].shape == shape
  # A bank mixing methods is refused in one line naming both.
  with pytest.raises(ValueError, match="one bank holds one method") as error:
    mixed.set_prompts({"a": bank["a"], "shallow": np.zeros((P, CFG.emb_dim), np.float32)})
  assert "\n" not in str(error.value) and "is a prompt, [4, 32]" in str(error.value)
  assert mixed.prompt_names == list("abc")  # and the bank is as it was
  with pytest.raises(
    ValueError, match=f"this model's method is {t5.with_article(method_name)}: give its values"
  ):
    mixed.set_prompts({})


def test_a_file_of_another_method_in_a_bank_is_refused_by_name(tmp_path):
  """Files are checked by what they hold before they are read as the model's method."""
  np.save(tmp_path / "prefix.npy", np.zeros((3, 2, P, CFG.num_heads, CFG.head_dim), np.float32))
  model = _per_layer("add")
  predictor = predictor_lib.Predictor(
    model,
    _init(model)["params"],
    None,
    task_feature_lengths={"inputs": 7, "targets": 2},
    prompts={"a": np.zeros((3, P, CFG.emb_dim), np.float32)},
  )
  with pytest.raises(ValueError) as error:
    predictor.set_prompts({"b": str(tmp_path / "prefix.npy")})
  assert str(error.value).endswith(
    "holds a prefix's values; this model's method is a per-layer prompt "
    "(configs/prompts/per_layer.gin), and one bank holds one method"
  )


def test_per_layer_prompt_refusals():
  tokens = jnp.asarray(_tokens(4))
  suffix = prompts.PerLayerPrompt(P, CFG.emb_dim, num_layers=3, combine="suffix")
  with pytest.raises(ValueError, match="combine='prefix'"):
    _init(t5.Transformer(CFG, prompt=suffix))
  with pytest.raises(ValueError, match="NUM_ENCODER_LAYERS"):
    _init(t5.Transformer(CFG, prompt=prompts.PerLayerPrompt(P, CFG.emb_dim, num_layers=2)))
  with pytest.raises(ValueError, match="choose one of"):
    _init(
      t5.Transformer(CFG, prompt=prompts.PerLayerPrompt(P, CFG.emb_dim, num_layers=3, mode="mul"))
    )
  model = _per_layer("add")
  variables = _init(model)
  with pytest.raises(ValueError, match="no prompt_mask"):
    model.apply(
      variables,
      tokens,
      prompt_mask=jnp.ones((3, P), bool),
      prompts=jnp.zeros((3, 3, P, CFG.emb_dim)),
      method=model.encode,
    )
  prefix = prompts.Prefix(P, 3, CFG.num_heads, CFG.head_dim, placement="encoder", layout="peft")
  with pytest.raises(ValueError, match="decoder prefix"):
    _init(t5.Transformer(CFG, prefix=prefix))


@pytest.mark.parametrize("method", ["per_layer", "p_tuning_v2", "prefix"])
def test_the_server_refuses_deeper_methods_in_one_line_before_reading_the_model(method):
  """The server's table holds prompts before the encoder input: another method's model is
  refused, naming it and what serves it, before the checkpoint is read (none is there)."""
  from prompt_tuning.inference import engine  # pylint: disable=g-import-not-at-top

  config = predictor_lib.PredictorConfig(
    _bank_model(method), None, "/no/checkpoint", {"inputs": 7, "targets": 2}
  )
  with pytest.raises(ValueError) as error:
    engine.build(config, max_prompts=2, max_prompt_length=P)
  name = t5.method_shape(config.model)[0]
  assert str(error.value) == (
    f"this model's method is {t5.with_article(name)}; the server serves prompts before the "
    "encoder input only: "
    "use python -m prompt_tuning.infer, or a configs/prompts/from_file.gin model"
  )
