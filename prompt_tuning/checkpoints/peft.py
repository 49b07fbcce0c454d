"""Prompts exchanged with Hugging Face PEFT's prompt-tuning adapters.

A PEFT prompt-tuning adapter directory holds `adapter_config.json` (peft_type
PROMPT_TUNING) and `adapter_model.safetensors` with the prompt as
`prompt_embeddings`, `[num_transformer_submodules * P, E]`. For T5, one
submodule means the encoder only, which is the paper's method and what this
project trains; PEFT's seq2seq default of 2 also prompts the decoder, which
this project's model has no place for.
"""

import json
import os
from typing import Any, Optional

import numpy as np
from safetensors import numpy as safetensors_numpy

from prompt_tuning.checkpoints import storage
from prompt_tuning.models import prompts

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PROMPT_KEY = "prompt_embeddings"


def is_adapter(path: str) -> bool:
  return os.path.isdir(path) and os.path.exists(os.path.join(path, CONFIG_FILE))


def _prompt_embeddings(path: str) -> tuple[str, np.ndarray]:
  """The weights file of adapter directory `path` and the `prompt_embeddings` it holds
  (every PEFT prompt method saves its table under that key)."""
  weights = os.path.join(path, WEIGHTS_FILE)
  if not os.path.exists(weights):
    raise FileNotFoundError(
      f"{path} has no {WEIGHTS_FILE}; save the adapter with "
      "safe_serialization=True (PEFT's default)"
    )
  tensors = safetensors_numpy.load_file(weights)
  if PROMPT_KEY not in tensors:
    raise ValueError(f"{weights} holds {sorted(tensors)}, not {PROMPT_KEY!r}")
  return weights, tensors[PROMPT_KEY]


def read_prompt(path: str) -> np.ndarray:
  """The `[P, E]` float32 prompt of a PEFT prompt-tuning adapter directory.

  Raises:
    ValueError: not a prompt-tuning adapter, or prompts on the decoder too.
    FileNotFoundError: no `adapter_model.safetensors`.
  """
  with open(os.path.join(path, CONFIG_FILE)) as f:
    config = json.load(f)
  if config.get("peft_type") == "P_TUNING":
    return _p_tuning_prompt(path, config)
  if config.get("peft_type") == "MULTITASK_PROMPT_TUNING":
    raise ValueError(
      f"{path} is a PEFT multitask prompt tuning (MPT) adapter, one prompt per task: give it "
      "as PROMPT_FILES (a string), whose prompts are named by task id ('0', '1', ...)"
    )
  if config.get("peft_type") != "PROMPT_TUNING":
    raise ValueError(
      f"{path} is a PEFT {config.get('peft_type')} adapter, not PROMPT_TUNING or P_TUNING; "
      "only those hold a soft prompt (prefix-tuning adapters: "
      "configs/prompts/prefix_from_file.gin)"
    )
  submodules = int(config.get("num_transformer_submodules") or 1)
  if submodules != 1:
    raise ValueError(
      f"{path} puts prompts on both encoder and decoder (num_transformer_submodules="
      f"{submodules}); this project prompts the encoder only: retrain the adapter with "
      "num_transformer_submodules=1"
    )
  weights, prompt = _prompt_embeddings(path)
  length = config.get("num_virtual_tokens")
  if length is not None and prompt.shape[0] != length:
    raise ValueError(
      f"{weights}: prompt_embeddings has {prompt.shape[0]} rows but num_virtual_tokens={length}"
    )
  return np.asarray(prompt, np.float32)


def write_adapter(
  prompt: np.ndarray,
  output_dir: str,
  base_model_name_or_path: Optional[str],
  num_layers: Optional[int] = None,
  num_attention_heads: Optional[int] = None,
) -> dict[str, Any]:
  """Writes a PEFT prompt-tuning adapter (encoder prompt only) for a T5 base model.

  Args:
    prompt: `[P, E]`.
    output_dir: the adapter directory (created).
    base_model_name_or_path: the transformers model the prompt was trained
      for (a hub name or a directory), recorded for `PeftModel.from_pretrained`.
    num_layers, num_attention_heads: the base model's, recorded as PEFT does
      (PEFT fills them from the model when absent).

  Returns:
    The adapter config written.
  """
  prompt = np.ascontiguousarray(np.asarray(prompt, np.float32))
  if prompt.ndim != 2:
    raise ValueError(f"a prompt is [length, embed], got shape {prompt.shape}")
  os.makedirs(output_dir, exist_ok=True)
  config = {
    "auto_mapping": None,
    "base_model_name_or_path": base_model_name_or_path,
    "inference_mode": True,
    "modules_to_save": None,
    "num_attention_heads": num_attention_heads,
    "num_layers": num_layers,
    "num_transformer_submodules": 1,
    "num_virtual_tokens": int(prompt.shape[0]),
    "peft_type": "PROMPT_TUNING",
    "prompt_tuning_init": "RANDOM",
    "prompt_tuning_init_text": None,
    "revision": None,
    "task_type": "SEQ_2_SEQ_LM",
    "token_dim": int(prompt.shape[1]),
    "tokenizer_kwargs": None,
    "tokenizer_name_or_path": None,
  }
  # Weights first, config last: a directory with a config is a complete adapter.
  with storage.replaced_atomically(os.path.join(output_dir, WEIGHTS_FILE)) as weights:
    safetensors_numpy.save_file({PROMPT_KEY: prompt}, weights)
  storage.write_file(
    os.path.join(output_dir, CONFIG_FILE), json.dumps(config, indent=2, sort_keys=True)
  )
  return config


