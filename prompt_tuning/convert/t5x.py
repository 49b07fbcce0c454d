"""t5x's legacy checkpoint format (version 3): a msgpack tree with inline arrays and zarr specs.

`checkpoint_<step>/checkpoint` is flax msgpack of

    {"version": 3,
     "optimizer": {"target": <parameter tree>,
                   "state": {"step": ..., "param_states": <optimizer tree>}}}

where each leaf is an inline array (msgpack extension type 1, payload
`[shape, dtype name, C-order bytes]`: flax's own serialization) or a
tensorstore spec `{"driver": "zarr", "kvstore": {"driver": "file" | "gfile" |
"gcs", "path": "target.encoder.layers_0.attention.key.kernel"}, ...}` whose
path is relative to the checkpoint directory. Zarr arrays (v2, gzip, C order)
may be chunked with padded edge chunks; tensorstore reads them slice by slice.

`T5xCheckpoint` reads only `optimizer/target` (the parameters), by flat t5x
name (`encoder/layers_0/attention/key/kernel`), lazily: a zarr array is
opened when first asked for and only the requested slice is read.
"""

import os
from typing import Any, Optional

from flax import serialization
import numpy as np
import tensorstore as ts
from tensorflow.io import gfile  # local paths and gs:// alike

CHECKPOINT_FILE = "checkpoint"


def step_dir(path: str) -> Optional[str]:
  """The `checkpoint_<step>` directory `path` names: itself, or the latest inside it."""
  file = os.path.join(path, CHECKPOINT_FILE)
  if gfile.exists(file) and not gfile.isdir(file) and _is_msgpack_tree(file):
    return path
  if gfile.isdir(path):
    steps = [(int(n.rstrip("/").split("_", 1)[1]), n.rstrip("/")) for n in gfile.listdir(path)
             if n.startswith("checkpoint_") and n.rstrip("/").split("_", 1)[1].isdigit()]
    for _, name in sorted(steps, reverse=True):
      if gfile.exists(os.path.join(path, name, CHECKPOINT_FILE)):
        return os.path.join(path, name)
  return None


def _is_msgpack_tree(file: str) -> bool:
  with gfile.GFile(file, "rb") as f:
    head = f.read(1)
  # A msgpack map: fixmap (0x80-0x8f), map16 (0xde) or map32 (0xdf).
  return bool(head) and (0x80 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in tree.items():
    name = f"{prefix}/{key}" if prefix else str(key)
    if isinstance(value, dict) and not _is_spec(value):
      out.update(_flatten(value, name))
    else:
      out[name] = value
  return out


def _is_spec(value: Any) -> bool:
  return isinstance(value, dict) and "driver" in value and "kvstore" in value


def _absolute_spec(spec: dict[str, Any], directory: str) -> dict[str, Any]:
  """The spec with its kvstore made absolute (t5x stores paths relative to the step dir)."""
  spec = dict(spec)
  kvstore = dict(spec["kvstore"])
  driver, path = kvstore.get("driver"), kvstore.get("path", "")
  if driver == "gcs" or path.startswith("gs://"):
    if path.startswith("gs://"):
      bucket, _, path = path[len("gs://"):].partition("/")
      kvstore["bucket"] = bucket
    elif "bucket" not in kvstore and directory.startswith("gs://"):
      bucket, _, base = directory[len("gs://"):].partition("/")
      kvstore["bucket"], path = bucket, f"{base}/{path}"
    kvstore.update(driver="gcs", path=path)
  else:  # 'file', or t5x's 'gfile' on a local path
    if not os.path.isabs(path):
      path = os.path.join(directory, path)
    kvstore = {"driver": "file", "path": path}
  spec["kvstore"] = kvstore
  spec.pop("metadata", None)  # the stored .zarray is the truth; open it as it is
  return spec


class T5xCheckpoint:
  """The parameters of a t5x legacy checkpoint, by flat name; see the module docstring."""

  def __init__(self, path: str):
    directory = step_dir(path)
    if directory is None:
      raise FileNotFoundError(f"{path} holds no t5x checkpoint (a checkpoint_<step> directory "
                              f"with a '{CHECKPOINT_FILE}' file)")
    self.directory = directory
    with gfile.GFile(os.path.join(directory, CHECKPOINT_FILE), "rb") as f:
      tree = serialization.msgpack_restore(f.read())
    try:
      target = tree["optimizer"]["target"]
    except (KeyError, TypeError):
      raise ValueError(f"{directory}/{CHECKPOINT_FILE} has no optimizer/target tree; is it a "
                       "t5x checkpoint?") from None
    self.version = tree.get("version")
    self._leaves = _flatten(target)
    self._stores: dict[str, Any] = {}

  def _store(self, name: str):
    if name not in self._stores:
      spec = _absolute_spec(self._leaves[name], self.directory)
      self._stores[name] = ts.open(spec, open=True, read=True).result()
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
