"""Prompts on disk, in every form PROMPT_FILE and PROMPT_FILES accept.

* a `.npy` file holding `[P, E]`;
* a numpy checkpoint directory (`MODEL_DIR/numpy_checkpoints/checkpoint_<step>`),
  `numpy_checkpoints` itself or a training run's MODEL_DIR (its latest step);
* a Hugging Face PEFT prompt-tuning adapter directory (`adapter_config.json`);
* as PROMPT_FILES, a multi-task prompt's run: a bank of its tasks' prompts.

The model's initializers take arrays or zero-argument callables; `prompt_file`
and `npy_file` are the callables the gin files hand them, so a file is read
only when the prompt is initialized.
"""

import ast
import os
import re
from typing import Any, Callable, Optional

import numpy as np

from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import peft
from prompt_tuning.models import prompts


def _multitask_file(name: str) -> str:
  """The numpy checkpoint's file of a multi-task prompt's variable `name` ('shared',
  'tasks', 'kernel', ...): `encoder.prompt.<name>.npy`."""
  return layout.numpy_prompt_name(layout.PROMPT_PREFIX + "encoder/prompt/" + name)


def _numpy_source(path: str) -> str:
  """The `.npy` file a PROMPT_FILE names, or the numpy checkpoint directory it stands for
  (a run's MODEL_DIR: its latest)."""
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
  return path


def recorded_macro(path: str, name: str, default: Any = None) -> Any:
  """The value the run that wrote PROMPT_FILE `path` gave macro `name` (its MODEL_DIR's
  operative `config.gin`, next to `numpy_checkpoints/` and `best/`), or `default` when
  `path` is from no run or the run did not set it."""
  if peft.is_adapter(os.fspath(path)):
    return default
  where = os.path.abspath(_numpy_source(path))
  for _ in range(4):
    where = os.path.dirname(where)
    config = os.path.join(where, "config.gin")
    if os.path.isfile(config):
      with open(config) as f:
        found = re.search(rf"^{re.escape(name)} = (.+)$", f.read(), flags=re.M)
      return ast.literal_eval(found[1]) if found else default
  return default


def resolve_prompt_file(path: str) -> str:
  """The `.npy` file a PROMPT_FILE names (see the module docstring).

  Raises:
    FileNotFoundError: nothing at `path`, or no prompt in the directory.
  """
  path = _numpy_source(path)
  if not os.path.isdir(path):
    return path
  candidates = sorted(n for n in os.listdir(path) if n.endswith(".npy"))
  if layout.PROMPT_FILE_NAME in candidates:
    return os.path.join(path, layout.PROMPT_FILE_NAME)
  if len(candidates) == 1:
    return os.path.join(path, candidates[0])
  if _multitask_file("shared") in candidates:
    raise FileNotFoundError(
      f"{path} is a multi-task prompt's run, a prompt per task: give it alone as PROMPT_FILES "
      "(a bank of its tasks' prompts), not as one prompt"
    )
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
  multitask = _multitask_source(os.fspath(path))
  if multitask is not None:
    return layout.numpy_step(os.path.basename(multitask))
  return layout.numpy_step(os.path.basename(os.path.dirname(resolve_prompt_file(path))))


def load_prompt_file(path: str, num_layers: int = 0, mode: Optional[str] = None) -> np.ndarray:
  """A `[length, embed]` float32 prompt from any form the module docstring lists; with
  `num_layers`, a per-layer prompt `[num_layers, length, embed]` (not from PEFT), which,
  with `mode`, must have been trained in that PER_LAYER_MODE when its run says."""
  path = os.fspath(path)
  if peft.is_adapter(path):
    if num_layers:
      raise ValueError(f"{path} is a PEFT adapter; PEFT has no per-layer prompts")
    return peft.read_prompt(path)
  trained = recorded_macro(path, "PER_LAYER_MODE") if num_layers and mode else None
  if trained is not None and trained != mode:
    raise ValueError(
      f"{path} is a per-layer prompt trained with PER_LAYER_MODE={trained!r}; this model "
      f"joins it with {mode!r}: set --gin.PER_LAYER_MODE=\"{trained!r}\" (per_layer_from_file.gin "
      "reads it from the run when not overridden)"
    )
  prompt = np.asarray(np.load(resolve_prompt_file(path)), np.float32)
  if num_layers and (prompt.ndim != 3 or prompt.shape[0] != num_layers):
    raise ValueError(
      f"prompt file {path} holds shape {list(prompt.shape)}{_whose(prompt.ndim, 3)}; a "
      f"per-layer prompt for this model is [{num_layers}, length, embed]"
    )
  if not num_layers and prompt.ndim != 2:
    raise ValueError(
      f"prompt file {path} holds shape {list(prompt.shape)}{_whose(prompt.ndim, 2)}; a prompt "
      "is [length, embed]"
    )
  return prompt


