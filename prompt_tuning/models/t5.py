"""The T5.1.1 / mT5 encoder-decoder with an optional soft prompt on the encoder.

Parameter names and shapes equal those of t5x/flaxformer T5.1.1 checkpoints
(`token_embedder/embedding`, `encoder/layers_0/attention/query/kernel`, ...), so
a checkpoint maps onto this module without a renaming table. With
`scan_layers=True` the layers of a stack are one scanned module, `layers`, whose
parameters gain a leading `layers` axis; `stack_layers` / `unstack_layers`
convert between the two forms.
"""

import dataclasses
import re
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from prompt_tuning.models import attention
from prompt_tuning.models import layers
from prompt_tuning.models import prompts as prompts_lib

Array = jax.Array

REMAT_POLICIES = {
  "none": None,
  "full": jax.checkpoint_policies.nothing_saveable,
  "minimal": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Architecture of a T5.1.1-style encoder-decoder.

  Attributes:
    vocab_size: rows of the embedding and logits tables (32128 for T5.1.1,
      250112 for mT5).
    emb_dim: model width.
    num_heads: attention heads.
    num_encoder_layers: encoder depth.
    num_decoder_layers: decoder depth.
    head_dim: width of one head.
    mlp_dim: hidden width of the gated-GELU MLP.
    relative_attention_num_buckets: relative position buckets.
    relative_attention_max_distance: distance mapped to the last bucket.
    dropout_rate: dropout everywhere T5 applies it.
    dtype: activation dtype ('bfloat16' is the T5.1.1 default).
    param_dtype: dtype of newly initialized parameters.
    layer_norm_epsilon: RMS norm epsilon.
    scan_layers: scan over each stack's layers (one compiled layer; parameters
      stacked under `layers`).
    remat_policy: rematerialization of each layer: 'none', 'full' (recompute
      everything) or 'minimal' (keep matmul outputs).
  """

  vocab_size: int = 32128
  emb_dim: int = 512
  num_heads: int = 6
  num_encoder_layers: int = 8
  num_decoder_layers: int = 8
  head_dim: int = 64
  mlp_dim: int = 1024
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  dropout_rate: float = 0.1
  dtype: Any = "bfloat16"
  param_dtype: Any = "float32"
  layer_norm_epsilon: float = 1e-6
  scan_layers: bool = False
  remat_policy: str = "none"

  def __post_init__(self):
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(
        f"unknown remat_policy {self.remat_policy!r}; choose one of {sorted(REMAT_POLICIES)}"
      )

  @property
  def activation_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.dtype)

  @property
  def parameter_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.param_dtype)


def _norm(cfg: T5Config, name: str) -> layers.LayerNorm:
  return layers.LayerNorm(
    cfg.layer_norm_epsilon, cfg.activation_dtype, cfg.parameter_dtype, name=name
  )


def _attention(cfg: T5Config, deterministic: bool, name: str) -> attention.MultiHeadAttention:
  return attention.MultiHeadAttention(
    cfg.num_heads,
    cfg.head_dim,
    cfg.dropout_rate,
    deterministic,
    cfg.activation_dtype,
    cfg.parameter_dtype,
    name=name,
  )


def _relpos(cfg: T5Config) -> attention.RelativePositionBiases:
  return attention.RelativePositionBiases(
    cfg.relative_attention_num_buckets,
    cfg.relative_attention_max_distance,
    cfg.num_heads,
    cfg.activation_dtype,
    cfg.parameter_dtype,
    name="relpos_bias",
  )


def _join_layer_prompt(x: Array, prompt: Array, active: Array, mode: str) -> Array:
  """Layer input `x` with its first P positions (the prompt's) replaced by, or plus,
  this layer's `prompt: [batch, P, embed]` where `active` (a traced bool) holds."""
  length = prompt.shape[1]
  head = x[:, :length]
  new = prompt.astype(x.dtype) if mode == "replace" else head + prompt.astype(x.dtype)
  return jnp.concatenate([jnp.where(active, new, head), x[:, length:]], axis=1)


class EncoderLayer(nn.Module):
  """Pre-norm self-attention and MLP blocks, each with dropout and a residual.

  Attributes:
    prompt_mode: how a per-layer prompt joins this layer's input ('replace' or
      'add'; see `prompts.PerLayerPrompt`).
  """

  config: T5Config
  deterministic: bool = True
  scanned: bool = False
  prompt_mode: str = "replace"

  @nn.compact
  def __call__(self, x: Array, bias: Array, own: Optional[dict[str, Array]] = None):
    """`x: [batch, length, embed]`, `bias: [batch, heads, length, length]`-broadcastable.

    `own` holds this layer's own inputs, if any: `prompt` `[batch, P, embed]` and
    `active` (a bool scalar) for a per-layer prompt; `prefix` `[2, batch or 1, P,
    heads, head_dim]`, keys and values before the self-attention's own (P-tuning v2),
    for which `bias` covers `P + length` keys.
    """
    cfg = self.config
    own = own or {}
    if "prompt" in own:
      x = _join_layer_prompt(x, own["prompt"], own["active"], self.prompt_mode)
    prefix = own.get("prefix")
    dropout = lambda y: nn.Dropout(cfg.dropout_rate)(y, deterministic=self.deterministic)
    h = _norm(cfg, "pre_attention_layer_norm")(x)
    h = _attention(cfg, self.deterministic, "attention")(
      h, h, bias, prefix=None if prefix is None else (prefix[0], prefix[1])
    )
    x = x + dropout(h)
    h = _norm(cfg, "pre_mlp_layer_norm")(x)
    h = layers.MlpBlock(
      cfg.mlp_dim,
      cfg.dropout_rate,
      self.deterministic,
      cfg.activation_dtype,
      cfg.parameter_dtype,
      name="mlp",
    )(h)
    x = layers.constrain(x + dropout(h), ("batch", "length", "embed"))
    return (x, None) if self.scanned else x


class DecoderLayer(nn.Module):
  """Causal self-attention, cross-attention to the encoder, MLP; all pre-norm."""

  config: T5Config
  deterministic: bool = True
  decode: bool = False
  max_decode_length: Optional[int] = None
  scanned: bool = False

  @nn.compact
  def __call__(
    self,
    x: Array,
    encoded: Array,
    self_bias: Array,
    cross_bias: Array,
    decode_index: Optional[Array] = None,
    own: Optional[dict[str, Array]] = None,
  ):
    """`own`: this layer's own inputs, if any: `prefix`, its `[2, batch or 1, P, heads,
    head_dim]` keys and values put before the self-attention's own (prefix tuning)."""
    cfg = self.config
    prefix = (own or {}).get("prefix")
    dropout = lambda y: nn.Dropout(cfg.dropout_rate)(y, deterministic=self.deterministic)
    h = _norm(cfg, "pre_self_attention_layer_norm")(x)
    h = _attention(cfg, self.deterministic, "self_attention")(
      h,
      h,
      self_bias,
      decode=self.decode,
      decode_index=decode_index,
      max_decode_length=self.max_decode_length,
      prefix=None if prefix is None else (prefix[0], prefix[1]),
    )
    x = x + dropout(h)
    h = _norm(cfg, "pre_cross_attention_layer_norm")(x)
    h = _attention(cfg, self.deterministic, "encoder_decoder_attention")(
      h, encoded, cross_bias, decode=self.decode, cross_cache=True
    )
    x = x + dropout(h)
    h = _norm(cfg, "pre_mlp_layer_norm")(x)
    h = layers.MlpBlock(
      cfg.mlp_dim,
      cfg.dropout_rate,
      self.deterministic,
      cfg.activation_dtype,
      cfg.parameter_dtype,
      name="mlp",
    )(h)
    x = layers.constrain(x + dropout(h), ("batch", "length", "embed"))
    return (x, None) if self.scanned else x


def _run_layers(
  cfg: T5Config,
  layer_cls: type[nn.Module],
  num_layers: int,
  x: Array,
  *args,
  per_layer: Optional[dict[str, Array]] = None,
  **attrs,
) -> Array:
  """Applies `num_layers` layers, as `layers_{i}` or as one scanned `layers`.

  Every layer gets `args`; with `per_layer` (a dict of arrays with leading axis
  `num_layers`), layer i also gets the dict of their `[i]`, after them.
  """
  policy = REMAT_POLICIES[cfg.remat_policy]
  if cfg.remat_policy != "none":
    layer_cls = nn.remat(layer_cls, policy=policy, prevent_cse=not cfg.scan_layers)
  per_layer = per_layer or None
  for name, value in (per_layer or {}).items():
    if value.shape[0] != num_layers:
      raise ValueError(
        f"{value.shape[0]} layers' worth of {name} for a stack of {num_layers} layers"
      )
  if not cfg.scan_layers:
    for i in range(num_layers):
      own = () if per_layer is None else ({k: v[i] for k, v in per_layer.items()},)
      x = layer_cls(cfg, name=f"layers_{i}", **attrs)(x, *args, *own)
    return x
  own = () if per_layer is None else (per_layer,)
  scanned = nn.scan(
    layer_cls,
    variable_axes={"params": 0, "cache": 0},
    split_rngs={"params": True, "dropout": True},
    in_axes=(nn.broadcast,) * len(args) + (0,) * len(own),
    length=num_layers,
    metadata_params={nn.PARTITION_NAME: "layers"},
  )
  x, _ = scanned(cfg, scanned=True, name="layers", **attrs)(x, *args, *own)
  return x


def _layer_first_prefix(cfg: T5Config, prefix: Array) -> tuple[Array, int]:
  """A prefix `[layers, 2, P, heads, head_dim]` (one for every row) or `[layers, 2,
  batch, P, ...]` as the latter (batch 1 for the former), and its P."""
  if prefix.ndim == 5:  # one prefix for every row
    prefix = prefix[:, :, None]
  if prefix.ndim != 6 or prefix.shape[1] != 2 or prefix.shape[-2:] != (cfg.num_heads, cfg.head_dim):
    raise ValueError(
      f"prefix has shape {prefix.shape}; expected [layers, 2, (batch,) P, "
      f"{cfg.num_heads}, {cfg.head_dim}]"
    )
  return prefix, prefix.shape[3]


class Encoder(nn.Module):
  """Embeds the inputs, joins the prompt, and runs the bidirectional stack.

  Attributes:
    config: the architecture.
    shared_embedding: the token embedding.
    prompt: a `prompts.Prompt` joined to the embedded inputs, or a
      `prompts.PerLayerPrompt`, which also joins the input of every later layer.
    prefix: keys and values before every layer's self-attention (P-tuning v2), or None.
  """

  config: T5Config
  shared_embedding: nn.Module
  prompt: Optional[prompts_lib.Prompt] = None
  prefix: Optional[prompts_lib.Prefix] = None

  @nn.compact
  def __call__(
    self,
    input_tokens: Array,
    *,
    enable_dropout: bool = False,
    prompts: Optional[Array] = None,
    prompt_mask: Optional[Array] = None,
    encoded_length: Optional[int] = None,
    prefixes: Optional[Array] = None,
  ) -> tuple[Array, Array]:
    """Encodes `input_tokens: [batch, length]` (0 is padding).

    Args:
      input_tokens: int token ids. With a `prompts.MultiTaskPrompt` the first is each
        row's task sentinel, read and dropped (P + length - 1 positions come out).
      enable_dropout: training mode.
      prompts: optional prompts to use instead of the `prompt` variable:
        `[P, E]`, or `[batch, P, E]` for a different prompt per example
        (ensembles, mixed-task batches); `[layers, P, E]` or `[batch, layers, P,
        E]` for a per-layer prompt.
      prompt_mask: optional `[batch, P]` bool, True at the prompt vectors each
        row really has: prompts of different lengths padded to one `P`. A
        masked vector is never attended to and takes no position, so a row
        encodes exactly as its unpadded prompt would alone (T5's relative
        positions are then computed per row).
      encoded_length: optional static N: every attended position (real
        tokens and prompt vectors) moves first, keeping its position, and only
        the first N are encoded, so a batch of short rows costs what its
        longest row needs. N must hold every row's attended positions.
      prefixes: optional keys and values to use instead of the `prefix`
        variable, `[layers, 2, (batch,) P, heads, head_dim]`, before every
        layer's self-attention keys and values (P-tuning v2). They take positions
        0 to P-1 and everything else follows from P, as a prompt's vectors do.

    Returns:
      `encoded: [batch, P + length, embed]` and `mask: [batch, P + length]`
      (True at real tokens and prompt positions); `[batch, N, ...]` with
      `encoded_length`.
    """
    cfg = self.config
    deterministic = not enable_dropout
    task = None
    if isinstance(self.prompt, prompts_lib.MultiTaskPrompt):  # the first token names the task
      task = self.prompt.task_of(input_tokens[:, 0])
      input_tokens = input_tokens[:, 1:]
    x = self.shared_embedding(input_tokens)
    mask = input_tokens > 0
    if prompts is None and self.prompt is not None:
      prompts = self.prompt()
      if task is not None:
        prompts = prompts[task]  # [tasks, P, E] -> each row's task's
    per_layer = {}
    if prompts is not None and isinstance(self.prompt, prompts_lib.PerLayerPrompt):
      if self.prompt.combiner() is not prompts_lib.prefix_prompt or prompt_mask is not None:
        raise ValueError(
          "a per-layer prompt sits in front of the inputs (combine='prefix'), "
          "unpadded (no prompt_mask)"
        )
      layer_prompts = self.prompt.per_row(prompts, x.shape[0])  # [layers, batch, P, E]
      prompts = layer_prompts[0]  # the first layer's joins the embedded inputs
      per_layer["prompt"] = layer_prompts
      per_layer["active"] = jnp.arange(layer_prompts.shape[0]) > 0
    positions = None
    if prompts is not None:
      combine = self.prompt.combiner() if self.prompt is not None else prompts_lib.prefix_prompt
      prompts = prompts_lib.broadcast_prompt(prompts, x.shape[0])
      if prompt_mask is not None:
        positions, real = prompts_lib.positions_skipping_masked(combine, mask, prompt_mask)
      x, mask = combine(x, mask, prompts)
      if prompt_mask is not None:
        mask = mask & real
    elif prompt_mask is not None:
      raise ValueError("prompt_mask without prompts: pass the prompts it masks")
    if encoded_length is not None:
      if positions is None:
        positions = jnp.broadcast_to(jnp.arange(x.shape[1]), mask.shape)
      # Attended positions first (in order), the rest after: attention sees only
      # the mask and each position's own number, so dropping the tail changes nothing.
      order = jnp.argsort(~mask, axis=1, stable=True)[:, :encoded_length]
      x = jnp.take_along_axis(x, order[..., None], axis=1)
      mask = jnp.take_along_axis(mask, order, axis=1)
      positions = jnp.take_along_axis(positions, order, axis=1)
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    x = layers.constrain(x.astype(cfg.activation_dtype), ("batch", "length", "embed"))
    if positions is None:
      positions = jnp.arange(x.shape[1])
    key_positions, key_mask = positions, mask
    if prefixes is None and self.prefix is not None:
      prefixes = self.prefix()
    if prefixes is not None:
      per_layer["prefix"], length_p = _layer_first_prefix(cfg, prefixes)
      positions = positions + length_p
      first = jnp.broadcast_to(jnp.arange(length_p), positions.shape[:-1] + (length_p,))
      key_positions = jnp.concatenate([first, positions], axis=-1)
      key_mask = jnp.concatenate([jnp.ones(mask.shape[:1] + (length_p,), bool), mask], axis=1)
    bias = _relpos(cfg)(positions, key_positions, bidirectional=True) + attention.mask_to_bias(
      attention.key_padding_mask(key_mask), cfg.activation_dtype
    )
    x = _run_layers(
      cfg,
      EncoderLayer,
      cfg.num_encoder_layers,
      x,
      bias,
      per_layer=per_layer,
      deterministic=deterministic,
      **({"prompt_mode": self.prompt.mode} if "prompt" in per_layer else {}),
    )
    x = _norm(cfg, "encoder_norm")(x)
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    return x, mask


class Decoder(nn.Module):
  """Causal decoder with cross-attention and an untied logits layer, optionally with a
  learned prefix (prefix tuning)."""

  config: T5Config
  shared_embedding: nn.Module
  prefix: Optional[prompts_lib.Prefix] = None

  @nn.compact
  def __call__(
    self,
    encoded: Array,
    encoder_mask: Array,
    decoder_input_tokens: Array,
    *,
    enable_dropout: bool = False,
    decode: bool = False,
    max_decode_length: Optional[int] = None,
    prefixes: Optional[Array] = None,
  ) -> Array:
    """Logits for `decoder_input_tokens: [batch, length]`.

    Args:
      encoded: `[batch, enc_length, embed]` encoder output.
      encoder_mask: `[batch, enc_length]` bool.
      decoder_input_tokens: targets shifted right (0 starts a sequence).
      enable_dropout: training mode.
      decode: incremental mode: the tokens are the next `length` positions
        (usually 1) after those already in the `cache` collection, which the
        first call creates for `max_decode_length` positions.
      max_decode_length: cache size in decode mode.
      prefixes: optional keys and values to use instead of the `prefix`
        variable, put before each layer's self-attention keys and values
        (prefix tuning as PEFT applies it to T5):
        `[layers, 2, P, heads, head_dim]`, or `[layers, 2, batch, P, heads,
        head_dim]` for a prefix per row. Every position sees all P of them;
        they take positions 0 to P-1 and the tokens follow from P, so the
        tokens' biases among themselves are unchanged.

    Returns:
      float32 logits `[batch, length, vocab]`.
    """
    cfg = self.config
    deterministic = not enable_dropout
    x = self.shared_embedding(decoder_input_tokens)
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    x = layers.constrain(x.astype(cfg.activation_dtype), ("batch", "length", "embed"))
    length = x.shape[1]
    decode_index = None
    if decode:
      if max_decode_length is None:
        raise ValueError("decode=True needs max_decode_length (the cache size)")
      position = self.variable("cache", "position", lambda: jnp.zeros((), jnp.int32))
      decode_index = position.value
      position.value = decode_index + length
      query_positions = decode_index + jnp.arange(length)
      key_positions = jnp.arange(max_decode_length)
    else:
      query_positions = key_positions = jnp.arange(length)
    causal = attention.causal_mask(query_positions, key_positions)
    prefix = prefixes
    if prefix is None and self.prefix is not None:
      prefix = self.prefix()
    if prefix is not None:
      prefix, length_p = _layer_first_prefix(cfg, prefix)
      query_positions = query_positions + length_p
      key_positions = jnp.concatenate([jnp.arange(length_p), key_positions + length_p])
      seen = jnp.ones(causal.shape[:3] + (length_p,), bool)  # every query sees the prefix
      causal = jnp.concatenate([seen, causal], axis=-1)
    self_bias = _relpos(cfg)(
      query_positions, key_positions, bidirectional=False
    ) + attention.mask_to_bias(causal, cfg.activation_dtype)
    cross_bias = attention.mask_to_bias(
      attention.key_padding_mask(encoder_mask), cfg.activation_dtype
    )
    x = _run_layers(
      cfg,
      DecoderLayer,
      cfg.num_decoder_layers,
      x,
      encoded,
      self_bias,
      cross_bias,
      decode_index,
      per_layer=None if prefix is None else {"prefix": prefix},
      deterministic=deterministic,
      decode=decode,
      max_decode_length=max_decode_length,
    )
    x = _norm(cfg, "decoder_norm")(x)
    x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    logits = layers.Dense(
      cfg.vocab_size,
      ("embed", "vocab"),
      dtype=jnp.float32,
      param_dtype=cfg.parameter_dtype,
      name="logits_dense",
    )(x)
    return layers.constrain(logits, ("batch", "length", "vocab"))


class Transformer(nn.Module):
  """T5.1.1 encoder-decoder, optionally with a soft prompt.

  Attributes:
    config: the architecture.
    prompt: the soft prompt joined to the embedded encoder inputs (a
      `prompts.Prompt`), or to every encoder layer's input (a
      `prompts.PerLayerPrompt`); None (or length 0) gives the plain model.
    prefix: learned keys and values before each self-attention of the stack
      its `placement` names (prefix tuning, P-tuning v2), or None.
  """

  config: T5Config
  prompt: Optional[prompts_lib.Prompt] = None
  prefix: Optional[prompts_lib.Prefix] = None

  def setup(self):
    cfg = self.config
    if self.prefix is not None:
      if self.prompt is not None:
        raise ValueError("a model trains one method: a prompt or a prefix, not both")
      shape = tuple(self.prefix.length if n is None else n for n in method_shape(self)[1])
      if self.prefix.shape != shape:
        raise ValueError(
          f"the prefix's shape {self.prefix.shape} does not fit this model's "
          f"{self.prefix.placement}: [layers, 2, P, heads, head_dim] = {shape}"
        )
    if self.prompt is not None and self.prompt.embed_dim != cfg.emb_dim:
      raise ValueError(
        f"prompt embed_dim={self.prompt.embed_dim} differs from the model's "
        f"emb_dim={cfg.emb_dim}; set both from EMBED_DIM"
      )
    if isinstance(self.prompt, prompts_lib.PerLayerPrompt) and (
      self.prompt.num_layers != cfg.num_encoder_layers
    ):
      raise ValueError(
        f"a per-layer prompt for {self.prompt.num_layers} layers; this encoder has "
        f"{cfg.num_encoder_layers} (set num_layers from NUM_ENCODER_LAYERS)"
      )
    self.token_embedder = layers.Embed(
      cfg.vocab_size, cfg.emb_dim, cfg.activation_dtype, cfg.parameter_dtype
    )
    # Fresh copies, so the stacks (not this module) own them: the variables' paths
    # are `encoder/prompt/prompt` and `{encoder,decoder}/prefix/...` in the `prompt`
    # collection.
    prompt = self.prompt.clone(parent=None) if self.prompt is not None else None
    prefix = self.prefix.clone(parent=None) if self.prefix is not None else None
    on_encoder = prefix is not None and prefix.placement == "encoder"
    self.encoder = Encoder(cfg, self.token_embedder, prompt, prefix if on_encoder else None)
    self.decoder = Decoder(cfg, self.token_embedder, None if on_encoder else prefix)

  def _prefix_rows(self, prompts: Optional[Array], placement: str) -> Optional[Array]:
    """`prompts` (the method's values by row, see `encode`) as the stack's prefixes, when
    the model's prefix sits in `placement`; else None."""
    if prompts is None or self.prefix is None or self.prefix.placement != placement:
      return None
    if prompts.ndim == 6:  # [batch, layers, 2, P, heads, head_dim] -> layers first
      return jnp.transpose(prompts, (1, 2, 0, 3, 4, 5))
    return prompts

  def _encoder_prompts(self, prompts: Optional[Array]) -> Optional[Array]:
    return None if self.prefix is not None else prompts

  def method_values(self) -> Optional[Array]:
    """What the model's method puts in, from its variables (a prefix's MLP applied), in
    the form `encode`'s `prompts` takes: one row's worth, or None for the plain model; a
    multi-task prompt's are every task's, `[tasks, P, E]` (each task's is a prompt)."""
    if self.prefix is not None:
      return (self.encoder if self.prefix.placement == "encoder" else self.decoder).prefix()
    if self.prompt is not None:
      return self.encoder.prompt()
    return None

  def encode(
    self,
    encoder_input_tokens: Array,
    *,
    enable_dropout: bool = False,
    prompts: Optional[Array] = None,
    prompt_mask: Optional[Array] = None,
    encoded_length: Optional[int] = None,
  ) -> tuple[Array, Array]:
    """See `Encoder.__call__`.

    `prompts` are the model's method's values, to use instead of its variables: for
    a prompt `[(batch,) P, E]`, a per-layer prompt `[(batch,) layers, P, E]`, a prefix
    `[(batch,) layers, 2, P, heads, head_dim]` (a decoder prefix's go to `decode`).
    """
    return self.encoder(
      encoder_input_tokens,
      enable_dropout=enable_dropout,
      prompts=self._encoder_prompts(prompts),
      prompt_mask=prompt_mask,
      encoded_length=encoded_length,
      prefixes=self._prefix_rows(prompts, "encoder"),
    )

  def decode(
    self,
    encoded: Array,
    encoder_mask: Array,
    decoder_input_tokens: Array,
    *,
    enable_dropout: bool = False,
    decode: bool = False,
    max_decode_length: Optional[int] = None,
    prefixes: Optional[Array] = None,
    prompts: Optional[Array] = None,
  ) -> Array:
    """See `Decoder.__call__`; `prompts` as in `encode` (only a decoder prefix's are read)."""
    if prefixes is None:
      prefixes = self._prefix_rows(prompts, "decoder")
    return self.decoder(
      encoded,
      encoder_mask,
      decoder_input_tokens,
      enable_dropout=enable_dropout,
      decode=decode,
      max_decode_length=max_decode_length,
      prefixes=prefixes,
    )

  def __call__(
    self,
    encoder_input_tokens: Array,
    decoder_input_tokens: Array,
    *,
    enable_dropout: bool = False,
    prompts: Optional[Array] = None,
    prompt_mask: Optional[Array] = None,
  ) -> Array:
    """Teacher-forced logits `[batch, target_length, vocab]`."""
    encoded, mask = self.encode(
      encoder_input_tokens,
      enable_dropout=enable_dropout,
      prompts=prompts,
      prompt_mask=prompt_mask,
    )
    return self.decode(
      encoded, mask, decoder_input_tokens, enable_dropout=enable_dropout, prompts=prompts
    )


def init_shapes(model: Transformer) -> dict[str, Any]:
  """The model's variables as `jax.ShapeDtypeStruct`s (boxed with axis names), unallocated."""
  rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
  return jax.eval_shape(
    lambda: model.init(rngs, jnp.ones((1, 1), jnp.int32), jnp.ones((1, 1), jnp.int32))
  )


def parameter_count(tree: Any) -> int:
  """Number of scalars in a (possibly boxed, possibly abstract) variable tree."""
  leaves = jax.tree_util.tree_leaves(nn.meta.unbox(tree))
  return int(sum(np.prod(leaf.shape, dtype=np.int64) for leaf in leaves))


_LAYER = re.compile(r"layers_(\d+)$")


def stack_layers(params: dict[str, Any]) -> dict[str, Any]:
  """`{encoder,decoder}/layers_{i}/...` -> `{encoder,decoder}/layers/...` with a leading axis."""
  out = dict(params)
  for stack in ("encoder", "decoder"):
    if stack not in params:
      continue
    tree = dict(params[stack])
    names = sorted((n for n in tree if _LAYER.match(n)), key=lambda n: int(_LAYER.match(n)[1]))
    if not names:
      continue
    per_layer = [tree.pop(n) for n in names]
    tree["layers"] = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *per_layer)
    out[stack] = tree
  return out


