"""Prompts on disk, in every form PROMPT_FILE and PROMPT_FILES accept.

* a `.npy` file holding `[P, E]`;
* a numpy checkpoint directory (`MODEL_DIR/numpy_checkpoints/checkpoint_<step>`),
  `numpy_checkpoints` itself or a training run's MODEL_DIR (its latest step);
* a Hugging Face PEFT prompt-tuning adapter directory (`adapter_config.json`).

The model's initializers take arrays or zero-argument callables; `prompt_file`
and `npy_file` are the callables the gin files hand them, so a file is read
only when the prompt is initialized.
"""

import os
from typing import Callable, Optional

import numpy as np

from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import peft


def resolve_prompt_file(path: str) -> str:
  """The `.npy` file a PROMPT_FILE names (see the module docstring).

  Raises:
    FileNotFoundError: nothing at `path`, or no prompt in the directory.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"prompt file {path} does not exist")
  if not os.path.isdir(path):
    return path
  if os.path.isdir(layout.numpy_dir(path)):
    path = layout.numpy_dir(path)
  steps = [(layout.numpy_step(n), n) for n in os.listdir(path) if layout.numpy_step(n) is not None]
  if steps:
    path = os.path.join(path, max(steps)[1])
  candidates = sorted(n for n in os.listdir(path) if n.endswith(".npy"))
  if layout.PROMPT_FILE_NAME in candidates:
    return os.path.join(path, layout.PROMPT_FILE_NAME)
  if len(candidates) == 1:
    return os.path.join(path, candidates[0])
  raise FileNotFoundError(
    f"no prompt in {path}: expected {layout.PROMPT_FILE_NAME} (or a single .npy file); give a "
    f".npy file, a {layout.NUMPY_DIR}/checkpoint_<step> directory or a training run's "
    "MODEL_DIR"
  )


def step_of(path: str) -> Optional[int]:
  """The training step of the prompt a PROMPT_FILE names: its numpy checkpoint's
  (`checkpoint_<step>`, or a run's latest); None for a file from no numpy checkpoint."""
  if peft.is_adapter(os.fspath(path)):
    return None
  return layout.numpy_step(os.path.basename(os.path.dirname(resolve_prompt_file(path))))


def load_prompt_file(path: str, num_layers: int = 0) -> np.ndarray:
  """A `[length, embed]` float32 prompt from any form the module docstring lists; with
  `num_layers`, a per-layer prompt `[num_layers, length, embed]` (not from PEFT)."""
  path = os.fspath(path)
  if peft.is_adapter(path):
    if num_layers:
      raise ValueError(f"{path} is a PEFT adapter; PEFT has no per-layer prompts")
    return peft.read_prompt(path)
  prompt = np.asarray(np.load(resolve_prompt_file(path)), np.float32)
  if num_layers and (prompt.ndim != 3 or prompt.shape[0] != num_layers):
    raise ValueError(
      f"prompt file {path} holds shape {list(prompt.shape)}; a per-layer prompt for this "
      f"model is [{num_layers}, length, embed]"
    )
  if not num_layers and prompt.ndim != 2:
    raise ValueError(
      f"prompt file {path} holds shape {list(prompt.shape)}; a prompt is [length, embed]"
    )
  return prompt


def prompt_file(path: str, num_layers: int = 0) -> Callable[[], np.ndarray]:
  """A zero-argument callable reading PROMPT_FILE `path` (for `prompt_init.from_array`);
  `num_layers` as in `load_prompt_file`."""

  def read() -> np.ndarray:
    return load_prompt_file(path, num_layers)

  read.source = f"prompt file {path}"
  return read


def prompt_length(path: str, num_layers: int = 0) -> int:
  """The length P of the prompt at PROMPT_FILE `path` (configs/prompts/from_file.gin takes
  PROMPT_LENGTH from here, so eval and infer need not repeat it); `num_layers` as in
  `load_prompt_file`."""
  return int(load_prompt_file(path, num_layers).shape[-2])


def npy_file(path: str) -> Callable[[], np.ndarray]:
  """A zero-argument callable reading a `.npy` array, e.g. EMBEDDING_FILE."""

  def read() -> np.ndarray:
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path} does not exist; give a .npy file")
    return np.asarray(np.load(path), np.float32)

  read.source = f"file {path}"
  return read


def load_prefix_file(
  path: str, num_layers: int, num_heads: int, placement: str = "decoder"
) -> np.ndarray:
  """A prefix `[layers, 2, P, heads, head_dim]` (prefix tuning, P-tuning v2) from a `.npy`
  file, a numpy checkpoint directory, a run's MODEL_DIR (its latest
  `<stack>.prefix.prefix.npy`; `[P, 2L, heads, head_dim]` in PEFT's row order from a
  run with PREFIX_LAYOUT='peft') or, for a decoder prefix, a PEFT prefix-tuning adapter
  directory."""
  path = os.fspath(path)
  if peft.is_adapter(path):
    if placement != "decoder":
      raise ValueError(
        f"{path} is a PEFT adapter, whose prefix is a decoder's; read it with "
        "configs/prompts/prefix_from_file.gin"
      )
    return peft.read_prefix(path, num_layers, num_heads)
  prefix = np.asarray(np.load(resolve_prompt_file(path)), np.float32)
  if prefix.ndim == 4 and prefix.shape[1:3] == (2 * num_layers, num_heads):
    # PREFIX_LAYOUT='peft': PEFT's table of 2L rows, [P, 2L, heads, head_dim].
    return peft.prefix_from_peft(prefix.reshape(prefix.shape[0], -1), num_layers, num_heads)
  if prefix.ndim != 5 or prefix.shape[:2] != (num_layers, 2) or prefix.shape[3] != num_heads:
    raise ValueError(
      f"prefix file {path} holds shape {list(prefix.shape)}; a prefix for this model is "
      f"[{num_layers}, 2, P, {num_heads}, head_dim]"
    )
  return prefix


def prefix_file(
  path: str, num_layers: int, num_heads: int, placement: str = "decoder"
) -> Callable[[], np.ndarray]:
  """A zero-argument callable reading a prefix (for `prompt_init.fixed_array`)."""

  def read() -> np.ndarray:
    return load_prefix_file(path, num_layers, num_heads, placement)

  read.source = f"prefix file {path}"
  return read


def prefix_length(path: str, num_layers: int, num_heads: int, placement: str = "decoder") -> int:
  """The length P of the prefix at `path` (configs/prompts/prefix_from_file.gin)."""
  return int(load_prefix_file(path, num_layers, num_heads, placement).shape[2])
