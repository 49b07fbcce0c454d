"""Reading a frozen model's parameters from INITIAL_CHECKPOINT_PATH onto a mesh.

A reader opens one checkpoint format and answers two questions: which
parameters it holds (flat t5x names such as `encoder/layers_0/mlp/wo/kernel`,
with shapes) and what a slice of one of them is. `load_params` checks the
stored shapes against the model's, then builds each parameter with
`jax.make_array_from_callback`, so every device receives only its shard and no
host ever holds a full copy per device. A format that can read straight onto
shardings (orbax) overrides `read` instead.

Formats are tried in `READERS` order by their `detect`: this project's own
checkpoints (a MODEL_DIR of a model-tuning or pretraining run, its
`checkpoints/` directory, or one `checkpoints/<step>` inside it), Hugging
Face T5/mT5 directories, t5x's legacy checkpoints (`checkpoint_<step>/` with
its msgpack `checkpoint` file, or the directory holding them), and the
checkpoints t5x writes with Orbax (`checkpoint_<step>/state/`).
"""

import abc
import json
import os
from typing import Any, Callable, Optional

from etils import epath
import jax
import numpy as np
import orbax.checkpoint as ocp
import safetensors

from prompt_tuning.checkpoints import huggingface
from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import storage
from prompt_tuning.checkpoints import t5x
from prompt_tuning.checkpoints import tree as tree_lib

Index = tuple[slice, ...]
PARAMS = "params/"
LOGITS = "decoder/logits_dense/kernel"


class Reader(abc.ABC):
  """One checkpoint's parameters, by flat t5x name (no collection prefix)."""

  def __init__(self, path: str):
    self.path = path

  @abc.abstractmethod
  def shapes(self) -> dict[str, tuple[int, ...]]:
    """Every stored parameter's shape."""

  def read_slice(self, name: str, index: Index) -> np.ndarray:
    """`name[index]` as a numpy array (what `make_array_from_callback` asks for)."""
    raise NotImplementedError(f"{type(self).__name__} reads whole trees; use read()")

  def read_array(self, name: str) -> np.ndarray:
    """One whole parameter on the host, in its stored dtype (t5x layout)."""
    return np.asarray(self.read_slice(name, tuple(slice(0, n) for n in self.shapes()[name])))

  def read(self, targets: dict[str, jax.ShapeDtypeStruct]) -> dict[str, jax.Array]:
    """Reads each target (shape, dtype, sharding) onto its devices, shard by shard."""
    out = {}
    for name, target in targets.items():
      out[name] = jax.make_array_from_callback(
        target.shape,
        target.sharding,
        lambda index, name=name, dtype=target.dtype: np.asarray(
          self.read_slice(name, index), dtype
        ),
      )
    return out


class _OrbaxTreeReader(Reader):
  """Parameters held in an orbax PyTree checkpoint, read by orbax's partial restore.

  Subclasses say where the parameters sit in the tree: `_nest` turns flat
  names into that tree, `_unnest` turns a restored tree back into flat names.
  """

  def __init__(self, path: str, state_dir: str):
    super().__init__(path)
    self._state_dir = state_dir
    tree = _tree_handler().metadata(epath.Path(state_dir)).tree
    self._meta = self._unnest(tree)

  def _nest(self, flat: dict[str, Any]) -> dict[str, Any]:
    raise NotImplementedError

  def _unnest(self, tree: dict[str, Any]) -> dict[str, Any]:
    raise NotImplementedError

  def shapes(self) -> dict[str, tuple[int, ...]]:
    return {name: tuple(meta.shape) for name, meta in self._meta.items()}

  def _restore(self, items: dict[str, Any], restore_args: dict[str, Any]) -> dict[str, Any]:
    """Restores only the named parameters (orbax partial restore)."""
    restored = _tree_handler().restore(
      epath.Path(self._state_dir),
      args=ocp.args.PyTreeRestore(
        item=self._nest(items), restore_args=self._nest(restore_args), partial_restore=True
      ),
    )
    return self._unnest(restored)

  def read_array(self, name: str) -> np.ndarray:
    restored = self._restore(
      {name: np.zeros((), self._meta[name].dtype)}, {name: ocp.RestoreArgs(restore_type=np.ndarray)}
    )
    return np.asarray(restored[name])

  def read(self, targets: dict[str, jax.ShapeDtypeStruct]) -> dict[str, jax.Array]:
    return self._restore(
      targets,
      {
        name: ocp.ArrayRestoreArgs(sharding=t.sharding, dtype=t.dtype)
        for name, t in targets.items()
      },
    )


