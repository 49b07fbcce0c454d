"""Local and gs:// paths through one mechanism: tensorstore's key-value stores.

Whatever this project reads from a t5x checkpoint, the msgpack `checkpoint`
file, the listing of `checkpoint_<step>` directories and the zarr arrays, goes
through tensorstore: the `file` driver for local paths, the `gcs` driver for
`gs://bucket/path`. So one set of settings points every remote read at an
endpoint: tensorstore's own environment variables (see docs/training.md,
"Checkpoints on gs://"), e.g. a local GCS emulator in the tests.

A failed remote read raises `StorageError` naming the path, on one line.
"""

import contextlib
import os
import posixpath
from typing import Any, Iterator, Optional, Union

import tensorstore as ts

GS = "gs://"
# tensorstore retries a failing GCS request 32 times with backoff up to 32 s
# by default, so an unreachable store (offline, wrong endpoint) hangs for many
# minutes. These retries still ride out transient errors and give up within
# about 10 s.
GCS_RETRIES = {"max_retries": 8, "initial_delay": "100ms", "max_delay": "2s"}


class StorageError(OSError):
  """A path could not be read (unreachable store, no credentials, ...)."""


@contextlib.contextmanager
def replaced_atomically(path: str) -> Iterator[str]:
  """Yields a temporary path beside local `path`; what the block writes there becomes `path`
  in one rename when it ends, or is removed when it raises (a full disk): readers see the
  old file or the whole new one, never part of one, and a failed write leaves nothing."""
  temporary = f"{path}.tmp.{os.getpid()}"
  try:
    yield temporary
    os.replace(temporary, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(temporary)
    raise


def write_file(path: str, data: Union[str, bytes], mode: Optional[int] = None) -> None:
  """Writes local `path` whole, atomically (`replaced_atomically`): text as it is (no newline
  translation), or bytes; `mode` sets its permission bits."""
  with replaced_atomically(path) as temporary:
    with (
      open(temporary, "wb")
      if isinstance(data, bytes)
      else open(temporary, "w", encoding="utf-8", newline="") as f
    ):
      f.write(data)
    if mode is not None:
      os.chmod(temporary, mode)


def is_remote(path: str) -> bool:
  return os.fspath(path).startswith(GS)


def split_gs(path: str) -> tuple[str, str]:
  """`gs://bucket/a/b` -> (`bucket`, `a/b`)."""
  bucket, _, key = path[len(GS) :].partition("/")
  if not bucket:
    raise ValueError(f"{path} names no bucket; write gs://BUCKET/PATH")
  return bucket, key.strip("/")


def join(directory: str, *parts: str) -> str:
  """Joins path components, posix-style on gs:// (an absolute part replaces what precedes)."""
  if is_remote(directory) or any(is_remote(p) for p in parts):
    return posixpath.join(directory, *parts)
  return os.path.join(directory, *parts)


def kvstore_spec(path: str) -> dict[str, Any]:
  """tensorstore's kvstore spec of a local or gs:// path."""
  if is_remote(path):
    bucket, key = split_gs(path)
    return {"driver": "gcs", "bucket": bucket, "path": key, "gcs_request_retries": GCS_RETRIES}
  return {"driver": "file", "path": os.path.abspath(path)}


def describe(error: BaseException) -> str:
  """An error's first line (its type's name when it says nothing): what one-line errors show."""
  return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _directory_store(directory: str) -> Any:
  """The kvstore whose keys are the entries below `directory`."""
  spec = kvstore_spec(directory)
  if spec["path"] and not spec["path"].endswith("/"):
    spec["path"] += "/"
  try:
    return ts.KvStore.open(spec).result()
  except Exception as e:  # pylint: disable=broad-except
    raise StorageError(f"could not open {directory}: {describe(e)}") from None


def read_bytes(path: str, length: Optional[int] = None) -> bytes:
  """The contents of the file (object) at `path`: all of it, or its first `length` bytes.

  Raises:
    FileNotFoundError: nothing at `path`.
    StorageError: the store could not be read.
  """
  if not is_remote(path):
    with open(path, "rb") as f:
      return f.read(-1 if length is None else length)
  directory, name = posixpath.split(path.rstrip("/"))
  byte_range = None if length is None else slice(0, length)
  try:
    result = _directory_store(directory).read(name, byte_range=byte_range).result()
  except StorageError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise StorageError(f"could not read {path}: {describe(e)}") from None
  if result.state != "value":
    raise FileNotFoundError(f"{path} does not exist")
  return bytes(result.value)


def _keys_below(directory: str, key_range: Any = None) -> list[str]:
  try:
    return [
      k.decode() if isinstance(k, bytes) else k
      for k in _directory_store(directory).list(key_range).result()
    ]
  except StorageError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise StorageError(f"could not list {directory}: {describe(e)}") from None


def listdir(path: str) -> list[str]:
  """The names directly below the directory `path` (gs://: the first component of each key)."""
  if not is_remote(path):
    return os.listdir(path)
  return sorted({key.split("/", 1)[0] for key in _keys_below(path) if key})


def isdir(path: str) -> bool:
  if not is_remote(path):
    return os.path.isdir(path)
  return bool(_keys_below(path))


def isfile(path: str) -> bool:
  if not is_remote(path):
    return os.path.isfile(path)
  directory, name = posixpath.split(path.rstrip("/"))
  only = ts.KvStore.KeyRange(inclusive_min=name, exclusive_max=name + "\x00")
  return name in _keys_below(directory, only)


def exists(path: str) -> bool:
  return isfile(path) or isdir(path)
