"""INITIAL_CHECKPOINT_PATH: this project's checkpoints read onto a mesh, with clear errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prompt_tuning.checkpoints import variables as variables_lib
from prompt_tuning.checkpoints import readers
from prompt_tuning.models import prompt_init
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from prompt_tuning.checkpoints import checkpointer
from prompt_tuning.training import optimizers
from prompt_tuning import partitioning
from prompt_tuning.training import train_state
from prompt_tuning.training import trainable

from tests.helpers import hf_reference

CFG = hf_reference.TINY


def _model(cfg=CFG, prompt_length=3):
  return t5.Transformer(
    cfg, prompts.Prompt(prompt_length, cfg.emb_dim, prompt_init.random_uniform(0.5))
  )


def _save_run(model_dir, what_trains, seed=5, step=3):
  """A run's checkpoint at `step`, as the trainer writes it; returns its variables."""
  part = partitioning.Partitioner(1)
  variables, _ = variables_lib.init_variables(_model(), part, None, seed)
  train, _ = trainable.partition(variables, what_trains)
  # Move the weights away from the random init so that loading them is visible.
  train = {k: v + 0.25 for k, v in train.items()}
  state = train_state.create(train, optimizers.adafactor(), seed)
  state = state.replace(step=jnp.asarray(step, jnp.int32))
  checkpointer.Checkpointer(str(model_dir)).save(state, {"data_position": step})
  return trainable.flatten(variables), train


def test_model_tuned_checkpoint_loads_bitwise_onto_model_shards(tmp_path):
  _, saved = _save_run(tmp_path / "pretrain", "all")
  part = partitioning.Partitioner(4)  # vocab, heads and mlp split 4 ways
  for path in (
    tmp_path / "pretrain",
    tmp_path / "pretrain" / "checkpoints",
    tmp_path / "pretrain" / "checkpoints" / "3",
  ):
    variables, shardings = variables_lib.init_variables(_model(), part, str(path), seed=11)
    flat, flat_shardings = trainable.flatten(variables), trainable.flatten(shardings)
    params = {k: v for k, v in flat.items() if k.startswith("params/")}
    assert set(params) == {k for k in saved if k.startswith("params/")}
    for name, value in params.items():
      np.testing.assert_array_equal(np.asarray(value), np.asarray(saved[name]))
      assert value.sharding.is_equivalent_to(flat_shardings[name], value.ndim), name
    embedding = params["params/token_embedder/embedding"]
    assert len(embedding.addressable_shards) == 8
    assert embedding.addressable_shards[0].data.shape == (CFG.vocab_size // 4, CFG.emb_dim)
  # The prompt is not read from the base checkpoint: it is the seed's random init.
  fresh, _ = variables_lib.init_variables(_model(), part, None, seed=11)
  np.testing.assert_array_equal(
    np.asarray(flat["prompt/encoder/prompt/prompt"]),
    np.asarray(trainable.flatten(fresh)["prompt/encoder/prompt/prompt"]),
  )


def test_stored_values_are_cast_to_the_parameter_dtype(tmp_path):
  _, saved = _save_run(tmp_path / "run", "all")
  model = _model(dataclasses.replace(CFG, param_dtype="bfloat16"))
  variables, _ = variables_lib.init_variables(
    model, partitioning.Partitioner(1), str(tmp_path / "run"), seed=0
  )
  kernel = variables["params"]["decoder"]["logits_dense"]["kernel"]
  assert kernel.dtype == jnp.bfloat16
  np.testing.assert_array_equal(
    np.asarray(kernel), np.asarray(saved["params/decoder/logits_dense/kernel"]).astype(jnp.bfloat16)
  )


def test_dimension_mismatch_names_the_variable_and_both_shapes(tmp_path):
  _save_run(tmp_path / "run", "all")
  wider = _model(dataclasses.replace(CFG, mlp_dim=64))
  with pytest.raises(
    ValueError,
    match=r"decoder/layers_0/mlp/wi_0/kernel has shape \(32, 48\) "
    r"in INITIAL_CHECKPOINT_PATH .* the gin config's model wants \(32, 64\)",
  ):
    variables_lib.init_variables(wider, partitioning.Partitioner(1), str(tmp_path / "run"), seed=0)
  deeper = _model(dataclasses.replace(CFG, num_encoder_layers=3))
  with pytest.raises(ValueError, match="lacks 9 of the model's parameters, e.g. 'encoder/layers_2"):
    variables_lib.init_variables(deeper, partitioning.Partitioner(1), str(tmp_path / "run"), seed=0)


def test_bad_paths_are_clear_errors(tmp_path):
  _save_run(tmp_path / "prompt_run", "prompt")
  with pytest.raises(ValueError, match="holds no model weights"):
    variables_lib.init_variables(
      _model(), partitioning.Partitioner(1), str(tmp_path / "prompt_run"), seed=0
    )
  with pytest.raises(FileNotFoundError, match="INITIAL_CHECKPOINT_PATH .*/nowhere does not exist"):
    readers.open_checkpoint(str(tmp_path / "nowhere"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="is not a checkpoint format this version reads"):
    readers.open_checkpoint(str(tmp_path / "empty"))


class _ArrayReader(readers.Reader):
  """A format read slice by slice, as the t5x and Hugging Face readers will be."""

  def __init__(self, arrays):
    super().__init__("<memory>")
    self.arrays, self.requests = arrays, []

  def shapes(self):
    return {k: v.shape for k, v in self.arrays.items()}

  def read_slice(self, name, index):
    self.requests.append((name, index))
    return self.arrays[name][index]


def test_slice_readers_read_each_shard_not_the_whole_array(monkeypatch):
  rng = np.random.default_rng(0)
  table = rng.normal(size=(64, 32)).astype(np.float32)
  reader = _ArrayReader({"token_embedder/embedding": table})
  monkeypatch.setattr(readers, "open_checkpoint", lambda path: reader)
  part = partitioning.Partitioner(4)
  sharding = part.sharding("vocab", "embed")
  target = jax.ShapeDtypeStruct((64, 32), jnp.bfloat16, sharding=sharding)
  loaded = readers.load_params("<memory>", {"token_embedder/embedding": target})
  value = loaded["token_embedder/embedding"]
  assert value.sharding == sharding and value.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(value), table.astype(jnp.bfloat16))
  # Each device asked for its 16 vocabulary rows only, never the whole table.
  assert reader.requests and all(
    (index[0].stop - index[0].start) == 16 for _, index in reader.requests
  )
