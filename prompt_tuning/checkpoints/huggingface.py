"""Name map between Hugging Face T5/mT5 state dicts and this project's parameters.

Hugging Face stores linear weights `[out, in]`; t5x stores kernels `[in, out]`,
and the relative-position table `[buckets, heads]` versus `[heads, buckets]`.
Both directions work on numpy arrays keyed by flat names, so no torch is needed
here; this project's names are '/'-joined paths (`encoder/layers_0/mlp/wo/kernel`).
"""

from typing import Any, Mapping

import numpy as np

from prompt_tuning.checkpoints import tree

_ATTENTION = {"q": "query", "k": "key", "v": "value", "o": "out"}


def _layer_names(stack: str, i: int) -> dict[str, str]:
  """HF name -> t5x path for the i-th layer of `stack` ('encoder' or 'decoder')."""
  hf, ours = f"{stack}.block.{i}.layer", f"{stack}/layers_{i}"
  names = {}
  if stack == "encoder":
    blocks = [("0", "SelfAttention", "attention", "pre_attention_layer_norm")]
    mlp = "1"
  else:
    blocks = [
      ("0", "SelfAttention", "self_attention", "pre_self_attention_layer_norm"),
      ("1", "EncDecAttention", "encoder_decoder_attention", "pre_cross_attention_layer_norm"),
    ]
    mlp = "2"
  for index, hf_attention, attention, norm in blocks:
    for short, long in _ATTENTION.items():
      names[f"{hf}.{index}.{hf_attention}.{short}.weight"] = f"{ours}/{attention}/{long}/kernel"
    names[f"{hf}.{index}.layer_norm.weight"] = f"{ours}/{norm}/scale"
  for w in ("wi_0", "wi_1", "wo"):
    names[f"{hf}.{mlp}.DenseReluDense.{w}.weight"] = f"{ours}/mlp/{w}/kernel"
  names[f"{hf}.{mlp}.layer_norm.weight"] = f"{ours}/pre_mlp_layer_norm/scale"
  return names


def name_map(num_encoder_layers: int, num_decoder_layers: int) -> dict[str, str]:
  """Every HF T5 parameter name -> its t5x path (relative-position tables included)."""
  names = {
    "shared.weight": "token_embedder/embedding",
    "encoder.final_layer_norm.weight": "encoder/encoder_norm/scale",
    "decoder.final_layer_norm.weight": "decoder/decoder_norm/scale",
    "lm_head.weight": "decoder/logits_dense/kernel",
    "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": "encoder/relpos_bias/rel_embedding",
    "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": "decoder/relpos_bias/rel_embedding",
  }
  for i in range(num_encoder_layers):
    names.update(_layer_names("encoder", i))
  for i in range(num_decoder_layers):
    names.update(_layer_names("decoder", i))
  return names


def transposed(path: str) -> bool:
  # Kernels and the [buckets, heads] table flip; embeddings and norm scales do not.
  return path.endswith("/kernel") or path.endswith("/rel_embedding")


def params_from_hf(
  state_dict: Mapping[str, Any], num_encoder_layers: int, num_decoder_layers: int
) -> dict[str, Any]:
  """HF state dict (numpy-convertible values) -> nested t5x-named params.

  Raises:
    KeyError: naming the first expected HF weight that is missing.
  """
  flat = {}
  for hf_name, path in name_map(num_encoder_layers, num_decoder_layers).items():
    if hf_name not in state_dict:
      raise KeyError(f"Hugging Face weights lack {hf_name!r} (needed for {path})")
    value = np.asarray(state_dict[hf_name])
    flat[path] = value.T if transposed(path) else value
  return tree.unflatten(flat)


def params_to_hf(
  params: Mapping[str, Any], num_encoder_layers: int, num_decoder_layers: int
) -> dict[str, np.ndarray]:
  """Nested t5x-named params -> HF state dict of numpy arrays (tied embeddings included)."""
  flat = tree.flatten(params)
  state = {}
  for hf_name, path in name_map(num_encoder_layers, num_decoder_layers).items():
    value = np.asarray(flat[path])
    state[hf_name] = np.ascontiguousarray(value.T if transposed(path) else value)
  state["encoder.embed_tokens.weight"] = state["shared.weight"]
  state["decoder.embed_tokens.weight"] = state["shared.weight"]
  return state
