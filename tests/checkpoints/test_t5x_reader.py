"""INITIAL_CHECKPOINT_PATH as a t5x legacy checkpoint: read bitwise, lazily, onto the mesh."""

import json
import os

import jax
import ml_dtypes
import numpy as np
import pytest

from prompt_tuning.checkpoints import variables as variables_lib
from prompt_tuning.checkpoints import readers
from prompt_tuning.models import prompt_init
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from prompt_tuning import partitioning
from prompt_tuning.training import trainable
from scripts import extract_variable
from tests import conftest
from tests.helpers import hf_reference
from tests.helpers import t5x_writer

CFG = hf_reference.TINY


def _model():
  return t5.Transformer(CFG, prompts.Prompt(3, CFG.emb_dim, prompt_init.random_uniform(0.5)))


@pytest.fixture(scope="module")
def t5x_checkpoint(tmp_path_factory):
  """A t5x checkpoint of random tiny params: zarr and inline leaves, one bfloat16 leaf."""
  params = t5x_writer.random_params(t5.Transformer(CFG))
  # Adafactor-like factored statistics: the optimizer state the reader must skip.
  states = jax.tree_util.tree_map(
    lambda p: {
      "v_row": np.full(p.shape[:1], 0.5, np.float32),
      "v_col": np.full(p.shape[-1:], 0.25, np.float32),
    },
    params,
  )
  root = str(tmp_path_factory.mktemp("t5x"))
  t5x_writer.write(root, 1000, params, {"old": np.zeros(3)})
  directory = t5x_writer.write(root, 1100000, params, states)
  return root, directory, trainable.flatten(params)


def test_t5x_checkpoint_loads_bitwise_onto_model_shards(t5x_checkpoint):
  root, directory, expected = t5x_checkpoint
  zarrays = [os.path.join(d, ".zarray") for d, _, files in os.walk(directory) if ".zarray" in files]
  padded = [json.load(open(z)) for z in zarrays]
  assert any(any(s % c for s, c in zip(m["shape"], m["chunks"])) for m in padded)
  assert len(zarrays) < 2 * len(expected)  # some leaves are inline

  for path in (root, directory):  # the latest step of a directory, or one step
    part = partitioning.Partitioner(4)
    variables, shardings = variables_lib.init_variables(_model(), part, path, seed=0)
    flat, flat_shardings = trainable.flatten(variables), trainable.flatten(shardings)
    params = {k[len("params/") :]: v for k, v in flat.items() if k.startswith("params/")}
    assert set(params) == set(expected)
    for name, value in params.items():
      assert value.dtype == np.float32
      np.testing.assert_array_equal(
        np.asarray(value), np.asarray(expected[name], np.float32), err_msg=name
      )
      assert value.sharding.is_equivalent_to(flat_shardings["params/" + name], value.ndim)
  assert readers.open_checkpoint(root).__class__ is readers.T5xReader


@pytest.mark.parametrize("spec_form", ["absolute", "gcs", "gcs_top_level_path"])
def test_local_copies_of_every_spec_form_read_bitwise(t5x_checkpoint, tmp_path, spec_form):
  """Absolute file paths, and checkpoints t5x wrote on GCS then copied here (their gcs specs
  name a placeholder bucket: the arrays are beside the msgpack file, as t5x reads them)."""
  _, _, expected = t5x_checkpoint
  directory = t5x_writer.write(
    str(tmp_path), 9, trainable.unflatten(expected), {}, spec_form=spec_form
  )
  reader = readers.open_checkpoint(directory)
  for name, value in expected.items():
    np.testing.assert_array_equal(reader.read_array(name), np.asarray(value), err_msg=name)


def test_extract_variable_returns_each_stored_t5x_array_exactly(t5x_checkpoint, tmp_path, capsys):
  _, directory, expected = t5x_checkpoint
  for name, value in expected.items():
    out = tmp_path / (name.replace("/", ".") + ".npy")
    extract_variable.main(
      [f"--checkpoint_dir={directory}", f"--variable={name}", f"--output={out}"]
    )
    got = np.load(out)
    value = np.asarray(value)
    assert got.shape == value.shape
    if value.dtype == ml_dtypes.bfloat16:
      assert got.dtype == np.float32 and "written as float32" in capsys.readouterr().out
      np.testing.assert_array_equal(got, value.astype(np.float32))
    else:
      assert got.dtype == value.dtype
      np.testing.assert_array_equal(got, value)


def test_t5x_shape_mismatch_and_non_checkpoints_are_clear_errors(t5x_checkpoint, tmp_path):
  _, directory, _ = t5x_checkpoint
  wide = t5.Transformer(t5.T5Config(**{**CFG.__dict__, "mlp_dim": CFG.mlp_dim + 1}))
  with pytest.raises(
    ValueError,
    match=r"mlp/wi_0/kernel has shape \(32, 48\) in "
    r"INITIAL_CHECKPOINT_PATH .* wants \(32, 49\)",
  ):
    variables_lib.init_variables(wide, partitioning.Partitioner(1), directory, seed=0)
  (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-1"\n')  # a TF checkpoint
  with pytest.raises(ValueError, match="is not a checkpoint format this version reads"):
    readers.open_checkpoint(str(tmp_path))


def test_checkpoints_t5x_writes_with_orbax_load_bitwise(t5x_checkpoint, tmp_path):
  """t5x's Orbax layout: checkpoint_<step>/state/ holds {"target", "state"} as an orbax PyTree."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top

  _, _, expected = t5x_checkpoint
  nested = {}
  for name, value in expected.items():
    node = nested
    *parents, leaf = name.split("/")
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = np.asarray(value, np.float32)
  state = {
    "target": nested,
    "state": {"step": np.int32(5), "param_states": {"count": np.zeros((3,), np.float32)}},
  }
  ocp.PyTreeCheckpointer().save(str(tmp_path / "checkpoint_5" / "state"), state)
  reader = readers.open_checkpoint(str(tmp_path))
  assert isinstance(reader, readers.T5xOrbaxReader)
  variables, _ = variables_lib.init_variables(
    _model(), partitioning.Partitioner(2), str(tmp_path / "checkpoint_5"), seed=0
  )
  flat = trainable.flatten(variables)
  for name, value in expected.items():
    np.testing.assert_array_equal(
      np.asarray(flat["params/" + name]), np.asarray(value, np.float32), err_msg=name
    )
    np.testing.assert_array_equal(reader.read_array(name), np.asarray(value, np.float32))
  # Its step (TRAIN_STEPS is read against it, as the original codebase reads it).
  assert readers.t5x_step(str(tmp_path)) == 5
  assert readers.t5x_step(str(tmp_path / "checkpoint_5")) == 5


def test_a_t5x_checkpoints_step_is_its_directorys_and_other_formats_have_none(
  t5x_checkpoint, tmp_path
):
  root, directory, _ = t5x_checkpoint
  assert readers.t5x_step(root) == 1100000  # the latest of checkpoint_1000, checkpoint_1100000
  assert readers.t5x_step(os.path.join(root, "checkpoint_1000")) == 1000
  assert readers.t5x_step(directory) == 1100000
  assert readers.t5x_step(str(tmp_path)) is None  # no checkpoint at all
  assert (
    readers.t5x_step(os.path.join(conftest.REPO_ROOT, "prompt_tuning", "data", "wordnet_tiny"))
    is None
  )  # this project's format
