"""t5x's legacy checkpoint format (version 3): a msgpack tree with inline arrays and zarr specs.

`checkpoint_<step>/checkpoint` is flax msgpack of

    {"version": 3,
     "optimizer": {"target": <parameter tree>,
                   "state": {"step": ..., "param_states": <optimizer tree>}}}

where each leaf is an inline array (msgpack extension type 1, payload
`[shape, dtype name, C-order bytes]`: flax's own serialization) or a
tensorstore spec `{"driver": "zarr", "kvstore": {"driver": "file" | "gfile" |
"gcs", "path": "target.encoder.layers_0.attention.key.kernel"}, ...}` whose
path is relative to the checkpoint directory (older checkpoints keep it as a
top-level `"path"`; on GCS the kvstore names a placeholder bucket, see
`absolute_spec`). Zarr arrays (v2, gzip, C order) may be chunked with padded
edge chunks; tensorstore reads them slice by slice.

Local and gs:// checkpoints are read the same way, through `storage`.

`T5xCheckpoint` reads only `optimizer/target` (the parameters), by flat t5x
name (`encoder/layers_0/attention/key/kernel`), lazily: a zarr array is
opened when first asked for and only the requested slice is read.
"""

import copy
from typing import Any, Optional

from flax import serialization
import numpy as np
import tensorstore as ts

from prompt_tuning.checkpoints import storage
from prompt_tuning.checkpoints import tree

CHECKPOINT_FILE = "checkpoint"
_DRIVERS = ("file", "gfile", "gcs")


def step_number(name: str) -> Optional[int]:
  """`checkpoint_<step>` (t5x's step directory name) -> step; None for other names."""
  name = name.rstrip("/")
  prefix, _, number = name.partition("_")
  return int(number) if prefix == "checkpoint" and number.isdigit() else None


def step_dir(path: str) -> Optional[str]:
  """The `checkpoint_<step>` directory `path` names: itself, or the latest inside it."""
  path = path.rstrip("/")
  file = storage.join(path, CHECKPOINT_FILE)
  if storage.isfile(file) and _is_msgpack_tree(file):
    return path
  if storage.isdir(path):
    steps = [
      (step_number(n), n.rstrip("/")) for n in storage.listdir(path) if step_number(n) is not None
    ]
    for _, name in sorted(steps, reverse=True):
      if storage.isfile(storage.join(path, name, CHECKPOINT_FILE)):
        return storage.join(path, name)
  return None


def _is_msgpack_tree(file: str) -> bool:
  head = storage.read_bytes(file, length=1)
  # A msgpack map: fixmap (0x80-0x8f), map16 (0xde) or map32 (0xdf).
  return bool(head) and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF))


def _is_spec(value: Any) -> bool:
  return isinstance(value, dict) and "driver" in value and "kvstore" in value


def absolute_spec(spec: dict[str, Any], directory: str) -> dict[str, Any]:
  """A stored zarr spec, opened where the checkpoint now is (as t5x's reader does).

  t5x stores each array's path relative to the step directory, either as
  `kvstore.path` (tensorstore >= 0.1.14) or as a top-level `path` (older
  checkpoints), and on GCS with a placeholder bucket (`t5x-dummy-bucket`) so the
  checkpoint can move. The bucket and the directory therefore always come from
  `directory`: a `gcs` spec read from a local copy becomes a file, a `file` or
  `gfile` spec under a gs:// directory reads from that bucket. An absolute
  stored path is kept.

  Raises:
    ValueError: a driver t5x never writes, or a spec without a path.
  """
  spec = copy.deepcopy(spec)
  kvstore = spec["kvstore"]
  if kvstore.get("driver") not in _DRIVERS:
    raise ValueError(
      f"t5x checkpoint array in {directory} has kvstore driver "
      f"{kvstore.get('driver')!r}; t5x writes {', '.join(_DRIVERS)}"
    )
  if "path" in kvstore:
    relative = kvstore["path"]
  elif "path" in spec:
    relative = spec.pop("path")
  else:
    raise ValueError(
      f"t5x checkpoint array spec in {directory} has no path (neither "
      f"kvstore.path nor path): {spec}"
    )
  spec["kvstore"] = storage.kvstore_spec(storage.join(directory, relative))
  spec.pop("metadata", None)  # the stored .zarray is the truth; open it as it is
  return spec


class T5xCheckpoint:
  """The parameters of a t5x legacy checkpoint, by flat name; see the module docstring."""

  def __init__(self, path: str):
    directory = step_dir(path)
    if directory is None:
      raise FileNotFoundError(
        f"{path} holds no t5x checkpoint (a checkpoint_<step> directory "
        f"with a '{CHECKPOINT_FILE}' file)"
      )
    self.directory = directory
    contents = serialization.msgpack_restore(
      storage.read_bytes(storage.join(directory, CHECKPOINT_FILE))
    )
    try:
      target = contents["optimizer"]["target"]
    except (KeyError, TypeError):
      raise ValueError(
        f"{directory}/{CHECKPOINT_FILE} has no optimizer/target tree; is it a t5x checkpoint?"
      ) from None
    self.version = contents.get("version")
    self._leaves = tree.flatten(target, is_leaf=_is_spec)
    self._stores: dict[str, Any] = {}

  def _store(self, name: str):
    if name not in self._stores:
      spec = absolute_spec(self._leaves[name], self.directory)
      try:
        self._stores[name] = ts.open(spec, open=True, read=True).result()
      except Exception as e:  # pylint: disable=broad-except
        where = storage.join(self.directory, _stored_path(self._leaves[name]))
        raise storage.StorageError(
          f"could not open {name} of the t5x checkpoint at {where}: {storage.describe(e)}"
        ) from None
    return self._stores[name]

  def names(self) -> list[str]:
    return sorted(self._leaves)

  def shape(self, name: str) -> tuple[int, ...]:
    leaf = self._leaves[name]
    return tuple(self._store(name).shape) if _is_spec(leaf) else tuple(np.shape(leaf))

  def read_slice(self, name: str, index: tuple[slice, ...]) -> np.ndarray:
    leaf = self._leaves[name]
    if _is_spec(leaf):
      return np.asarray(self._store(name)[index].read().result())
    return np.asarray(leaf)[index]


def _stored_path(spec: dict[str, Any]) -> str:
  return spec["kvstore"].get("path") or spec.get("path", "")
