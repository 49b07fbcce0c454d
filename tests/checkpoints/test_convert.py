"""scripts/convert_checkpoint.py: ours -> Hugging Face -> ours is bitwise; HF and t5x -> ours."""

import logging

import flax.linen as nn
import jax
import ml_dtypes
import numpy as np
import pytest
import torch
import transformers

from prompt_tuning.checkpoints import tree
from prompt_tuning.checkpoints import convert
from prompt_tuning.models import t5
from scripts import convert_checkpoint
from tests.helpers import hf_reference
from tests.helpers import t5x_writer

CFG = hf_reference.TINY


def _random_params(dtype=np.float32):
  x = np.ones((1, 3), np.int32)
  params = jax.device_get(nn.meta.unbox(t5.Transformer(CFG).init(jax.random.key(1), x, x)))
  flat = tree.flatten(params["params"])
  return {k: np.asarray(v).astype(dtype) for k, v in flat.items()}


def _assert_same(a, b):
  assert sorted(a) == sorted(b)
  for name in a:
    assert a[name].dtype == b[name].dtype, name
    np.testing.assert_array_equal(
      np.ascontiguousarray(a[name]).view(np.uint8),
      np.ascontiguousarray(b[name]).view(np.uint8),
      err_msg=name,
    )


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16], ids=["float32", "bfloat16"])
def test_ours_to_huggingface_and_back_is_bitwise(tmp_path, caplog, dtype):
  params = _random_params(dtype)
  convert.to_own(params, str(tmp_path / "ours"))
  caplog.set_level(logging.WARNING)
  assert (
    convert_checkpoint.main(
      [
        f"--input={tmp_path / 'ours'}",
        f"--output={tmp_path / 'hf'}",
        "--to=huggingface",
        f"--relative_attention_max_distance={CFG.relative_attention_max_distance}",
      ]
    )
    == 0
  )
  assert (
    convert_checkpoint.main(
      [f"--input={tmp_path / 'hf'}", f"--output={tmp_path / 'back'}", "--to=ours"]
    )
    == 0
  )
  _assert_same(convert.read_all(str(tmp_path / "ours")), params)
  _assert_same(convert.read_all(str(tmp_path / "back")), params)
  # Reading a checkpoint warned twice that orbax's step metadata file "does not exist".
  assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_transformers_serves_the_converted_model_with_its_untied_logits(tmp_path):
  params = _random_params()
  convert.to_own(params, str(tmp_path / "ours"))
  convert_checkpoint.main(
    [
      f"--input={tmp_path / 'ours'}",
      f"--output={tmp_path / 'hf'}",
      "--to=huggingface",
      f"--relative_attention_max_distance={CFG.relative_attention_max_distance}",
    ]
  )
  hf = transformers.T5ForConditionalGeneration.from_pretrained(str(tmp_path / "hf")).eval()
  np.testing.assert_array_equal(
    hf.lm_head.weight.detach().numpy(), params["decoder/logits_dense/kernel"].T
  )
  assert not np.array_equal(hf.lm_head.weight.detach().numpy(), hf.shared.weight.detach().numpy())
  rng = np.random.default_rng(0)
  inputs = hf_reference.random_tokens(rng, 3, 9, CFG.vocab_size)
  decoder_inputs = rng.integers(0, CFG.vocab_size, size=(3, 5)).astype(np.int32)
  ours = t5.Transformer(CFG).apply({"params": tree.unflatten(params)}, inputs, decoder_inputs)
  with torch.no_grad():
    theirs = hf(
      input_ids=torch.from_numpy(inputs.astype(np.int64)),
      attention_mask=torch.from_numpy((inputs > 0).astype(np.int64)),
      decoder_input_ids=torch.from_numpy(decoder_inputs.astype(np.int64)),
    ).logits
  np.testing.assert_allclose(np.asarray(ours), theirs.numpy(), atol=1e-4)


def test_huggingface_and_t5x_to_ours_keep_every_array(tmp_path):
  hf = hf_reference.random_hf_model(CFG, seed=2)
  hf.save_pretrained(tmp_path / "hf")
  assert (
    convert_checkpoint.main(
      [f"--input={tmp_path / 'hf'}", f"--output={tmp_path / 'a'}", "--to=ours"]
    )
    == 0
  )
  _assert_same(convert.read_all(str(tmp_path / "a")), convert.read_all(str(tmp_path / "hf")))

  params = _random_params()
  t5x_writer.write(str(tmp_path / "t5x"), 7, tree.unflatten(params), {})
  assert (
    convert_checkpoint.main(
      [f"--input={tmp_path / 't5x'}", f"--output={tmp_path / 'b'}", "--to=ours"]
    )
    == 0
  )
  _assert_same(convert.read_all(str(tmp_path / "b")), params)


def test_conversion_errors_are_one_line(tmp_path, capsys):
  assert (
    convert_checkpoint.main(
      [f"--input={tmp_path / 'missing'}", f"--output={tmp_path / 'x'}", "--to=ours"]
    )
    == 2
  )
  assert "does not exist" in capsys.readouterr().err
  params = _random_params()
  convert.to_own(params, str(tmp_path / "ours"))
  assert (
    convert_checkpoint.main(
      [f"--input={tmp_path / 'ours'}", f"--output={tmp_path / 'ours'}", "--to=ours"]
    )
    == 2
  )
  assert "already holds checkpoints" in capsys.readouterr().err


def test_converting_a_prompt_tuning_run_names_its_base_model(tmp_path):
  """A prompt-only run has no model to convert: one line saying so, naming the base model."""
  import os, subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  from prompt_tuning.checkpoints import checkpointer  # pylint: disable=g-import-not-at-top
  from tests import conftest  # pylint: disable=g-import-not-at-top

  run = tmp_path / "prompt_run"
  state = {
    "step": np.int32(30),
    "trainable": {"prompt/encoder/prompt/prompt": np.ones((4, 16))},
    "opt_state": {},
    "rng": np.zeros((2,), np.uint32),
  }
  checkpointer.Checkpointer(str(run)).save(
    jax.device_put(state),
    {
      "base_checkpoint": "/ckpts/t5_1_1_lm100k_base",
      "init_seed": 0,
      "what_trains": "prompt",
      "data_position": 30,
    },
  )
  result = subprocess.run(
    [
      sys.executable,
      "scripts/convert_checkpoint.py",
      f"--input={run}",
      f"--output={tmp_path / 'hf'}",
      "--to=huggingface",
    ],
    cwd=conftest.REPO_ROOT,
    env=dict(os.environ),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 2
  lines = [line for line in result.stderr.splitlines() if line.startswith("convert_checkpoint:")]
  assert lines == [
    f"convert_checkpoint: {run} holds no model weights: it is a prompt-tuning "
    "run, which saves only its prompt; the frozen model it was trained on is "
    "/ckpts/t5_1_1_lm100k_base (its INITIAL_CHECKPOINT_PATH): convert that "
    "model, and export the prompt with scripts/export_peft.py"
  ], result.stderr
  assert "Traceback" not in result.stderr and not (tmp_path / "hf").exists()
