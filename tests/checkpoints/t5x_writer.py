"""A test writer of t5x's legacy checkpoint format, written from its description (not t5x's code).

`checkpoint_<step>/checkpoint` is flax msgpack of {"version": 3, "optimizer":
{"target": params, "state": {"step", "param_states"}}}; leaves of at least
`inline_below` elements go to zarr v2 arrays (gzip, C order, chunks that do
not divide the shape, so edge chunks are padded) referenced by tensorstore
specs with paths relative to the step directory; smaller ones are inline
(msgpack extension type 1).
"""

import math
import os

from flax import serialization
import numpy as np
import tensorstore as ts


def _zarr_dtype(dtype: np.dtype) -> str:
  return "bfloat16" if dtype.name == "bfloat16" else dtype.str


def _write_leaf(directory: str, key: str, value: np.ndarray, inline_below: int):
  if value.size < inline_below:
    return value
  chunks = [max(1, math.ceil(n / 2) + 1) if n > 2 else n for n in value.shape]
  metadata = {"chunks": chunks, "compressor": {"id": "gzip", "level": 1},
              "dtype": _zarr_dtype(value.dtype), "shape": list(value.shape), "order": "C"}
  store = ts.open({"driver": "zarr", "kvstore": {"driver": "file",
                                                 "path": os.path.join(directory, key)},
                   "metadata": metadata}, create=True).result()
  store.write(value).result()
  return {"driver": "zarr", "dtype": value.dtype.name,
          "kvstore": {"driver": "file", "path": key}, "metadata": metadata}


def _walk(directory, tree, prefix, inline_below):
  out = {}
  for name, value in tree.items():
    key = f"{prefix}.{name}"
    if isinstance(value, dict):
      out[name] = _walk(directory, value, key, inline_below)
    else:
      out[name] = _write_leaf(directory, key, np.asarray(value), inline_below)
  return out


def write(root: str, step: int, params: dict, param_states: dict, inline_below: int = 64) -> str:
  """Writes `root/checkpoint_<step>`; returns that directory."""
  directory = os.path.join(root, f"checkpoint_{step}")
  os.makedirs(directory)
  tree = {"version": 3, "optimizer": {
      "target": _walk(directory, params, "target", inline_below),
      "state": {"step": np.asarray(step, np.int32),
                "param_states": _walk(directory, param_states, "state.param_states",
                                      inline_below)}}}
  with open(os.path.join(directory, "checkpoint"), "wb") as f:
    f.write(serialization.msgpack_serialize(tree))
  return directory
