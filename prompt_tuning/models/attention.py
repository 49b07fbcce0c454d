"""Multi-head attention with T5 relative position biases, masks and a decode cache.

T5 puts no 1/sqrt(head_dim) on the attention logits; the query kernel's
initializer is scaled instead (as in t5x), so checkpoints carry it implicitly.
"""

import math
from typing import Optional

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from prompt_tuning.models import layers

Array = jax.Array
DType = layers.DType

# Added to the logits of masked positions. exp(NEG_INF - max) is exactly 0 in
# float32, and unlike -inf it keeps a fully masked row finite.
NEG_INF = -1e10


def relative_position_bucket(
  relative_position: Array,
  bidirectional: bool = True,
  num_buckets: int = 32,
  max_distance: int = 128,
) -> Array:
  """Maps `memory_position - query_position` to T5's log-spaced buckets.

  Half the buckets are exact offsets, the rest grow logarithmically up to
  `max_distance`; beyond it everything shares the last bucket. Bidirectional
  buckets split the range between keys before and after the query.

  Args:
    relative_position: int array of `key_position - query_position`.
    bidirectional: whether keys after the query get their own buckets.
    num_buckets: number of buckets.
    max_distance: distance at and beyond which the last bucket is used.

  Returns:
    int32 array of bucket ids, same shape as `relative_position`.
  """
  relative_position = jnp.asarray(relative_position, jnp.int32)
  buckets = jnp.zeros_like(relative_position)
  if bidirectional:
    num_buckets //= 2
    buckets += (relative_position > 0).astype(jnp.int32) * num_buckets
    distance = jnp.abs(relative_position)
  else:
    distance = -jnp.minimum(relative_position, 0)
  max_exact = num_buckets // 2
  is_small = distance < max_exact
  # Same float32 operations in the same order as Mesh TensorFlow's T5 (and
  # transformers), so bucket boundaries fall where the released checkpoints saw
  # them. (t5x adds an epsilon inside the log, which moves some boundaries.)
  log_ratio = jnp.log(jnp.maximum(distance, 1).astype(jnp.float32) / max_exact)
  if_large = max_exact + (
    log_ratio / math.log(max_distance / max_exact) * (num_buckets - max_exact)
  ).astype(jnp.int32)
  if_large = jnp.minimum(if_large, num_buckets - 1)
  return buckets + jnp.where(is_small, distance, if_large)


class RelativePositionBiases(nn.Module):
  """Per-head learned biases of relative-position buckets, shared by a stack.

  The table is `rel_embedding: [heads, relpos_buckets]` as in t5x checkpoints.
  """

  num_buckets: int
  max_distance: int
  num_heads: int
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32
  embedding_init: layers.Initializer = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")

  @nn.compact
  def __call__(self, query_positions: Array, key_positions: Array, bidirectional: bool) -> Array:
    """Biases for every (query, key) pair.

    Args:
      query_positions: int `[q]` absolute positions (may be traced), or
        `[batch, q]` for positions of each row's own.
      key_positions: int `[k]` (or `[batch, k]`) absolute positions.
      bidirectional: encoder (True) or causal decoder (False) bucketing.

    Returns:
      `[1, heads, q, k]` biases in `dtype` (`[batch, heads, q, k]` for
      positions by row).
    """
    table = self.param(
      "rel_embedding",
      nn.with_logical_partitioning(self.embedding_init, ("heads", "relpos_buckets")),
      (self.num_heads, self.num_buckets),
      self.param_dtype,
    )
    relative = key_positions[..., None, :] - query_positions[..., :, None]
    buckets = relative_position_bucket(relative, bidirectional, self.num_buckets, self.max_distance)
    bias = jnp.take(jnp.asarray(table, self.dtype), buckets, axis=1)  # [h, (batch,) q, k]
    return bias[None] if bias.ndim == 3 else jnp.transpose(bias, (1, 0, 2, 3))


def mask_to_bias(mask: Array, dtype: DType = jnp.float32) -> Array:
  """Turns a boolean mask (True = attend) into an additive logit bias."""
  return jnp.where(mask, 0.0, NEG_INF).astype(dtype)


def key_padding_mask(key_mask: Array) -> Array:
  """[batch, k] -> [batch, 1, 1, k]: every query may attend to real keys."""
  return key_mask[:, None, None, :].astype(bool)


def causal_mask(query_positions: Array, key_positions: Array) -> Array:
  """[q], [k] -> [1, 1, q, k]: a query attends to itself and earlier keys."""
  return (key_positions[None, :] <= query_positions[:, None])[None, None]


