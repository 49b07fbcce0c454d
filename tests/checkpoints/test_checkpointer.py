"""Prompt-only checkpoints: small, exact on restore, kept N, numpy prompts beside them."""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from prompt_tuning.checkpoints import checkpointer
from prompt_tuning.training import optimizers
from prompt_tuning import partitioning
from prompt_tuning.training import train_state
from prompt_tuning.training import trainable
from tests.helpers import hf_reference

PATH = "prompt/encoder/prompt/prompt"


def _dir_size(path):
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _state(cfg, prompt_length, seed=0):
  model = t5.Transformer(cfg, prompts.Prompt(prompt_length, cfg.emb_dim))
  variables = jax.jit(
    lambda k: nn.meta.unbox(model.init(k, jnp.ones((1, 1), jnp.int32), jnp.ones((1, 1), jnp.int32)))
  )(jax.random.key(seed))
  train, _ = trainable.partition(variables, "prompt")
  tx = optimizers.adafactor()
  return train_state.create(train, tx, seed=3), tx


def test_small_size_prompt_checkpoint_is_small_and_restores_exactly(tmp_path):
  small = t5.T5Config()  # T5.1.1 Small: 77M frozen parameters.
  state, tx = _state(small, 100)
  state = state.replace(
    step=jnp.asarray(7, jnp.int32), trainable={PATH: state.trainable[PATH] + 1.0}
  )
  ckpt = checkpointer.Checkpointer(str(tmp_path / "run"))
  record = {"data_position": 224, "base_checkpoint": None, "init_seed": 0}
  assert ckpt.save(state, record) == 7
  assert ckpt.latest_step() == 7
  size = _dir_size(tmp_path / "run" / "checkpoints")
  assert size < 2 * 2**20, size  # the 77M-parameter model is not in it
  abstract = jax.eval_shape(lambda: state)
  restored, got_record = ckpt.restore(7, abstract)
  jax.tree_util.tree_map(np.testing.assert_array_equal, restored, state)
  assert got_record == record
  saved = np.load(
    tmp_path / "run" / "numpy_checkpoints" / "checkpoint_7" / "encoder.prompt.prompt.npy"
  )
  assert saved.shape == (100, 512) and saved.dtype == np.float32
  np.testing.assert_array_equal(saved, np.asarray(state.trainable[PATH]))


def test_keeps_n_and_restores_onto_shardings(tmp_path):
  state, _ = _state(hf_reference.TINY, 4)
  ckpt = checkpointer.Checkpointer(str(tmp_path), keep=2)
  for step in (1, 2, 3):
    ckpt.save(state.replace(step=jnp.asarray(step, jnp.int32)), {"data_position": step})
  assert ckpt.all_steps() == [2, 3]
  assert sorted(os.listdir(tmp_path / "numpy_checkpoints")) == ["checkpoint_2", "checkpoint_3"]
  part = partitioning.Partitioner(2)
  shardings = train_state.state_shardings(
    state, {PATH: part.sharding("prompt", "prompt_embed")}, part
  )
  restored, record = ckpt.restore(3, jax.eval_shape(lambda: state), shardings)
  assert record == {"data_position": 3}
  assert restored.trainable[PATH].sharding == shardings.trainable[PATH]
  np.testing.assert_array_equal(restored.trainable[PATH], state.trainable[PATH])


def test_keeping_n_model_tuning_checkpoints_without_a_prompt(tmp_path):
  model = t5.Transformer(hf_reference.TINY)  # no prompt: nothing numpy to write or prune
  variables = nn.meta.unbox(
    model.init(jax.random.key(0), jnp.ones((1, 1), jnp.int32), jnp.ones((1, 1), jnp.int32))
  )
  train, _ = trainable.partition(variables, "all")
  state = train_state.create(train, optimizers.adafactor(), seed=0)
  ckpt = checkpointer.Checkpointer(str(tmp_path), keep=1)
  for step in (1, 2):
    ckpt.save(state.replace(step=jnp.asarray(step, jnp.int32)), {"data_position": step})
  assert ckpt.all_steps() == [2]
  assert not os.path.exists(tmp_path / "numpy_checkpoints")


def test_unwritable_model_dir_is_a_clear_error(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("")  # a file where MODEL_DIR's parent should be: fails even for root
  with pytest.raises(PermissionError, match="MODEL_DIR .*a_file/run is not writable"):
    checkpointer.Checkpointer(str(blocker / "run"))


def test_a_relative_model_dir_saves_and_restores(tmp_path, monkeypatch):
  """The archives' rerun commands name MODEL_DIR relative to the repository (orbax wants
  absolute paths: the save failed at its first checkpoint)."""
  state, _ = _state(hf_reference.TINY, 4)
  monkeypatch.chdir(tmp_path)
  ckpt = checkpointer.Checkpointer(os.path.join("build", "rerun"))
  assert ckpt.save(state, {"data_position": 5}) == int(state.step)
  assert ckpt.model_dir == str(tmp_path / "build" / "rerun")
  restored, record = ckpt.restore(int(state.step), jax.eval_shape(lambda: state))
  assert record == {"data_position": 5}
  np.testing.assert_array_equal(restored.trainable[PATH], state.trainable[PATH])
