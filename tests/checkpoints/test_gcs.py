"""t5x checkpoints on gs://, served by a real GCS server on localhost, read as t5x reads them.

The emulator (tests/helpers/gcs_emulator.py) is reached only through tensorstore's
documented variables, TENSORSTORE_GCS_HTTP_URL and GOOGLE_AUTH_TOKEN_FOR_TESTING:
the code path is the one `gs://t5-data/...` takes.
"""

import os
import socket
import subprocess
import sys

import jax
import ml_dtypes
import numpy as np
import pytest

from prompt_tuning import partitioning
from prompt_tuning.checkpoints import t5x
from prompt_tuning.checkpoints import tree
from prompt_tuning.checkpoints import variables as variables_lib
from prompt_tuning.models import prompt_init
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from tests import conftest
from tests.helpers import gcs_emulator
from tests.helpers import t5x_writer

# configs/test/tiny.gin's model with 4 heads (4-way model parallelism splits them) and the
# bundled WordNet vocabulary's 4224 rows (a small checkpoint: the emulator serves one
# request at a time; one layer per stack for the same reason), so the training command
# below loads it with NUM_HEADS=4 HEAD_DIM=4 NUM_EMBEDDINGS=4224, one layer per stack and
# that vocabulary.
CFG = t5.T5Config(
  vocab_size=4224,
  emb_dim=16,
  num_heads=4,
  num_encoder_layers=1,
  num_decoder_layers=1,
  head_dim=4,
  mlp_dim=32,
  dtype="float32",
)
VOCABULARY = str(conftest.REPO_ROOT / "prompt_tuning" / "data" / "wordnet" / "spm.model")
BUCKET = "t5-data-test"
STEP = 1100000
# Where t5x's own pretrained checkpoints sit, and the spec form each layout stores.
FORMS = {
  "gcs": "pretrained_models/t5x/tiny_lm100k/",
  "gcs_top_level_path": "pretrained_models/t5x/tiny_2021/",
  "file": "copied_from_local/tiny/",
}


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
  """The emulator with one t5x checkpoint per spec form; yields (url, expected params)."""
  params = t5x_writer.random_params(t5.Transformer(CFG))
  states = jax.tree_util.tree_map(lambda p: {"v": np.full(p.shape, 0.5, np.float32)}, params)
  saved = {k: os.environ.get(k) for k in (gcs_emulator.URL_VARIABLE, gcs_emulator.TOKEN_VARIABLE)}
  with gcs_emulator.running(BUCKET) as url:
    os.environ[gcs_emulator.URL_VARIABLE] = url
    os.environ[gcs_emulator.TOKEN_VARIABLE] = "emulator"
    try:
      for form, directory in FORMS.items():
        root = f"gs://{BUCKET}/{directory}"
        if form == "gcs":  # an older step beside it: a directory means its latest step
          t5x_writer.write(root, 1000, {"old": np.zeros(3)}, {}, spec_form=form)
        t5x_writer.write(root, STEP, params, states, spec_form=form)
      yield url, tree.flatten(params)
    finally:
      for key, value in saved.items():
        if value is None:
          os.environ.pop(key, None)
        else:
          os.environ[key] = value


def _model():
  return t5.Transformer(CFG, prompts.Prompt(3, CFG.emb_dim, prompt_init.random_uniform(0.5)))


@pytest.mark.parametrize("form", list(FORMS))
def test_every_spec_form_loads_bitwise_onto_a_4_way_model_mesh(gcs, form):
  _, expected = gcs
  step_dir = f"gs://{BUCKET}/{FORMS[form]}checkpoint_{STEP}"
  # What t5x stored: relative paths, and GCS's placeholder bucket where it wrote one.
  checkpoint = t5x.T5xCheckpoint(step_dir)
  spec = checkpoint._leaves["encoder/layers_0/mlp/wi_0/kernel"]  # pylint: disable=protected-access
  stored_path = spec["kvstore"].get("path") or spec["path"]
  assert not stored_path.startswith(("/", "gs:"))
  assert (spec["kvstore"].get("bucket") == t5x_writer.DUMMY_BUCKET) == form.startswith("gcs")
  assert ("path" in spec) == (form == "gcs_top_level_path")

  paths = [step_dir] + ([f"gs://{BUCKET}/{FORMS[form]}"] if form == "gcs" else [])
  for path in paths:  # a step, or the latest step in a directory
    part = partitioning.Partitioner(4)
    variables, shardings = variables_lib.init_variables(_model(), part, path, seed=0)
    flat, flat_shardings = tree.flatten(variables["params"]), tree.flatten(shardings["params"])
    assert set(flat) == set(expected)
    for name, want in expected.items():
      got = flat[name]
      assert got.sharding == flat_shardings[name]
      np.testing.assert_array_equal(
        np.asarray(got), np.asarray(want).astype(np.float32), err_msg=name
      )
    kernel = flat["encoder/layers_0/mlp/wi_0/kernel"]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "model")
    assert len({shard.device for shard in kernel.addressable_shards}) == 8