class OwnCheckpointReader(_OrbaxTreeReader):
  """This project's orbax checkpoints of a run that trained the model's weights."""

  def __init__(self, path: str):
    self.step_dir = _own_step_dir(path)
    super().__init__(path, os.path.join(self.step_dir, layout.STATE_ITEM))

  @staticmethod
  def detect(path: str) -> bool:
    step_dir = _own_step_dir(path, strict=False)
    return step_dir is not None and _orbax_tree_has(
      os.path.join(step_dir, layout.STATE_ITEM), "trainable"
    )

  def record(self) -> dict[str, Any]:
    """The run's JSON record at this step (base checkpoint, seed, what trains), or {}."""
    try:
      return dict(
        ocp.JsonCheckpointHandler().restore(epath.Path(self.step_dir) / layout.RECORD_ITEM)
      )
    except Exception:  # pylint: disable=broad-except
      return {}

  def _nest(self, flat):  # the train state's flat `trainable` dict, `params/`-prefixed
    return {"trainable": {PARAMS + n: v for n, v in flat.items()}}

  def _unnest(self, tree):
    return {k[len(PARAMS) :]: v for k, v in tree["trainable"].items() if k.startswith(PARAMS)}


def _tree_handler() -> ocp.PyTreeCheckpointHandler:
  """Reads an item directory (a step's `state/`) itself. orbax's Checkpointer reads step
  directories, and on an item directory it warns twice that the step's metadata file
  (`_CHECKPOINT_METADATA`, which is one level up) does not exist."""
  return ocp.PyTreeCheckpointHandler()


def _orbax_tree_has(directory: str, key: str) -> bool:
  """Whether the orbax PyTree checkpoint in `directory` has top-level `key`."""
  try:
    tree = _tree_handler().metadata(epath.Path(directory)).tree
  except Exception:  # pylint: disable=broad-except
    return False  # not an orbax checkpoint
  return isinstance(tree, dict) and key in tree


def _own_step_dir(path: str, strict: bool = True) -> Optional[str]:
  """The `checkpoints/<step>` directory `path` names: itself, or a run's latest one."""
  is_step = lambda d: os.path.isdir(os.path.join(d, layout.STATE_ITEM))
  for root in (layout.checkpoints_dir(path), path):
    if os.path.isdir(root):
      steps = [int(n) for n in os.listdir(root) if n.isdigit() and is_step(os.path.join(root, n))]
      if steps:
        return os.path.join(root, str(max(steps)))
  if is_step(path):
    return path
  if strict:
    raise FileNotFoundError(f"{path} holds no checkpoint of this project")
  return None


class HuggingFaceReader(Reader):
  """A transformers T5/mT5 directory: `config.json` and safetensors (one file or
  sharded with `model.safetensors.index.json`) or `pytorch_model.bin`.

  Names map through `huggingface.name_map`; HF's `[out, in]` matrices are read
  transposed, slice by slice (a safetensors slice reads only its bytes).
  """

  SAFETENSORS, INDEX, BIN = "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"

  def __init__(self, path: str):
    super().__init__(path)
    with open(os.path.join(path, "config.json")) as f:
      self.config = json.load(f)
    encoder_layers = self.config["num_layers"]
    decoder_layers = self.config.get("num_decoder_layers") or encoder_layers
    self._hf_names = {
      ours: hf for hf, ours in huggingface.name_map(encoder_layers, decoder_layers).items()
    }
    self._files: dict[str, str] = {}  # HF name -> file holding it
    self._state: Optional[dict[str, Any]] = None  # pytorch_model.bin, memory-mapped
    if os.path.exists(os.path.join(path, self.INDEX)):
      with open(os.path.join(path, self.INDEX)) as f:
        self._files = {k: os.path.join(path, v) for k, v in json.load(f)["weight_map"].items()}
    elif os.path.exists(os.path.join(path, self.SAFETENSORS)):
      file = os.path.join(path, self.SAFETENSORS)
      with safetensors.safe_open(file, framework="np") as f:
        self._files = {k: file for k in f.keys()}
    else:
      self._state = _load_torch_state(os.path.join(path, self.BIN))
    held = set(self._state) if self._state is not None else set(self._files)
    # transformers 5 ties T5's lm_head to `shared` and saves only the latter;
    # T5.1.1 does not rescale the decoder output, original T5 (and configs
    # that say so) multiplies it by d_model**-0.5, folded into the kernel here.
    if "lm_head.weight" not in held:
      self._hf_names[LOGITS] = "shared.weight"
    scales = self.config.get(
      "scale_decoder_outputs", self.config.get("tie_word_embeddings", True) is not False
    )
    self._logits_scale = self.config["d_model"] ** -0.5 if scales else None
    self._stored = {ours: hf for ours, hf in self._hf_names.items() if hf in held}

  @classmethod
  def detect(cls, path: str) -> bool:
    return os.path.isfile(os.path.join(path, "config.json")) and any(
      os.path.isfile(os.path.join(path, n)) for n in (cls.SAFETENSORS, cls.INDEX, cls.BIN)
    )

  def _hf_shape(self, hf_name: str) -> tuple[int, ...]:
    if self._state is not None:
      return tuple(self._state[hf_name].shape)
    with safetensors.safe_open(self._files[hf_name], framework="np") as f:
      return tuple(f.get_slice(hf_name).get_shape())

  def shapes(self) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for ours, hf in self._stored.items():
      shape = self._hf_shape(hf)
      shapes[ours] = shape[::-1] if huggingface.transposed(ours) else shape
    return shapes

  def read_slice(self, name: str, index: Index) -> np.ndarray:
    hf = self._stored[name]
    flip = huggingface.transposed(name)
    hf_index = tuple(reversed(index)) if flip else index
    if self._state is not None:
      value = self._state[hf][hf_index]
      value = (value.float() if value.dtype == _torch_bfloat16() else value).numpy()
    else:
      with safetensors.safe_open(self._files[hf], framework="np") as f:
        value = f.get_slice(hf)[hf_index]
    value = value.T if flip else value
    if name == LOGITS and self._logits_scale is not None:
      value = value.astype(np.float32) * np.float32(self._logits_scale)
    return value


