"""transformers' T5 as the numerical reference: same random weights on both sides."""

import numpy as np
import torch
import transformers

from prompt_tuning.checkpoints import huggingface
from prompt_tuning.models import t5

TINY = t5.T5Config(
  vocab_size=64,
  emb_dim=32,
  num_heads=4,
  num_encoder_layers=2,
  num_decoder_layers=2,
  head_dim=8,
  mlp_dim=48,
  relative_attention_num_buckets=8,
  relative_attention_max_distance=20,
  dropout_rate=0.0,
  dtype="float32",
)
# configs/test/tiny.gin's architecture (tests/test_configs.py checks that the file builds it).
TINY_GIN = t5.T5Config(
  vocab_size=32128,
  emb_dim=16,
  num_heads=2,
  num_encoder_layers=2,
  num_decoder_layers=2,
  head_dim=8,
  mlp_dim=32,
  dropout_rate=0.0,
  dtype="float32",
)
# The small size's widths (and vocabulary) with 2 layers per stack.
SMALL_2L = t5.T5Config(
  vocab_size=32128,
  emb_dim=512,
  num_heads=6,
  num_encoder_layers=2,
  num_decoder_layers=2,
  head_dim=64,
  mlp_dim=1024,
  dropout_rate=0.0,
  dtype="float32",
)


def hf_config(cfg: t5.T5Config) -> transformers.T5Config:
  return transformers.T5Config(
    vocab_size=cfg.vocab_size,
    d_model=cfg.emb_dim,
    d_kv=cfg.head_dim,
    d_ff=cfg.mlp_dim,
    num_layers=cfg.num_encoder_layers,
    num_decoder_layers=cfg.num_decoder_layers,
    num_heads=cfg.num_heads,
    relative_attention_num_buckets=cfg.relative_attention_num_buckets,
    relative_attention_max_distance=cfg.relative_attention_max_distance,
    dropout_rate=0.0,
    layer_norm_epsilon=cfg.layer_norm_epsilon,
    feed_forward_proj="gated-gelu",
    tie_word_embeddings=False,
    is_encoder_decoder=True,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
  )


def random_hf_model(cfg: t5.T5Config, seed: int = 0) -> transformers.T5ForConditionalGeneration:
  """A randomly initialized HF T5, drawn the way T5.1.1 is, with an untied `lm_head`.

  transformers 5 always ties T5's `lm_head` to `shared` in memory (its T5Config
  forces `tie_word_embeddings=True`), which would make the embedding and the
  logits tables equal, so a model computing logits from the embedding would
  pass every comparison. Here the head gets its own tensor, drawn as T5.1.1
  draws its logits kernel (fan-in variance scaling, std 1/sqrt(d_model), so
  logits have a real checkpoint's magnitude: transformers' std 1 would give
  logits near +-300 at width 512, where float32 rounding of the final matmul
  alone exceeds 1e-4), and the config says `tie_word_embeddings: false` so that
  `save_pretrained` stores it and `from_pretrained` keeps it. Layer-norm scales
  are perturbed away from 1 so that they are tested too.
  """
  torch.manual_seed(seed)
  model = transformers.T5ForConditionalGeneration(hf_config(cfg)).eval()
  with torch.no_grad():
    model.lm_head.weight = torch.nn.Parameter(
      torch.empty_like(model.shared.weight).normal_(0.0, cfg.emb_dim**-0.5)
    )
    model.config.tie_word_embeddings = False
    for name, p in model.named_parameters():
      if "layer_norm" in name:
        p.mul_(1 + 0.2 * torch.randn_like(p))
  return model


def params_of(model: transformers.T5ForConditionalGeneration, cfg: t5.T5Config):
  state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  return huggingface.params_from_hf(state, cfg.num_encoder_layers, cfg.num_decoder_layers)


def run_hf(
  model, inputs_embeds: np.ndarray, attention_mask: np.ndarray, decoder_input_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """(encoder last hidden state, logits) of HF T5 given embedded inputs."""
  with torch.no_grad():
    out = model(
      inputs_embeds=torch.from_numpy(np.asarray(inputs_embeds, np.float32)),
      attention_mask=torch.from_numpy(np.asarray(attention_mask, np.int64)),
      decoder_input_ids=torch.from_numpy(np.asarray(decoder_input_ids, np.int64)),
    )
  return out.encoder_last_hidden_state.numpy(), out.logits.numpy()


def random_tokens(
  rng: np.random.Generator, batch: int, length: int, vocab: int, min_length: int = 1
) -> np.ndarray:
  """Right-padded token ids in [2, vocab) with random lengths in [min_length, length]."""
  tokens = rng.integers(2, vocab, size=(batch, length))
  lengths = rng.integers(min_length, length + 1, size=batch)
  lengths[0] = length  # one full row
  tokens[np.arange(length)[None, :] >= lengths[:, None]] = 0
  return tokens.astype(np.int32)


def assert_untied(model: transformers.T5ForConditionalGeneration) -> None:
  """The reference's logits table is not its embedding (in memory, not only by name)."""
  head, shared = model.lm_head.weight, model.shared.weight
  assert head.data_ptr() != shared.data_ptr()
  assert not torch.equal(head, shared)
