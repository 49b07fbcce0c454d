"""Model FLOPs of a T5.1.1 step, counted by hand from its shapes (for MFU).

XLA's cost analysis cannot give them: it counts a scanned layer once, and on a GPU
it counted under 1% of a step. Only matrix products are counted (everything else is
a few percent at these widths), and rematerialized recomputation is not: model FLOPs,
not hardware FLOPs.
"""

from prompt_tuning.models import t5


def matmul_flops(
  config: t5.T5Config, batch_size: int, input_length: int, prompt_length: int, target_length: int
) -> tuple[int, int]:
  """The forward's matrix-product FLOPs: `(weights, attention)`.

  `weights` are the products with a weight matrix (projections, the gated MLP, the
  logits); `attention` those of two activations (the scores and the weighted sum). The
  prompt's positions count as encoder inputs.
  """
  d, ff, vocab = config.emb_dim, config.mlp_dim, config.vocab_size
  inner = config.num_heads * config.head_dim
  enc, dec = config.num_encoder_layers, config.num_decoder_layers
  enc_len = input_length + prompt_length
  te, td = batch_size * enc_len, batch_size * target_length  # tokens in each stack
  projections = 2 * d * 4 * inner  # q, k, v and out, per token
  mlp = 2 * 3 * d * ff  # two gated inputs and the output, per token
  weights = (
    enc * te * (projections + mlp)
    # the decoder: self-attention, the cross-attention's q and out on its tokens and its
    # k and v on the encoder's, and the MLP
    + dec * (td * (projections + 2 * d * 2 * inner + mlp) + te * 2 * d * 2 * inner)
    + td * 2 * d * vocab  # the logits
  )
  per_pair = 2 * 2 * batch_size * inner  # scores and weighted sum, per (query, key) pair
  attention = per_pair * (enc * enc_len**2 + dec * target_length**2 + dec * target_length * enc_len)
  return weights, attention


def prompt_step_flops(
  config: t5.T5Config, batch_size: int, input_length: int, prompt_length: int, target_length: int
) -> int:
  """One prompt-tuning step: the forward and the backward to the prompt.

  The backward of a product with a frozen weight needs one product (the input's
  gradient, no weight gradient); that of two activations needs two (both inputs'
  gradients). So a step is 2x the weight products plus 3x the attention products.
  """
  weights, attention = matmul_flops(config, batch_size, input_length, prompt_length, target_length)
  return 2 * weights + 3 * attention