def _torch_bfloat16():
  import torch  # pylint: disable=g-import-not-at-top

  return torch.bfloat16


def _load_torch_state(file: str) -> dict[str, Any]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
      f"reading {file} needs torch (pip install torch), or save the model "
      "with safetensors (save_pretrained's default)"
    ) from None
  return torch.load(file, map_location="cpu", mmap=True, weights_only=True)


class T5xReader(Reader):
  """A t5x checkpoint (`checkpoint_<step>/`, or a directory of them: the latest)."""

  def __init__(self, path: str):
    super().__init__(path)
    self._checkpoint = t5x.T5xCheckpoint(path)

  @staticmethod
  def detect(path: str) -> bool:
    return t5x.step_dir(path) is not None

  def shapes(self) -> dict[str, tuple[int, ...]]:
    return {name: self._checkpoint.shape(name) for name in self._checkpoint.names()}

  def read_slice(self, name: str, index: Index) -> np.ndarray:
    return self._checkpoint.read_slice(name, index)


class T5xOrbaxReader(_OrbaxTreeReader):
  """A checkpoint that t5x wrote with Orbax: `checkpoint_<step>/state/` is an orbax
  PyTree of t5x's state dict, `{"target": params, "state": {"step",
  "param_states"}}`. Orbax reads it without t5x (partial restore of `target`,
  onto the shardings); the optimizer state is never read."""

  def __init__(self, path: str):
    self.step_dir = _t5x_orbax_step_dir(path)
    super().__init__(path, os.path.join(self.step_dir, "state"))

  @staticmethod
  def detect(path: str) -> bool:
    return _t5x_orbax_step_dir(path) is not None

  def _nest(self, flat):  # t5x's nested parameter tree under `target`
    return {"target": tree_lib.unflatten(flat)}

  def _unnest(self, tree):
    return tree_lib.flatten(tree["target"])


def t5x_step(path: str) -> Optional[int]:
  """The step of a t5x checkpoint (legacy or Orbax): its `checkpoint_<step>` directory's
  number, the one `path` names or the latest inside it; None for every other format."""
  step_dir = t5x.step_dir(path)
  if step_dir is None and not storage.is_remote(path):
    step_dir = _t5x_orbax_step_dir(path)
  if step_dir is None:
    return None
  return t5x.step_number(step_dir.rstrip("/").rsplit("/", 1)[-1])


def _t5x_orbax_step_dir(path: str) -> Optional[str]:
  """`checkpoint_<step>` (itself, or the latest in `path`) holding a t5x orbax `state/`."""
  candidates = [path]
  if os.path.isdir(path):
    steps = sorted(
      (t5x.step_number(n), n) for n in os.listdir(path) if t5x.step_number(n) is not None
    )
    candidates = [os.path.join(path, steps[-1][1])] if steps else [path]
  for step_dir in candidates:
    state = os.path.join(step_dir, "state")
    if os.path.isdir(state) and _orbax_tree_has(state, "target"):
      return step_dir
  return None


# (detect, open) pairs, tried in order.
READERS: list[tuple[Callable[[str], bool], Callable[[str], Reader]]] = [
  (OwnCheckpointReader.detect, OwnCheckpointReader),
  (HuggingFaceReader.detect, HuggingFaceReader),
  (T5xReader.detect, T5xReader),
  (T5xOrbaxReader.detect, T5xOrbaxReader),
]


