"""scripts/extract_variable.py returns each stored array exactly, from every format."""

import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np

from prompt_tuning.checkpoints import variables as variables_lib
from prompt_tuning.checkpoints import checkpointer
from prompt_tuning.training import optimizers
from prompt_tuning import partitioning
from prompt_tuning.training import train_state
from prompt_tuning.training import trainable
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from tests import conftest
from tests.helpers import hf_reference

CFG = hf_reference.TINY


def _extract(checkpoint_dir, variable, output):
  return subprocess.run(
    [
      sys.executable,
      "scripts/extract_variable.py",
      f"--checkpoint_dir={checkpoint_dir}",
      f"--variable={variable}",
      f"--output={output}",
    ],
    cwd=conftest.REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
  )


def test_extracts_exactly_from_own_and_hugging_face_checkpoints(tmp_path):
  # This project's model-tuned run, with a bfloat16 weight to check the dtype is kept.
  model = t5.Transformer(CFG, prompts.Prompt(2, CFG.emb_dim))
  variables, _ = variables_lib.init_variables(model, partitioning.Partitioner(1), None, seed=1)
  train, _ = trainable.partition(variables, "all")
  train["params/encoder/encoder_norm/scale"] = (
    train["params/encoder/encoder_norm/scale"].astype(jnp.bfloat16) + 0.5
  )
  state = train_state.create(train, optimizers.adafactor(), 0).replace(
    step=jnp.asarray(4, jnp.int32)
  )
  checkpointer.Checkpointer(str(tmp_path / "run")).save(state, {"data_position": 4})
  for name in (
    "token_embedder/embedding",
    "encoder/encoder_norm/scale",
    "decoder/layers_1/mlp/wo/kernel",
  ):
    out = tmp_path / "own.npy"
    done = _extract(tmp_path / "run", name, out)
    assert done.returncode == 0, done.stderr[-2000:]
    got, want = np.load(out, allow_pickle=False), np.asarray(train[f"params/{name}"])
    assert got.dtype == np.float32 and got.shape == want.shape  # bfloat16 written as float32
    np.testing.assert_array_equal(got, want.astype(np.float32))
    bf16_note = "(stored as bfloat16, written as float32: exact)" in done.stdout
    assert bf16_note == (want.dtype == jnp.bfloat16), done.stdout

  hf_model = hf_reference.random_hf_model(CFG, seed=2)
  hf_model.save_pretrained(tmp_path / "hf")
  expected = trainable.flatten(hf_reference.params_of(hf_model, CFG))
  for name in ("encoder/layers_0/attention/query/kernel", "encoder/relpos_bias/rel_embedding"):
    done = _extract(tmp_path / "hf", name, tmp_path / "hf.npy")
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "hf.npy"), expected[name])

  bad = _extract(tmp_path / "run", "token_embedder/embeding", tmp_path / "x.npy")
  assert bad.returncode != 0
  assert (
    "holds no variable 'token_embedder/embeding'; close names: ['token_embedder/embedding'"
    in bad.stderr
  )