class MultiHeadAttention(nn.Module):
  """T5 attention: `query, key, value: [embed, joined_kv]`, `out: [joined_kv, embed]`.

  In decode mode the projected keys and values live in the `cache` collection:
  self-attention writes each new step at `decode_index` into a
  `[batch, max_decode_length, heads, kv]` buffer; cross-attention
  (`cross_cache=True`) projects the encoder output once, at the first step, and
  reuses it.

  Attributes:
    num_heads: number of heads.
    head_dim: width of each head.
    dropout_rate: dropout on the attention weights.
    deterministic: disables dropout.
    dtype: activation dtype.
    param_dtype: parameter dtype.
    kernel_init: initializer of key, value and out kernels; the query's is
      divided by sqrt(head_dim).
  """

  num_heads: int
  head_dim: int
  dropout_rate: float = 0.0
  deterministic: bool = True
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32
  kernel_init: layers.Initializer = nn.initializers.variance_scaling(1.0, "fan_in", "normal")

  def _project(self, x: Array, name: str, init: layers.Initializer) -> Array:
    y = layers.Dense(
      self.num_heads * self.head_dim,
      ("embed", "joined_kv"),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      kernel_init=init,
      name=name,
    )(x)
    y = y.reshape(y.shape[:-1] + (self.num_heads, self.head_dim))
    return layers.constrain(y, ("batch", "length", "heads", "kv"))

  @nn.compact
  def __call__(
    self,
    inputs_q: Array,
    inputs_kv: Array,
    bias: Optional[Array] = None,
    *,
    decode: bool = False,
    decode_index: Optional[Array] = None,
    max_decode_length: Optional[int] = None,
    cross_cache: bool = False,
    prefix: Optional[tuple[Array, Array]] = None,
  ) -> Array:
    """Attends from `inputs_q: [batch, q, embed]` to `inputs_kv: [batch, k, embed]`.

    Args:
      inputs_q: queries' inputs.
      inputs_kv: keys' and values' inputs (ignored by a cross-attention whose
        cache already holds them).
      bias: additive logit bias broadcastable to `[batch, heads, q, k]`: masks
        and position biases. In self-attention decode mode `k` is
        `max_decode_length`.
      decode: use and update the `cache` collection.
      decode_index: position of the first query in decode mode (self-attention).
      max_decode_length: cache length, needed when the cache is created.
      cross_cache: this is cross-attention; cache the projected encoder output.
      prefix: optional keys and values `[batch or 1, P, heads, head_dim]` put
        before the projected ones as they are (prefix tuning): `bias` then
        covers `P + k` keys, the prefix's first.

    Returns:
      `[batch, q, embed]`.
    """
    depth_scale = np.sqrt(self.head_dim).astype(np.float32)
    # Divided, then cast back: a numpy float32 scalar would promote a bfloat16 kernel.
    query_init = lambda key, shape, dtype: (
      self.kernel_init(key, shape, dtype) / depth_scale
    ).astype(dtype)
    query = self._project(inputs_q, "query", query_init)

    if decode and cross_cache:
      created = not self.has_variable("cache", "cached_key")
      shape = inputs_kv.shape[:2] + (self.num_heads, self.head_dim)
      cached_key = self.variable("cache", "cached_key", jnp.zeros, shape, self.dtype)
      cached_value = self.variable("cache", "cached_value", jnp.zeros, shape, self.dtype)
      if created:
        cached_key.value = self._project(inputs_kv, "key", self.kernel_init)
        cached_value.value = self._project(inputs_kv, "value", self.kernel_init)
      key, value = cached_key.value, cached_value.value
    else:
      key = self._project(inputs_kv, "key", self.kernel_init)
      value = self._project(inputs_kv, "value", self.kernel_init)
      if decode:
        if max_decode_length is None or decode_index is None:
          raise ValueError("self-attention decode mode needs decode_index and max_decode_length")
        shape = (key.shape[0], max_decode_length, self.num_heads, self.head_dim)
        cached_key = self.variable("cache", "cached_key", jnp.zeros, shape, self.dtype)
        cached_value = self.variable("cache", "cached_value", jnp.zeros, shape, self.dtype)
        start = (0, decode_index, 0, 0)
        key = lax.dynamic_update_slice(cached_key.value, key.astype(self.dtype), start)
        value = lax.dynamic_update_slice(cached_value.value, value.astype(self.dtype), start)
        cached_key.value, cached_value.value = key, value

    if prefix is not None:
      batch = (key.shape[0],)
      prefix_key, prefix_value = (
        jnp.broadcast_to(p.astype(key.dtype), batch + p.shape[1:]) for p in prefix
      )
      key = jnp.concatenate([prefix_key, key], axis=1)
      value = jnp.concatenate([prefix_value, value], axis=1)
    logits = jnp.einsum("bqhd,bkhd->bhqk", query, key).astype(jnp.float32)
    if bias is not None:
      logits = logits + bias.astype(jnp.float32)
    weights = jax.nn.softmax(logits, axis=-1).astype(self.dtype)
    weights = nn.Dropout(self.dropout_rate)(weights, deterministic=self.deterministic)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, value)
    out = out.reshape(out.shape[:2] + (self.num_heads * self.head_dim,))
    out = layers.constrain(out, ("batch", "length", "joined_kv"))
    return layers.Dense(
      inputs_q.shape[-1],
      ("joined_kv", "embed"),
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      kernel_init=self.kernel_init,
      name="out",
    )(out)