def open_checkpoint(path: str) -> Reader:
  """The reader for INITIAL_CHECKPOINT_PATH `path`, detected from its contents.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: no reader recognizes it.
    storage.StorageError: a gs:// path could not be read.
  """
  try:
    for detect, open_fn in READERS:  # each looks for its own files, cheaply
      if detect(path):
        return open_fn(path)
    if not storage.exists(path):  # (on gs:// a listing: only to say what is wrong)
      raise FileNotFoundError(
        f"INITIAL_CHECKPOINT_PATH {path} does not exist; give the "
        "directory of a checkpoint, or None for a random model"
      )
  except storage.StorageError as e:
    raise storage.StorageError(
      f"INITIAL_CHECKPOINT_PATH {path} could not be read ({e}); check the network and "
      "credentials, or point tensorstore at another GCS endpoint with "
      "TENSORSTORE_GCS_HTTP_URL"
    ) from None
  raise ValueError(
    f"INITIAL_CHECKPOINT_PATH {path} is not a checkpoint format this version "
    "reads (this project's: a MODEL_DIR, its checkpoints/ or "
    "checkpoints/<step>; Hugging Face: config.json with model.safetensors, "
    "a sharded model.safetensors.index.json, or pytorch_model.bin; t5x: "
    "checkpoint_<step>/ with its 'checkpoint' file, or with the state/ "
    "directory t5x writes with Orbax)"
  )


EMBEDDING = "token_embedder/embedding"


def prompt_only(path: str, reader: Reader) -> str:
  """'<path> holds no model weights ...': what to say of a prompt-tuning run's directory."""
  base = (
    reader.record().get("base_checkpoint", "unknown")
    if isinstance(reader, OwnCheckpointReader)
    else "unknown"
  )
  where = "a random model" if base is None else base
  return (
    f"{path} holds no model weights: it is a prompt-tuning run, which saves only its "
    f"prompt; the frozen model it was trained on is {where} (its INITIAL_CHECKPOINT_PATH)"
  )


def embedding_table(checkpoint_path: Optional[str]) -> Callable[[], np.ndarray]:
  """A zero-argument callable that reads the checkpoint's token embedding (float32).

  What configs/prompts/from_{class_labels,sampled_vocab,string}.gin give the
  initializers as `embeddings`: the table is read when the prompt is
  initialized, from INITIAL_CHECKPOINT_PATH in any format this module reads.
  """

  def read() -> np.ndarray:
    if checkpoint_path is None:
      raise ValueError(
        "this prompt initializer reads the embedding table from "
        "INITIAL_CHECKPOINT_PATH, which is None (a random model); give the "
        "frozen model's checkpoint, or use the configs/prompts/*_numpy.gin "
        "variant with EMBEDDING_FILE"
      )
    reader = open_checkpoint(checkpoint_path)
    if EMBEDDING not in reader.shapes():
      raise ValueError(f"INITIAL_CHECKPOINT_PATH {checkpoint_path} holds no {EMBEDDING}")
    return np.asarray(reader.read_array(EMBEDDING), np.float32)

  return read


def load_params(path: str, targets: dict[str, jax.ShapeDtypeStruct]) -> dict[str, jax.Array]:
  """Reads the parameters `targets` names from the checkpoint at `path`.

  Args:
    path: INITIAL_CHECKPOINT_PATH.
    targets: flat t5x name -> the model's shape, dtype (stored values are cast
      to it) and sharding.

  Returns:
    Flat name -> array on its sharding.

  Raises:
    ValueError: a parameter the model needs is missing from the checkpoint, or
      has another shape there (the message names it and both shapes).
  """
  reader = open_checkpoint(path)
  stored = reader.shapes()
  missing = sorted(set(targets) - set(stored))
  if missing:
    if not stored:
      raise ValueError(f"INITIAL_CHECKPOINT_PATH {prompt_only(path, reader)}")
    raise ValueError(
      f"INITIAL_CHECKPOINT_PATH {path} lacks {len(missing)} of the model's "
      f"parameters, e.g. {missing[0]!r}; does the gin config (layers, "
      "SCAN_LAYERS) describe the checkpoint's model?"
    )
  for name, target in sorted(targets.items()):
    if tuple(stored[name]) != tuple(target.shape):
      raise ValueError(
        f"{name} has shape {tuple(stored[name])} in INITIAL_CHECKPOINT_PATH "
        f"{path}, but the gin config's model wants {tuple(target.shape)}; set "
        "the model's dimensions (EMBED_DIM, NUM_HEADS, HEAD_DIM, MLP_DIM, "
        "NUM_EMBEDDINGS, ...) to the checkpoint's"
      )
  return reader.read(targets)