def test_extract_variable_reads_gs_exactly(gcs, tmp_path):
  _, expected = gcs
  out = tmp_path / "rel.npy"
  result = subprocess.run(
    [
      sys.executable,
      "scripts/extract_variable.py",
      f"--checkpoint_dir=gs://{BUCKET}/{FORMS['gcs']}checkpoint_{STEP}",
      "--variable=encoder/relpos_bias/rel_embedding",
      f"--output={out}",
    ],
    cwd=conftest.REPO_ROOT,
    env=dict(os.environ),
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  want = np.asarray(expected["encoder/relpos_bias/rel_embedding"])
  assert want.dtype == ml_dtypes.bfloat16
  np.testing.assert_array_equal(np.load(out), want.astype(np.float32))


def _resolves(host: str) -> bool:
  try:
    socket.getaddrinfo(host, 443)
  except OSError:
    return False
  return True


@pytest.mark.integration
@pytest.mark.slow
def test_the_training_command_reads_gs_and_fails_on_one_line_without_the_emulator(gcs, tmp_path):
  path = f"gs://{BUCKET}/{FORMS['gcs']}checkpoint_{STEP}"
  cmd = [
    sys.executable,
    "-m",
    "prompt_tuning.train",
    "--gin_file=configs/test/tiny.gin",
    "--gin_file=configs/runs/prompt_finetune.gin",
    f"--gin.MODEL_DIR='{tmp_path / 'run'}'",
    "--gin.MIXTURE_OR_TASK_NAME='eval_sentiment'",
    "--gin.MIXTURE_OR_TASK_MODULE='tests.helpers.eval_tasks'",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 4}",
    "--gin.TRAIN_STEPS=1",
    f"--gin.INITIAL_CHECKPOINT_PATH='{path}'",
    "--gin.EVAL_PERIOD=None",
    "--gin.BATCH_SIZE=4",
    f"--gin.SENTENCEPIECE_MODEL_FILE='{VOCABULARY}'",
    "--gin.NUM_HEADS=4",
    "--gin.HEAD_DIM=4",
    "--gin.NUM_EMBEDDINGS=4224",
    "--gin.NUM_ENCODER_LAYERS=1",
    "--gin.NUM_DECODER_LAYERS=1",
  ]
  env = dict(
    os.environ,
    T5_VOCAB=VOCABULARY,  # tests/helpers/eval_tasks.py's vocabulary
    XLA_FLAGS="--xla_force_host_platform_device_count=1",
  )
  done = subprocess.run(
    cmd, cwd=conftest.REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert "train: step=1" in done.stdout

  if _resolves("storage.googleapis.com"):
    pytest.skip(
      "this machine resolves storage.googleapis.com: without the emulator the "
      "command would reach the real GCS, which a test must not"
    )
  unset = {
    k: v
    for k, v in env.items()
    if k not in (gcs_emulator.URL_VARIABLE, gcs_emulator.TOKEN_VARIABLE)
  }
  unset["GCE_METADATA_ROOT"] = "127.0.0.1:9"  # no probe of a cloud metadata server either
  cmd[5] = f"--gin.MODEL_DIR='{tmp_path / 'offline'}'"
  failed = subprocess.run(
    cmd, cwd=conftest.REPO_ROOT, env=unset, capture_output=True, text=True, timeout=300
  )
  assert failed.returncode != 0
  errors = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and path in errors[0], failed.stderr[-2000:]
  assert "Traceback" not in failed.stderr
  assert not (tmp_path / "offline" / "checkpoints").exists() or not os.listdir(
    tmp_path / "offline" / "checkpoints"
  )
