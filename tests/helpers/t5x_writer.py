"""A test writer of t5x's legacy checkpoint format, written from its description (not t5x's code).

`checkpoint_<step>/checkpoint` is flax msgpack of {"version": 3, "optimizer":
{"target": params, "state": {"step", "param_states"}}}; leaves of at least
`inline_below` elements go to zarr v2 arrays (gzip, C order, chunks that do
not divide the shape, so edge chunks are padded) referenced by tensorstore
specs; smaller ones are inline (msgpack extension type 1).

How t5x writes the spec depends on where the checkpoint is (`spec_form`):

* "file": a local checkpoint, `kvstore: {driver: file, path: <relative>}`;
* "gcs": on GCS, `kvstore: {driver: gcs, bucket: t5x-dummy-bucket, path:
  <relative>}` (the placeholder bucket keeps checkpoints movable; tensorstore
  >= 0.1.14 keeps the path inside the kvstore);
* "gcs_top_level_path": older GCS checkpoints, `kvstore: {driver: gcs, bucket:
  t5x-dummy-bucket}` with the relative path at the spec's top level;
* "absolute": a local `file` spec whose path is absolute.

The root may be `gs://bucket/dir`: arrays and the msgpack file then go to that
bucket through tensorstore's gcs driver directly (not through the reader's
storage module), whatever the stored specs say; a "file" spec there is a
checkpoint written locally and copied to GCS.
"""

import math
import os
import posixpath

from flax import serialization
import flax.linen as nn
import jax
import ml_dtypes
import numpy as np
import tensorstore as ts

DUMMY_BUCKET = "t5x-dummy-bucket"
SPEC_FORMS = ("file", "gcs", "gcs_top_level_path", "absolute")


def _zarr_dtype(dtype: np.dtype) -> str:
  return "bfloat16" if dtype.name == "bfloat16" else dtype.str


def _kvstore(location: str) -> dict:
  """Where a key really goes: a local path or gs://bucket/key, as a tensorstore kvstore."""
  if location.startswith("gs://"):
    bucket, _, key = location[len("gs://") :].partition("/")
    return {"driver": "gcs", "bucket": bucket, "path": key}
  return {"driver": "file", "path": location}


def _stored_spec(metadata: dict, dtype: np.dtype, key: str, location: str, spec_form: str) -> dict:
  spec = {"driver": "zarr", "dtype": dtype.name, "metadata": metadata}
  if spec_form == "file":
    spec["kvstore"] = {"driver": "file", "path": key}
  elif spec_form == "absolute":
    spec["kvstore"] = {"driver": "file", "path": location}
  elif spec_form == "gcs":
    spec["kvstore"] = {"driver": "gcs", "bucket": DUMMY_BUCKET, "path": key}
  elif spec_form == "gcs_top_level_path":
    spec["kvstore"] = {"driver": "gcs", "bucket": DUMMY_BUCKET}
    spec["path"] = key
  else:
    raise ValueError(f"spec_form must be one of {SPEC_FORMS}")
  return spec


def _join(directory: str, key: str) -> str:
  return (
    posixpath.join(directory, key)
    if directory.startswith("gs://")
    else os.path.join(directory, key)
  )


def _write_leaf(directory, key, value, inline_below, spec_form):
  if value.size < inline_below:
    return value
  chunks = [max(1, math.ceil(n / 2) + 1) if n > 2 else n for n in value.shape]
  metadata = {
    "chunks": chunks,
    "compressor": {"id": "gzip", "level": 1},
    "dtype": _zarr_dtype(value.dtype),
    "shape": list(value.shape),
    "order": "C",
  }
  location = _join(directory, key)
  store = ts.open(
    {"driver": "zarr", "kvstore": _kvstore(location), "metadata": metadata}, create=True
  ).result()
  store.write(value).result()
  return _stored_spec(metadata, value.dtype, key, location, spec_form)


def _walk(directory, tree, prefix, inline_below, spec_form):
  out = {}
  for name, value in tree.items():
    key = f"{prefix}.{name}"
    if isinstance(value, dict):
      out[name] = _walk(directory, value, key, inline_below, spec_form)
    else:
      out[name] = _write_leaf(directory, key, np.asarray(value), inline_below, spec_form)
  return out


def write(
  root: str,
  step: int,
  params: dict,
  param_states: dict,
  inline_below: int = 64,
  spec_form: str = "file",
) -> str:
  """Writes `root/checkpoint_<step>` (local or gs://); returns that directory."""
  directory = _join(root, f"checkpoint_{step}")
  if not directory.startswith("gs://"):
    os.makedirs(directory)
  tree = {
    "version": 3,
    "optimizer": {
      "target": _walk(directory, params, "target", inline_below, spec_form),
      "state": {
        "step": np.asarray(step, np.int32),
        "param_states": _walk(
          directory, param_states, "state.param_states", inline_below, spec_form
        ),
      },
    },
  }
  contents = serialization.msgpack_serialize(tree)
  if directory.startswith("gs://"):
    kvstore = _kvstore(_join(directory, "checkpoint"))
    ts.KvStore.open(kvstore).result().write("", contents).result()
  else:
    with open(os.path.join(directory, "checkpoint"), "wb") as f:
      f.write(contents)
  return directory


def random_params(model: nn.Module, seed: int = 7) -> dict:
  """A model's random `params` on the host, with one bfloat16 leaf (the relative-position
  table), as the checkpoints the tests write hold."""
  x = np.ones((1, 3), np.int32)
  params = jax.device_get(nn.meta.unbox(model.init(jax.random.key(seed), x, x)))["params"]
  table = params["encoder"]["relpos_bias"]["rel_embedding"]
  params["encoder"]["relpos_bias"]["rel_embedding"] = np.asarray(table).astype(ml_dtypes.bfloat16)
  return params
