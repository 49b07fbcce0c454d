"""INITIAL_CHECKPOINT_PATH as a Hugging Face T5 directory: read bitwise onto the mesh."""

import dataclasses
import json
import os

import numpy as np
from safetensors import numpy as safetensors_numpy
import pytest
import torch

from prompt_tuning.checkpoints import variables as variables_lib
from prompt_tuning.checkpoints import readers
from prompt_tuning.models import prompt_init
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from prompt_tuning import partitioning
from prompt_tuning.training import trainable
from tests.helpers import hf_reference

CFG = hf_reference.TINY


@pytest.fixture(scope="module")
def hf_model():
  return hf_reference.random_hf_model(CFG, seed=3)


def _save(model, directory, kind):
  if kind == "safetensors":
    model.save_pretrained(directory)
  elif kind == "sharded":
    model.save_pretrained(directory, max_shard_size="20KB")
    assert os.path.exists(os.path.join(directory, "model.safetensors.index.json"))
  else:  # pytorch_model.bin, as older checkpoints on the hub are
    model.config.save_pretrained(directory)
    torch.save(model.state_dict(), os.path.join(directory, "pytorch_model.bin"))
  return str(directory)


def _model(cfg=CFG):
  return t5.Transformer(cfg, prompts.Prompt(3, cfg.emb_dim, prompt_init.random_uniform(0.5)))


@pytest.mark.parametrize("kind", ["safetensors", "sharded", "bin"])
def test_hugging_face_weights_load_bitwise_onto_model_shards(tmp_path, hf_model, kind):
  path = _save(hf_model, tmp_path / kind, kind)
  part = partitioning.Partitioner(4)
  variables, shardings = variables_lib.init_variables(_model(), part, path, seed=0)
  expected = trainable.flatten({"params": hf_reference.params_of(hf_model, CFG)})
  flat, flat_shardings = trainable.flatten(variables), trainable.flatten(shardings)
  params = {k: v for k, v in flat.items() if k.startswith("params/")}
  assert set(params) == set(expected)
  for name, value in params.items():
    np.testing.assert_array_equal(np.asarray(value), expected[name], err_msg=name)
    assert value.sharding.is_equivalent_to(flat_shardings[name], value.ndim), name
  assert flat["prompt/encoder/prompt/prompt"].shape == (3, CFG.emb_dim)


def test_hugging_face_dimension_mismatch_names_both_shapes(tmp_path, hf_model):
  path = _save(hf_model, tmp_path / "hf", "safetensors")
  wider = _model(dataclasses.replace(CFG, mlp_dim=64))
  with pytest.raises(
    ValueError,
    match=r"decoder/layers_0/mlp/wi_0/kernel has shape \(32, 48\) "
    r"in INITIAL_CHECKPOINT_PATH .* the gin config's model wants \(32, 64\)",
  ):
    variables_lib.init_variables(wider, partitioning.Partitioner(1), path, seed=0)
  with open(os.path.join(path, "config.json")) as f:
    assert json.load(f)["d_ff"] == 48
  assert isinstance(readers.open_checkpoint(path), readers.HuggingFaceReader)


def test_logits_kernel_of_an_original_t5_folds_in_its_output_scale(tmp_path, hf_model):
  """Original T5 (tied, decoder output scaled by d_model**-0.5) as an untied T5.1.1 layer.

  A tied checkpoint stores no `lm_head.weight` (what transformers 5 saves for a tied T5).
  """
  path = _save(hf_model, tmp_path / "t5", "safetensors")
  weights = os.path.join(path, "model.safetensors")
  tensors = safetensors_numpy.load_file(weights)
  del tensors["lm_head.weight"]
  safetensors_numpy.save_file(tensors, weights, metadata={"format": "pt"})
  config_file = os.path.join(path, "config.json")
  with open(config_file) as f:
    config = json.load(f)
  config["scale_decoder_outputs"] = True
  config["tie_word_embeddings"] = True
  with open(config_file, "w") as f:
    json.dump(config, f)
  variables, _ = variables_lib.init_variables(_model(), partitioning.Partitioner(1), path, seed=0)
  shared = hf_model.shared.weight.detach().numpy()
  np.testing.assert_array_equal(
    np.asarray(variables["params"]["decoder"]["logits_dense"]["kernel"]),
    shared.T * np.float32(CFG.emb_dim**-0.5),
  )
