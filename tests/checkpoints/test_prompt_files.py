"""Prompt files in every accepted form, read for the model's initializers."""

import numpy as np
import pytest

from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import prompt_files
from prompt_tuning.models import prompt_init

E = 16
RNG = None  # from_array ignores its key


def test_prompt_file_reads_npy_and_names_it_in_shape_errors(tmp_path):
  value = np.random.default_rng(1).normal(size=(5, E)).astype(np.float32)
  path = tmp_path / "prompt.npy"
  np.save(path, value)
  init = prompt_init.from_array(prompt_files.prompt_file(str(path)))
  np.testing.assert_array_equal(init(RNG, (5, E)), value)
  with pytest.raises(
    ValueError,
    match=r"prompt file .*prompt.npy has shape \(5, 16\); "
    r"the config says PROMPT_LENGTH=100, EMBED_DIM=16",
  ):
    init(RNG, (100, E))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    prompt_init.from_array(prompt_files.prompt_file(str(tmp_path / "missing.npy")))(RNG, (5, E))


def test_a_run_directory_resolves_to_its_latest_numpy_prompt(tmp_path):
  run = tmp_path / "run"
  for step, fill in ((10, 1.0), (200, 2.0), (30, 3.0)):
    directory = layout.numpy_step_dir(str(run), step)
    (tmp_path / directory).mkdir(parents=True)
    np.save(f"{directory}/{layout.PROMPT_FILE_NAME}", np.full((3, E), fill, np.float32))
  for path in (run, run / layout.NUMPY_DIR):
    np.testing.assert_array_equal(
      prompt_files.load_prompt_file(str(path)), np.full((3, E), 2.0, np.float32)
    )
  np.testing.assert_array_equal(
    prompt_files.load_prompt_file(layout.numpy_step_dir(str(run), 30)),
    np.full((3, E), 3.0, np.float32),
  )


def test_npy_file_feeds_the_embedding_initializers(tmp_path):
  table = np.random.default_rng(0).normal(size=(100, E)).astype(np.float32)
  path = tmp_path / "embedding.npy"
  np.save(path, table)
  prompt = np.asarray(
    prompt_init.sampled_vocab(prompt_files.npy_file(str(path)), 100)(
      __import__("jax").random.key(0), (10, E)
    )
  )
  rows = {int(np.argmin(np.abs(table - row).sum(1))) for row in prompt}
  assert len(rows) == 10
  with pytest.raises(FileNotFoundError, match="missing.npy does not exist"):
    prompt_files.npy_file(str(tmp_path / "missing.npy"))()