def prefix_from_peft(prompt_embeddings: np.ndarray, num_layers: int, num_heads: int) -> np.ndarray:
  """A PEFT prefix-tuning tensor `[P, 2 * num_layers * width]` as the decoder's prefix,
  `[num_layers, 2, P, heads, width // heads]` (keys, then values).

  PEFT (0.21) views the tensor as `[P, 2L, heads, head_dim]`, repeats those 2L
  rows for T5's two submodules and splits the 4L rows into chunks of four per
  decoder layer: (self-attention key, value, cross-attention key, value). It
  then empties the cross-attention cache, so decoder layer i reads its key from
  row 4i mod 2L and its value from row 4i + 1 mod 2L, and the other rows are
  never read. The encoder gets no prefix.
  """
  prompt_embeddings = np.asarray(prompt_embeddings, np.float32)
  length, flat = prompt_embeddings.shape
  if flat % (2 * num_layers * num_heads):
    raise ValueError(
      f"a prefix-tuning tensor of width {flat} does not split into 2 x {num_layers} layers x "
      f"{num_heads} heads"
    )
  rows = prompt_embeddings.reshape(length, 2 * num_layers, num_heads, -1)
  return np.stack([np.stack([rows[:, k], rows[:, v]]) for k, v in peft_rows(num_layers)])


def read_prefix(path: str, num_layers: int, num_heads: int) -> np.ndarray:
  """The decoder prefix `[num_layers, 2, P, heads, head_dim]` of a PEFT prefix-tuning
  adapter directory (see `prefix_from_peft`).

  Raises:
    ValueError: not a prefix-tuning adapter, or made for another number of layers.
    FileNotFoundError: no `adapter_model.safetensors`.
  """
  with open(os.path.join(path, CONFIG_FILE)) as f:
    config = json.load(f)
  if config.get("peft_type") != "PREFIX_TUNING":
    raise ValueError(
      f"{path} is a PEFT {config.get('peft_type')} adapter, not PREFIX_TUNING; "
      "configs/prompts/prefix_from_file.gin reads prefix-tuning adapters"
    )
  if config.get("num_layers") not in (None, num_layers):
    raise ValueError(
      f"{path} is a prefix for {config['num_layers']} layers; this model's decoder has {num_layers}"
    )
  _, table = _prompt_embeddings(path)
  return prefix_from_peft(table, num_layers, num_heads)


def _p_tuning_prompt(path: str, config: dict) -> np.ndarray:
  """A PEFT P-tuning adapter's prompt: it saves its prompt encoder's output,
  `[num_transformer_submodules * P, E]`, and on T5 prepends only the first P rows to
  the encoder's inputs, which is a soft prompt."""
  weights, prompt = _prompt_embeddings(path)
  length = int(config.get("num_virtual_tokens") or 0)
  if length < 1 or prompt.shape[0] < length:
    raise ValueError(
      f"{weights}: prompt_embeddings has {prompt.shape[0]} rows for num_virtual_tokens={length}"
    )
  return np.asarray(prompt[:length], np.float32)


def is_multitask_adapter(path: str) -> bool:
  """Whether `path` is a PEFT multitask prompt tuning (MPT) adapter directory."""
  if not is_adapter(path):
    return False
  with open(os.path.join(path, CONFIG_FILE)) as f:
    return json.load(f).get("peft_type") == "MULTITASK_PROMPT_TUNING"


