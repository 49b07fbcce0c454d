"""T5.1.1 shapes with random weights, as the benchmarks and the GPU checks build them.

The sizes are the gin files' (`prompt_tuning/configs/models/sizes/`), plus `tiny` for
trying a script on a CPU. Each side is built the same way everywhere: this project's
model with a prompt, transformers' T5 (its `lm_head` untied and initialized as T5.1.1's
is), PEFT's prompt tuning of it with transformers' Adafactor set as the paper's, and a
random batch. Heavy libraries are imported where used: the GPU machine has no gin or
TensorFlow, and each worker imports only its side.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from prompt_tuning.configs.models import sizes as sizes_table  # noqa: E402

VOCAB_SIZE = 32128
NAMES = ("tiny",) + sizes_table.NAMES
_TINY = {
  "NUM_HEADS": 4,
  "NUM_ENCODER_LAYERS": 2,
  "NUM_DECODER_LAYERS": 2,
  "HEAD_DIM": 16,
  "EMBED_DIM": 64,
  "MLP_DIM": 128,
}


def size(name: str) -> dict[str, int]:
  """The gin macros of a size (`EMBED_DIM`, `NUM_HEADS`, ...)."""
  return dict(_TINY) if name == "tiny" else sizes_table.read(name)


def t5_config(name: str, **overrides):
  """This project's `T5Config` at a size (`dropout_rate`, `dtype`, ... as overrides)."""
  from prompt_tuning.models import t5  # pylint: disable=g-import-not-at-top

  s = size(name)
  return t5.T5Config(
    vocab_size=VOCAB_SIZE,
    emb_dim=s["EMBED_DIM"],
    num_heads=s["NUM_HEADS"],
    num_encoder_layers=s["NUM_ENCODER_LAYERS"],
    num_decoder_layers=s["NUM_DECODER_LAYERS"],
    head_dim=s["HEAD_DIM"],
    mlp_dim=s["MLP_DIM"],
    **overrides,
  )


def model(name: str, prompt_length: int, **overrides):
  """This project's T5 at a size with a randomly initialized prompt (as the paper's)."""
  from prompt_tuning.models import prompt_init, prompts, t5  # pylint: disable=g-import-not-at-top

  config = t5_config(name, **overrides)
  return t5.Transformer(
    config, prompts.Prompt(prompt_length, config.emb_dim, prompt_init.random_uniform(0.5))
  )


def hf_model(name: str, dropout: float = 0.0, device: str = "cpu", dtype=None):
  """transformers' T5 at a size, seeded, its `lm_head` a tensor of its own drawn at T5.1.1's
  scale: transformers 5 ties it to `shared` in memory whatever the config says, which would
  make the logits table the embedding (T5.1.1's are two)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  s = size(name)
  config = transformers.T5Config(
    vocab_size=VOCAB_SIZE,
    d_model=s["EMBED_DIM"],
    d_kv=s["HEAD_DIM"],
    d_ff=s["MLP_DIM"],
    num_layers=s["NUM_ENCODER_LAYERS"],
    num_decoder_layers=s["NUM_DECODER_LAYERS"],
    num_heads=s["NUM_HEADS"],
    dropout_rate=dropout,
    feed_forward_proj="gated-gelu",
    tie_word_embeddings=False,
    is_encoder_decoder=True,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
  )
  torch.manual_seed(0)
  previous = torch.get_default_dtype()
  if dtype is not None:  # built in the dtype: an XL in float32 first would not fit
    torch.set_default_dtype(dtype)
  try:
    with torch.device(device):
      hf = transformers.T5ForConditionalGeneration(config)
  finally:
    torch.set_default_dtype(previous)
  with torch.no_grad():
    hf.lm_head.weight = torch.nn.Parameter(
      torch.empty_like(hf.shared.weight).normal_(0.0, s["EMBED_DIM"] ** -0.5)
    )
  hf.config.tie_word_embeddings = False
  return hf


def peft_prompt_tuning(hf, name: str, prompt_length: int):
  """PEFT's prompt tuning of `hf` (the encoder's prompt only, as ours), in training mode,
  with transformers' Adafactor set as the paper's (lr 0.3, decay 0.8, no parameter
  scaling, weight decay 1e-5): `(model, optimizer)`."""
  import peft  # pylint: disable=g-import-not-at-top
  from transformers.optimization import Adafactor  # pylint: disable=g-import-not-at-top

  s = size(name)
  tuned = peft.get_peft_model(
    hf,
    peft.PromptTuningConfig(
      task_type=peft.TaskType.SEQ_2_SEQ_LM,
      num_virtual_tokens=prompt_length,
      token_dim=s["EMBED_DIM"],
      num_transformer_submodules=1,
      num_attention_heads=s["NUM_HEADS"],
      num_layers=s["NUM_ENCODER_LAYERS"],
    ),
  )
  tuned.train()
  optimizer = Adafactor(
    [p for p in tuned.parameters() if p.requires_grad],
    lr=0.3,
    eps=(1e-30, 1e-3),
    clip_threshold=1.0,
    decay_rate=-0.8,
    weight_decay=1e-5,
    scale_parameter=False,
    relative_step=False,
    warmup_init=False,
  )
  return tuned, optimizer


def batch(batch_size: int, input_length: int, target_length: int, seed: int = 0) -> dict:
  """Random token ids, no padding, as the trainer's step takes them."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  inputs = rng.integers(2, VOCAB_SIZE, (batch_size, input_length), dtype=np.int32)
  targets = rng.integers(2, VOCAB_SIZE, (batch_size, target_length), dtype=np.int32)
  return {
    "encoder_input_tokens": inputs,
    "decoder_input_tokens": np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], 1),
    "decoder_target_tokens": targets,
    "decoder_loss_weights": np.ones_like(targets, np.float32),
  }
