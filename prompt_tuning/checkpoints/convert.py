"""Whole-checkpoint conversion: any readable format -> this project's, or -> Hugging Face.

* `to_own`: the parameters of any checkpoint `readers.open_checkpoint` reads
  (Hugging Face, t5x, this project's) become this project's orbax checkpoint
  (`DST/checkpoints/0`), which INITIAL_CHECKPOINT_PATH then reads; stored
  dtypes are kept.
* `to_huggingface`: the same, written as a transformers T5 directory
  (`config.json` + `model.safetensors`) that `T5ForConditionalGeneration.
  from_pretrained` loads. T5.1.1's logits layer is not tied to the embedding:
  the file holds `lm_head.weight` and the config says `tie_word_embeddings:
  false`, which transformers 5 reads as "keep lm_head, do not rescale".

Arrays are read one at a time; the output is written once all are read.
"""

import json
import os
import re
from typing import Any, Optional

import jax
import ml_dtypes
import numpy as np
from safetensors import numpy as safetensors_numpy

from prompt_tuning.checkpoints import checkpointer
from prompt_tuning.checkpoints import huggingface
from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import readers
from prompt_tuning.checkpoints import storage
from prompt_tuning.checkpoints import tree

_LAYER = re.compile(r"^(encoder|decoder)/layers_(\d+)/")
DTYPES = {
  "float32": np.dtype(np.float32),
  "float16": np.dtype(np.float16),
  "bfloat16": np.dtype(ml_dtypes.bfloat16),
}


def read_all(path: str) -> dict[str, np.ndarray]:
  """Every parameter of the checkpoint at `path`, flat t5x name -> host array (stored dtype)."""
  reader = readers.open_checkpoint(path)
  names = sorted(reader.shapes())
  if not names:
    raise ValueError(
      f"{readers.prompt_only(path, reader)}: convert that model, and export "
      "the prompt with scripts/export_peft.py"
    )
  return {name: np.asarray(reader.read_array(name)) for name in names}


def cast(params: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
  """`params` with every array cast to `dtype` (a name of DTYPES; round to nearest even)."""
  if dtype not in DTYPES:
    raise ValueError(f"dtype {dtype!r}; use one of {', '.join(sorted(DTYPES))}")
  return {name: np.asarray(value).astype(DTYPES[dtype]) for name, value in params.items()}


def to_own(params: dict[str, np.ndarray], output_dir: str, source: Optional[str] = None) -> str:
  """Writes `params` as this project's checkpoint under `output_dir`; returns its step dir."""
  if os.path.isdir(layout.checkpoints_dir(output_dir)) and os.listdir(
    layout.checkpoints_dir(output_dir)
  ):
    raise FileExistsError(f"{output_dir} already holds checkpoints; convert into a new directory")
  # A train state's fields (training.train_state.TrainState), nothing trained.
  state = {
    "step": np.zeros((), np.int32),
    "trainable": {readers.PARAMS + name: value for name, value in params.items()},
    "opt_state": {},
    "rng": np.zeros((2,), np.uint32),
  }
  record = {
    "base_checkpoint": source,
    "init_seed": None,
    "what_trains": "converted",
    "data_position": 0,
  }
  step = checkpointer.Checkpointer(output_dir).save(jax.device_put(state), record)
  return layout.checkpoint_step_dir(output_dir, step)


def architecture(params: dict[str, np.ndarray]) -> dict[str, int]:
  """The T5.1.1 dimensions the parameters imply (transformers' config names)."""
  vocab, d_model = params["token_embedder/embedding"].shape
  heads, buckets = params["encoder/relpos_bias/rel_embedding"].shape
  layers = {"encoder": set(), "decoder": set()}
  for name in params:
    match = _LAYER.match(name)
    if match:
      layers[match[1]].add(int(match[2]))
  if "encoder/layers/attention/query/kernel" in params:
    raise ValueError(
      "the checkpoint's layers are scanned (SCAN_LAYERS=True); unstack them "
      "(prompt_tuning.models.t5.unstack_layers) before converting"
    )
  return {
    "vocab_size": int(vocab),
    "d_model": int(d_model),
    "num_heads": int(heads),
    "relative_attention_num_buckets": int(buckets),
    "d_kv": int(params["encoder/layers_0/attention/query/kernel"].shape[1] // heads),
    "d_ff": int(params["encoder/layers_0/mlp/wi_0/kernel"].shape[1]),
    "num_layers": len(layers["encoder"]),
    "num_decoder_layers": len(layers["decoder"]),
  }


def to_huggingface(
  params: dict[str, np.ndarray],
  output_dir: str,
  *,
  relative_attention_max_distance: int = 128,
  layer_norm_epsilon: float = 1e-6,
) -> dict[str, Any]:
  """Writes a transformers T5 directory; returns its config."""
  dims = architecture(params)
  state = huggingface.params_to_hf(
    tree.unflatten(params), dims["num_layers"], dims["num_decoder_layers"]
  )
  # transformers ties both stacks' embed_tokens to `shared`: one copy in the file.
  for tied in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
    state.pop(tied, None)
  dtypes = {v.dtype for v in state.values()}
  if len(dtypes) != 1:
    raise ValueError(
      f"the parameters mix dtypes {sorted(str(d) for d in dtypes)}; "
      "transformers loads one torch_dtype"
    )
  dtype = dtypes.pop()
  torch_dtype = {
    np.dtype(np.float32): "float32",
    np.dtype(np.float16): "float16",
    np.dtype(ml_dtypes.bfloat16): "bfloat16",
  }.get(np.dtype(dtype))
  if torch_dtype is None:
    raise ValueError(f"transformers has no dtype for {dtype}")
  config = {
    "architectures": ["T5ForConditionalGeneration"],
    "model_type": "t5",
    **dims,
    "relative_attention_max_distance": relative_attention_max_distance,
    "layer_norm_epsilon": layer_norm_epsilon,
    "feed_forward_proj": "gated-gelu",
    "dropout_rate": 0.0,
    "is_encoder_decoder": True,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
    "tie_word_embeddings": False,
    "dtype": torch_dtype,
  }
  os.makedirs(output_dir, exist_ok=True)
  with storage.replaced_atomically(os.path.join(output_dir, "model.safetensors")) as weights:
    safetensors_numpy.save_file(state, weights, metadata={"format": "pt"})
  storage.write_file(
    os.path.join(output_dir, "config.json"), json.dumps(config, indent=2, sort_keys=True)
  )
  return config