def read_multitask_prompts(path: str) -> np.ndarray:
  """Each task's prompt `[tasks, P, E]` of a PEFT MPT adapter: task t's is the shared
  prompt times (elementwise) the low-rank `prefix_task_cols[t] @ prefix_task_rows[t]`, of
  which T5 reads the first P rows (PEFT 0.21's MultitaskPromptEmbedding), so every task's
  prompt is an ordinary soft prompt: a multi-task prompt's 'mpt' combination
  (`prompts.multitask_prompts`), here from PEFT's variables."""
  with open(os.path.join(path, CONFIG_FILE)) as f:
    config = json.load(f)
  weights, shared = _prompt_embeddings(path)
  tensors = safetensors_numpy.load_file(weights)
  cols, rows = tensors.get("prefix_task_cols"), tensors.get("prefix_task_rows")
  if cols is None or rows is None:
    raise ValueError(f"{weights} lacks prefix_task_cols or prefix_task_rows: not an MPT adapter")
  length = int(config.get("num_virtual_tokens") or 0)
  if length < 1 or shared.shape[0] < length or cols.shape[1] != shared.shape[0]:
    raise ValueError(
      f"{weights}: prompt_embeddings {list(shared.shape)} and prefix_task_cols "
      f"{list(cols.shape)} do not fit num_virtual_tokens={length}"
    )
  variables = {"shared": shared, "cols": cols, "rows": rows}
  every = prompts.multitask_prompts(
    "mpt", {k: np.asarray(v, np.float32) for k, v in variables.items()}
  )
  return np.asarray(every[:, :length], np.float32)


def peft_rows(num_layers: int) -> list[tuple[int, int]]:
  """(key row, value row) of each decoder layer in PEFT's `[P, 2L, heads, head_dim]` view."""
  return [(k, k + 1) for k in prompts.peft_key_rows(num_layers)]


def prefix_to_peft(prefix: np.ndarray) -> np.ndarray:
  """The decoder's prefix `[layers, 2, P, heads, head_dim]` as PEFT's tensor
  `[P, 2 * layers * heads * head_dim]`, which `prefix_from_peft` reads back.

  With an even number of layers PEFT gives layers i and i + L/2 the same rows, so such a
  prefix is exportable only when those layers' keys and values are equal (a prefix trained
  with configs/prompts/prefix.gin's PREFIX_LAYOUT='peft' is); rows PEFT never reads are 0.

  Raises:
    ValueError: two layers that PEFT ties hold different keys or values.
  """
  prefix = np.asarray(prefix, np.float32)
  if prefix.ndim != 5 or prefix.shape[1] != 2:
    raise ValueError(f"a prefix is [layers, 2, P, heads, head_dim], got {list(prefix.shape)}")
  layers, _, length, heads, head_dim = prefix.shape
  rows = np.zeros((length, 2 * layers, heads, head_dim), np.float32)
  written: dict[int, int] = {}
  for i, pair in enumerate(peft_rows(layers)):
    for kv, row in enumerate(pair):
      if row in written and not np.array_equal(rows[:, row], prefix[i, kv]):
        raise ValueError(
          f"PEFT gives decoder layers {written[row]} and {i} the same prefix rows, but this "
          f"prefix's differ; train it with PREFIX_LAYOUT='peft' to export it"
        )
      rows[:, row], written[row] = prefix[i, kv], i
  return rows.reshape(length, -1)


def write_prefix_adapter(
  prefix: np.ndarray, output_dir: str, base_model_name_or_path: Optional[str]
) -> dict[str, Any]:
  """Writes a PEFT prefix-tuning adapter (seq2seq, T5) holding `prefix`, the decoder's
  `[layers, 2, P, heads, head_dim]`, that `PeftModel.from_pretrained` loads."""
  table = np.ascontiguousarray(prefix_to_peft(prefix))
  layers, _, length, heads, head_dim = np.shape(prefix)
  os.makedirs(output_dir, exist_ok=True)
  config = {
    "base_model_name_or_path": base_model_name_or_path,
    "encoder_hidden_size": heads * head_dim,
    "inference_mode": True,
    "num_attention_heads": heads,
    "num_layers": layers,
    "num_transformer_submodules": 2,
    "num_virtual_tokens": length,
    "peft_type": "PREFIX_TUNING",
    "prefix_projection": False,
    "revision": None,
    "task_type": "SEQ_2_SEQ_LM",
    "token_dim": heads * head_dim,
  }
  with storage.replaced_atomically(os.path.join(output_dir, WEIGHTS_FILE)) as weights:
    safetensors_numpy.save_file({PROMPT_KEY: table}, weights)
  storage.write_file(
    os.path.join(output_dir, CONFIG_FILE), json.dumps(config, indent=2, sort_keys=True)
  )
  return config