# The values of rank 3 to 5 and the configs that read them as a PROMPT_FILE.
_PREFIX_READERS = (
  "configs/prompts/prefix_from_file.gin or configs/prompts/p_tuning_v2_from_file.gin"
)
_BY_RANK = {
  2: ("a prompt's", "configs/prompts/from_file.gin"),
  3: ("a per-layer prompt's", "configs/prompts/per_layer_from_file.gin"),
  4: ("a prefix's", _PREFIX_READERS),
  5: ("a prefix's", _PREFIX_READERS),
}


def _whose(rank: int, wanted: int) -> str:
  """', <method>'s values: read them with <config>' for a file of another method's rank."""
  if rank == wanted or rank not in _BY_RANK:
    return ""
  what, config = _BY_RANK[rank]
  return f", {what} values (read them with {config})"


_VALUE_READERS_MADE = [0]  # prompt_file and prefix_file calls (gin_config's check)


def value_readers_made() -> int:
  """How many readers of a PROMPT_FILE's values (`prompt_file`, `prefix_file`) this process
  has made: what tells a model built from a config whether it starts from the file."""
  return _VALUE_READERS_MADE[0]


def prompt_file(
  path: str, num_layers: int = 0, mode: Optional[str] = None
) -> Callable[[], np.ndarray]:
  """A zero-argument callable reading PROMPT_FILE `path` (for `prompt_init.from_array`);
  `num_layers` and `mode` as in `load_prompt_file`."""
  _VALUE_READERS_MADE[0] += 1

  def read() -> np.ndarray:
    return load_prompt_file(path, num_layers, mode)

  read.source = f"prompt file {path}"
  return read


def stored_rank(path: str) -> Optional[int]:
  """The rank of the array a PROMPT_FILE holds, without reading it (2: a prompt, 3: a
  per-layer prompt, 4 or 5: a prefix); None for an adapter or a directory holding no single
  array (a prefix's MLP)."""
  if peft.is_adapter(os.fspath(path)):
    return None
  try:
    return np.load(resolve_prompt_file(path), mmap_mode="r").ndim
  except (OSError, ValueError):
    return None


def _multitask_source(path: str) -> Optional[str]:
  """The numpy checkpoint directory of a multi-task prompt's run at `path`, or None."""
  if peft.is_adapter(os.fspath(path)) or not os.path.exists(path):
    return None
  source = _numpy_source(path)
  shared = os.path.join(source, _multitask_file("shared"))
  return source if os.path.isdir(source) and os.path.isfile(shared) else None


def is_multitask(path: Any) -> bool:
  """Whether PROMPT_FILES `path` is a multi-task prompt's run (configs/prompts/multitask.gin)."""
  return isinstance(path, (str, os.PathLike)) and _multitask_source(os.fspath(path)) is not None


def _stored_combine(path: str, source: str) -> str:
  """A multi-task prompt's MULTITASK_COMBINE from its files, when no run's config.gin says:
  'project' and 'mpt' by their variables, 'concat_features' by a shared prompt as wide as no
  task's, 'concat' by tasks as long as no shared prompt; shapes that 'add' would hold too
  must be recorded."""
  names = set(os.listdir(source))
  if _multitask_file("kernel") in names:
    return "project"
  if _multitask_file("cols") in names:
    return "mpt"
  shared = np.load(os.path.join(source, _multitask_file("shared")), mmap_mode="r")
  tasks = np.load(os.path.join(source, _multitask_file("tasks")), mmap_mode="r")
  if shared.shape[-1] != tasks.shape[-1]:
    return "concat_features"
  if shared.shape[0] != tasks.shape[1]:
    return "concat"
  raise ValueError(
    f"{path}: a multi-task prompt whose run does not say how it combined its tasks ('add', "
    "'concat' and 'concat_features' can store alike): put its run's config.gin "
    "(MULTITASK_COMBINE) beside numpy_checkpoints/"
  )


