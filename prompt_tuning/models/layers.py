"""T5.1.1 building blocks: RMS layer norm, dense, token embedding, gated-GELU MLP.

Parameters carry logical axis names (t5x conventions) through
`nn.with_logical_partitioning`; a partitioner maps them to mesh axes. Kernels are
stored 2-D exactly as in t5x/flaxformer T5.1.1 checkpoints, so attention kernels
are `[embed, joined_kv]` rather than `[embed, heads, kv]`.
"""

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

Array = jax.Array
DType = Any
Initializer = Callable[[Array, Sequence[int], DType], Array]

# t5x's defaults for T5.1.1.
default_kernel_init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
default_embed_init = nn.initializers.normal(stddev=1.0)


def constrain(x: Array, axes: Sequence[str]) -> Array:
  """Names the logical axes of an activation (a no-op without a mesh)."""
  return nn.with_logical_constraint(x, tuple(axes))


class Dense(nn.Module):
  """A bias-free linear map over the last axis with a 2-D `[in, out]` kernel.

  Attributes:
    features: output width.
    kernel_axes: logical names of the kernel's two axes.
    dtype: the activation (compute) dtype.
    param_dtype: the stored parameter dtype.
    kernel_init: initializer of the kernel.
  """

  features: int
  kernel_axes: tuple[str, str]
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32
  kernel_init: Initializer = default_kernel_init

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """[..., in] -> [..., features]."""
    kernel = self.param(
      "kernel",
      nn.with_logical_partitioning(self.kernel_init, self.kernel_axes),
      (x.shape[-1], self.features),
      self.param_dtype,
    )
    x = jnp.asarray(x, self.dtype)
    kernel = jnp.asarray(kernel, self.dtype)
    return lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))


class Embed(nn.Module):
  """The shared token embedding table `embedding: [vocab, embed]`."""

  num_embeddings: int
  features: int
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32
  embedding_init: Initializer = default_embed_init

  def setup(self):
    self.embedding = self.param(
      "embedding",
      nn.with_logical_partitioning(self.embedding_init, ("vocab", "embed")),
      (self.num_embeddings, self.features),
      self.param_dtype,
    )

  def __call__(self, token_ids: Array) -> Array:
    """[batch, length] int -> [batch, length, embed]."""
    if not jnp.issubdtype(token_ids.dtype, jnp.integer):
      raise ValueError(f"token ids must be integers, got dtype {token_ids.dtype}")
    table = jnp.asarray(self.embedding, self.dtype)
    return jnp.take(table, token_ids, axis=0)


class LayerNorm(nn.Module):
  """T5's RMS layer norm: no mean subtraction, no bias, statistics in float32."""

  epsilon: float = 1e-6
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """[..., embed] -> [..., embed]."""
    x = jnp.asarray(x, jnp.float32)
    variance = jnp.mean(jnp.square(x), axis=-1, keepdims=True)
    y = jnp.asarray(x * lax.rsqrt(variance + self.epsilon), self.dtype)
    scale = self.param(
      "scale",
      nn.with_logical_partitioning(nn.initializers.ones_init(), ("embed",)),
      (x.shape[-1],),
      self.param_dtype,
    )
    return y * jnp.asarray(scale, self.dtype)


class MlpBlock(nn.Module):
  """Gated-GELU feed-forward: wo(gelu(wi_0 x) * wi_1 x), GELU with tanh."""

  mlp_dim: int
  dropout_rate: float = 0.0
  deterministic: bool = True
  dtype: DType = jnp.float32
  param_dtype: DType = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    """[batch, length, embed] -> [batch, length, embed]."""
    dense = lambda n, axes, name: Dense(
      n, axes, dtype=self.dtype, param_dtype=self.param_dtype, name=name
    )
    gate = nn.gelu(dense(self.mlp_dim, ("embed", "mlp"), "wi_0")(x), approximate=True)
    linear = dense(self.mlp_dim, ("embed", "mlp"), "wi_1")(x)
    h = constrain(gate * linear, ("batch", "length", "mlp"))
    h = nn.Dropout(self.dropout_rate)(h, deterministic=self.deterministic)
    return dense(x.shape[-1], ("mlp", "embed"), "wo")(h)
