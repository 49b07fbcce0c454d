"""storage.write_file / replaced_atomically: the one way this project writes a whole file."""

import os
import stat

import pytest

from prompt_tuning.checkpoints import storage


def test_a_file_is_replaced_whole_with_its_bytes_text_and_mode(tmp_path):
  path = tmp_path / "out.txt"
  path.write_text("old\n")
  storage.write_file(str(path), "a\r\nb ü\n", mode=0o755)
  assert path.read_bytes() == "a\r\nb ü\n".encode()  # no newline translation, UTF-8
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o755
  storage.write_file(str(path), b"\x00\x01")
  assert path.read_bytes() == b"\x00\x01"
  assert os.listdir(tmp_path) == ["out.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
  """A write that fails midway (a full disk) loses nothing and leaves nothing."""
  path = tmp_path / "model.safetensors"
  path.write_bytes(b"complete")
  with pytest.raises(OSError, match="No space left"):
    with storage.replaced_atomically(str(path)) as temporary:
      with open(temporary, "wb") as f:
        f.write(b"par")
      raise OSError(28, "No space left on device")
  assert path.read_bytes() == b"complete"
  assert os.listdir(tmp_path) == ["model.safetensors"]