def unstack_layers(params: dict[str, Any]) -> dict[str, Any]:
  """Inverse of `stack_layers`."""
  out = dict(params)
  for stack in ("encoder", "decoder"):
    if stack not in params or "layers" not in params[stack]:
      continue
    tree = dict(params[stack])
    stacked = tree.pop("layers")
    num = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    for i in range(num):
      tree[f"layers_{i}"] = jax.tree_util.tree_map(lambda x, i=i: x[i], stacked)
    out[stack] = tree
  return out


def with_article(noun: str) -> str:
  """`noun` after its indefinite article ('an encoder prefix', 'a prompt'), for messages."""
  return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def method_shape(model: Transformer) -> tuple[str, tuple[Optional[int], ...]]:
  """The model's method by name, and the shape of its values for one row (`encode`'s
  `prompts`), None where the length P goes: ('prompt', (None, E)), ('per-layer prompt',
  (L, None, E)), ('encoder prefix' or 'decoder prefix', (L, 2, None, heads, head_dim)) or
  ('multi-task prompt', (None, E): a row's task's prompt; its inputs lead with the task's
  sentinel, which the encoder drops)."""
  cfg = model.config
  if model.prefix is not None:
    encoder_side = model.prefix.placement == "encoder"
    depth = cfg.num_encoder_layers if encoder_side else cfg.num_decoder_layers
    shape = (depth, 2, None, cfg.num_heads, cfg.head_dim)
    return f"{model.prefix.placement} prefix", shape
  if isinstance(model.prompt, prompts_lib.PerLayerPrompt):
    return "per-layer prompt", (cfg.num_encoder_layers, None, cfg.emb_dim)
  if isinstance(model.prompt, prompts_lib.MultiTaskPrompt):  # each row's value: its task's prompt
    return "multi-task prompt", (None, cfg.emb_dim)
  return "prompt", (None, cfg.emb_dim)  # also what a plain model takes