def load_multitask_prompts(path: str) -> np.ndarray:
  """Every task's prompt, `[tasks, P, E]`, from a multi-task prompt's run (its latest
  numpy checkpoint, or the one named), combined as its MULTITASK_COMBINE says."""
  source = _multitask_source(path)
  if source is None:
    raise ValueError(f"{path} holds no multi-task prompt ({_multitask_file('shared')})")
  combine = recorded_macro(path, "MULTITASK_COMBINE") or _stored_combine(path, source)
  variables = {}
  for name in prompts.MULTITASK_VARIABLES.get(combine, ()):
    file = os.path.join(source, _multitask_file(name))
    if not os.path.isfile(file):
      raise ValueError(
        f"{path}: a multi-task prompt combined by {combine!r} (its run's MULTITASK_COMBINE) "
        f"has {_multitask_file(name)}; it is missing"
      )
    variables[name] = np.asarray(np.load(file), np.float32)
  return np.asarray(prompts.multitask_prompts(combine, variables), np.float32)


def per_layer_mode(path: str) -> str:
  """The PER_LAYER_MODE the run that trained the per-layer prompt at `path` used
  ('replace' when it does not say: a bare `.npy`); per_layer_from_file.gin's default."""
  return recorded_macro(path, "PER_LAYER_MODE", "replace")


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
  prefix = _read_prefix(path, num_layers, num_heads, placement)
  if prefix.ndim == 4 and placement != "decoder":
    raise ValueError(
      f"prefix file {path} holds PEFT's table of a decoder prefix, {list(prefix.shape)}; "
      "this model's prefix is an encoder's"
    )
  if prefix.ndim == 4 and prefix.shape[1:3] == (2 * num_layers, num_heads):
    # PREFIX_LAYOUT='peft': PEFT's table of 2L rows, [P, 2L, heads, head_dim].
    return peft.prefix_from_peft(prefix.reshape(prefix.shape[0], -1), num_layers, num_heads)
  if prefix.ndim != 5 or prefix.shape[:2] != (num_layers, 2) or prefix.shape[3] != num_heads:
    raise ValueError(
      f"prefix file {path} holds shape {list(prefix.shape)}; a prefix for this model is "
      f"[{num_layers}, 2, P, {num_heads}, head_dim]"
    )
  return prefix


def _read_prefix(path: str, num_layers: int, num_heads: int, placement: str) -> np.ndarray:
  """The prefix array at `path` as saved: a run's `<placement>.prefix.prefix.npy`, or the
  prefix its reparameterization (`embedding` through the MLP) gives; refuses the other
  stack's prefix."""
  source = _numpy_source(path)
  names = sorted(os.listdir(source)) if os.path.isdir(source) else [os.path.basename(source)]
  other = "encoder" if placement == "decoder" else "decoder"
  own = [n for n in names if n.startswith(f"{placement}.prefix.")]
  if not own and any(n.startswith(f"{other}.prefix.") for n in names):
    config = "prefix_from_file.gin" if other == "decoder" else "p_tuning_v2_from_file.gin"
    article = {"encoder": "an", "decoder": "a"}
    raise ValueError(
      f"{path} holds {article[other]} {other} prefix; this model's is {article[placement]} "
      f"{placement}'s: read it with configs/prompts/{config}"
    )
  if not os.path.isdir(source):
    return np.asarray(np.load(source), np.float32)
  if f"{placement}.prefix.prefix.npy" in names:
    return np.asarray(np.load(os.path.join(source, f"{placement}.prefix.prefix.npy")), np.float32)
  if f"{placement}.prefix.embedding.npy" not in names:
    return np.asarray(np.load(resolve_prompt_file(path)), np.float32)
  mlp = {
    n: np.load(os.path.join(source, f"{placement}.prefix.{n}.npy")) for n in prompts.PREFIX_MLP
  }
  length, embed_dim = mlp["embedding"].shape
  hidden_dim, width = mlp["out_kernel"].shape
  module = prompts.Prefix(
    length,
    num_layers,
    num_heads,
    width // (2 * num_layers * num_heads),
    embed_dim=embed_dim,
    hidden_dim=hidden_dim,
    layout=recorded_macro(path, "PREFIX_LAYOUT", "layers"),
    placement=placement,
  )
  return np.asarray(prompts.fold_prefix(module, mlp)["prefix"], np.float32)


def prefix_file(
  path: str, num_layers: int, num_heads: int, placement: str = "decoder"
) -> Callable[[], np.ndarray]:
  """A zero-argument callable reading a prefix (for `prompt_init.fixed_array`)."""
  _VALUE_READERS_MADE[0] += 1

  def read() -> np.ndarray:
    return load_prefix_file(path, num_layers, num_heads, placement)

  read.source = f"prefix file {path}"
  return read


def prefix_length(path: str, num_layers: int, num_heads: int, placement: str = "decoder") -> int:
  """The length P of the prefix at `path` (configs/prompts/prefix_from_file.gin)."""
  return int(load_prefix_file(path, num_layers, num_heads, placement).shape[2])
