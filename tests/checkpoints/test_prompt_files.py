"""Prompt files in every accepted form, read for the model's initializers."""

import re
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


def _run(tmp_path, files, config=""):
  """A run's MODEL_DIR: its operative config and a numpy checkpoint holding `files`."""
  step = tmp_path / "run" / layout.NUMPY_DIR / "checkpoint_10"
  step.mkdir(parents=True)
  for name, value in files.items():
    np.save(step / name, np.asarray(value, np.float32))
  (tmp_path / "run" / "config.gin").write_text(config)
  return str(tmp_path / "run")


def test_a_prefix_is_read_for_its_own_stack_only(tmp_path):
  """P-tuning v2's encoder prefix and PEFT's decoder prefix have the same shape when the
  stacks are equally deep: each is refused where the other belongs."""
  value = np.random.default_rng(2).normal(size=(2, 2, 3, 2, 8))
  run = _run(tmp_path, {"encoder.prefix.prefix.npy": value})
  np.testing.assert_array_equal(
    prompt_files.load_prefix_file(run, 2, 2, "encoder"), value.astype(np.float32)
  )
  with pytest.raises(ValueError, match="holds an encoder prefix.*p_tuning_v2_from_file.gin"):
    prompt_files.load_prefix_file(run, 2, 2, "decoder")
  decoder = _run(tmp_path / "decoder", {"decoder.prefix.prefix.npy": value})
  with pytest.raises(ValueError, match="holds a decoder prefix; this model's is an encoder's"):
    prompt_files.load_prefix_file(decoder, 2, 2, "encoder")
  table = tmp_path / "table.npy"
  np.save(table, np.zeros((3, 4, 2, 8), np.float32))  # PEFT's table: a decoder's
  with pytest.raises(ValueError, match="holds PEFT's table of a decoder prefix"):
    prompt_files.load_prefix_file(str(table), 2, 2, "encoder")


@pytest.mark.parametrize("layout_name", ["layers", "peft"])
def test_a_reparameterized_prefix_run_reads_as_the_prefix_its_mlp_gives(tmp_path, layout_name):
  """A run trained with PREFIX_HIDDEN_DIM saves the MLP's variables; PROMPT_FILE reads the
  prefix they give, in the layout its run recorded."""
  import jax  # pylint: disable=g-import-not-at-top
  from prompt_tuning.models import prompts  # pylint: disable=g-import-not-at-top

  module = prompts.Prefix(3, 2, 2, 8, embed_dim=E, hidden_dim=5, layout=layout_name)
  variables = module.init(jax.random.key(0))["prompt"]
  variables = {k: np.asarray(v.unbox() if hasattr(v, "unbox") else v) for k, v in variables.items()}
  want = np.asarray(module.apply({"prompt": variables}))  # [2, 2, 3, 2, 8]
  files = {f"decoder.prefix.{k}.npy": v for k, v in variables.items()}
  run = _run(tmp_path, files, f"PREFIX_LAYOUT = '{layout_name}'\n")
  np.testing.assert_allclose(prompt_files.load_prefix_file(run, 2, 2), want, rtol=1e-6, atol=1e-6)


def test_a_per_layer_prompt_is_read_in_its_runs_mode_only(tmp_path):
  value = np.ones((2, 3, E))
  run = _run(tmp_path, {"encoder.prompt.prompt.npy": value}, "PER_LAYER_MODE = 'add'\n")
  assert prompt_files.per_layer_mode(run) == "add"
  assert prompt_files.load_prompt_file(run, 2, "add").shape == (2, 3, E)
  want = "trained with PER_LAYER_MODE='add'.*--gin.PER_LAYER_MODE=\"'add'\""
  with pytest.raises(ValueError, match=want):
    prompt_files.load_prompt_file(run, 2, "replace")
  np.save(tmp_path / "bare.npy", value)  # from no run: nothing to check, 'replace' by default
  assert prompt_files.per_layer_mode(str(tmp_path / "bare.npy")) == "replace"


def test_a_file_of_another_method_names_the_config_that_reads_it(tmp_path):
  """Another method's values as a prompt (or a per-layer prompt): one line naming what the
  file holds and the config that reads it."""
  np.save(tmp_path / "prefix.npy", np.zeros((2, 2, 6, 2, 8), np.float32))
  np.save(tmp_path / "per_layer.npy", np.zeros((2, 6, 16), np.float32))
  for path, kwargs, says in (
    ("prefix.npy", {}, "a prefix's values (read them with configs/prompts/prefix_from_file.gin"),
    ("per_layer.npy", {}, "per-layer prompt's values (read them with configs/prompts/per_layer"),
    ("prefix.npy", {"num_layers": 2}, "a prefix's values (read them with"),
  ):
    with pytest.raises(ValueError, match=re.escape(says)) as error:
      prompt_files.load_prompt_file(str(tmp_path / path), **kwargs)
    assert "\n" not in str(error.value)
