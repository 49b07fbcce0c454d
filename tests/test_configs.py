"""The shipped gin configs parse, build the right models, and take overrides."""

import logging
import os
import pathlib
import re

import gin
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prompt_tuning import gin_config
from prompt_tuning.configs.models import sizes
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from tests.helpers import hf_reference

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG_FILES = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "configs").rglob("*.gin"))
TINY = "configs/test/tiny.gin"

# The one table of sizes: configs/models/sizes/*.gin, read without gin (the benchmarks and
# the GPU checks read it so); the published parameter counts below check it.
SIZES = {name: sizes.read(name) for name in sizes.NAMES}
VOCAB_SIZES = {"t5_1_1": 32128, "mt5": 250112}

# Published parameter counts (T5.1.1: t5x/flaxformer model cards; mT5: Xue et
# al., 2021, Table 1) and how far from them a count may be: 1%, or half a unit
# in the last published digit where the number is rounded more coarsely than 1%.
PUBLISHED = {
  ("t5_1_1", "small"): (77e6, 0.01),
  ("t5_1_1", "base"): (248e6, 0.01),
  ("t5_1_1", "large"): (783e6, 0.01),
  ("t5_1_1", "xl"): (2.85e9, 0.01),
  ("t5_1_1", "xxl"): (11.1e9, 0.01),
  ("mt5", "small"): (300e6, 0.01),
  ("mt5", "base"): (580e6, 0.01),
  ("mt5", "large"): (1.2e9, 0.05 / 1.2),  # 1.23B; published to 2 digits.
  ("mt5", "xl"): (3.7e9, 0.05 / 3.7),  # 3.74B; published to 2 digits.
  ("mt5", "xxl"): (13e9, 0.01),
}

PROMPT_FILES = {
  "configs/prompts/from_random_uniform.gin": [],
  "configs/prompts/from_sampled_vocab_numpy.gin": ["EMBEDDING_FILE"],
  "configs/prompts/from_class_labels_numpy.gin": ["EMBEDDING_FILE", "CLASS_LABELS"],
  "configs/prompts/from_string_numpy.gin": ["EMBEDDING_FILE", "PROMPT_STRING"],
  "configs/prompts/from_file.gin": ["PROMPT_FILE"],
  "configs/prompts/from_sampled_vocab.gin": [],
  "configs/prompts/from_class_labels.gin": ["CLASS_LABELS"],
  "configs/prompts/from_string.gin": ["PROMPT_STRING"],
  "configs/prompts/no_prompt.gin": [],
}
TINY_EMBED, TINY_PROMPT_LENGTH = 16, 4
# Prefix tuning: keys and values before tiny.gin's 2 decoder layers (2 heads of 8).
PREFIX_FILES = ("configs/prompts/prefix.gin", "configs/prompts/prefix_from_file.gin")
# P-tuning v2: the same before tiny.gin's 2 encoder layers; per-layer prompts: [2, P, 16].
ENCODER_FILES = (
  "configs/prompts/p_tuning_v2.gin",
  "configs/prompts/p_tuning_v2_from_file.gin",
  "configs/prompts/per_layer.gin",
  "configs/prompts/per_layer_from_file.gin",
)


@pytest.fixture(autouse=True)
def _clear_gin():
  gin.clear_config()
  yield
  gin.clear_config()


def _model_file(family: str, size: str) -> str:
  return f"configs/models/{family}_{size}_prompt.gin"


def _param_count(model: t5.Transformer) -> int:
  return t5.parameter_count(t5.init_shapes(model)["params"])


def _init(model: t5.Transformer):
  return model.init(
    {"params": jax.random.key(0)}, jnp.ones((2, 3), jnp.int32), jnp.ones((2, 2), jnp.int32)
  )


RUN_FILE = "configs/runs/prompt_finetune.gin"


def test_run_file_lists_and_checks_its_required_macros():
  from prompt_tuning import train  # pylint: disable=g-import-not-at-top
  from prompt_tuning.training import trainer  # pylint: disable=g-import-not-at-top

  header = (
    open(gin_config.config_search_paths()[0] + "/" + RUN_FILE).read().split("from __gin__")[0]
  )
  for name in train.RUN_REQUIRED_MACROS:
    assert f"#   {name}:" in header
  gin_config.parse_gin([TINY, RUN_FILE], ["MODEL_DIR = '/tmp/x'", "TRAIN_STEPS = 3"])
  with pytest.raises(
    ValueError,
    match="requires MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS, "
    "INITIAL_CHECKPOINT_PATH but they are unset",
  ):
    gin_config.check_required_macros(train.RUN_REQUIRED_MACROS)
  assert gin_config.macro_value("RUN", "").__wrapped__ is trainer.train  # gin's configurable


INFERENCE_RUN_FILES = {
  "configs/runs/prompt_infer.gin": ("prompt_tuning.infer", "INFER_OUTPUT_DIR"),
  "configs/runs/prompt_eval.gin": ("prompt_tuning.eval", "EVAL_OUTPUT_DIR"),
}
DECODING_FILES = {
  "configs/models/decoding/greedy.gin": "Greedy()",
  "configs/models/decoding/beam_search.gin": "BeamSearch(num_beams=4, alpha=0.6)",
  "configs/models/decoding/nucleus_sampling.gin": "Sampling(temperature=1.0, top_k=0, top_p=0.9)",
}


@pytest.mark.parametrize("run_file", sorted(INFERENCE_RUN_FILES))
@pytest.mark.parametrize("decoding_file", sorted(DECODING_FILES))
def test_decoding_files_set_the_method_of_inference_runs(run_file, decoding_file):
  import importlib  # pylint: disable=g-import-not-at-top

  module, _ = INFERENCE_RUN_FILES[run_file]
  entry = importlib.import_module(module)
  header = (
    open(gin_config.config_search_paths()[0] + "/" + run_file).read().split("from __gin__")[0]
  )
  for name in entry.REQUIRED_MACROS:
    assert f"#   {name}:" in header
  gin_config.parse_gin([TINY, run_file, decoding_file])
  method = gin_config.macro_value("DECODING", "")
  assert repr(method).endswith(DECODING_FILES[decoding_file])
  with pytest.raises(ValueError, match="but they are unset"):
    gin_config.check_required_macros(entry.REQUIRED_MACROS)


WORDNET_FILES = (
  "configs/models/wordnet_tiny_prompt.gin",
  "configs/runs/pretrain.gin",
  "configs/runs/lm_adapt.gin",
  "configs/runs/wordnet_demo.gin",
  "configs/runs/model_finetune.gin",
)


FAMILY_FILES = {s: f"configs/models/wordnet_family/{s}.gin" for s in ("xs", "s", "m", "l")}


def test_the_wordnet_family_grows_like_t5_and_its_configs_read_its_bundled_checkpoints():
  """Four sizes, 25x+ in parameters, width, heads, depth and MLP growing together (as
  T5.1.1 Small -> XXL); each config reads both of its bundled checkpoints."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import readers  # pylint: disable=g-import-not-at-top
  from prompt_tuning.data import wordnet  # pylint: disable=g-import-not-at-top
  from prompt_tuning.training import trainable  # pylint: disable=g-import-not-at-top

  configs, counts = [], []
  for size, path in FAMILY_FILES.items():
    gin.clear_config()
    gin_config.parse_gin([path, "configs/prompts/no_prompt.gin"])
    model = gin_config.build_model()
    shapes = {
      k: tuple(v.shape)
      for k, v in trainable.flatten(nn.meta.unbox(t5.init_shapes(model)["params"])).items()
    }
    for objective in wordnet.OBJECTIVES:
      gin.clear_config()
      gin_config.parse_gin(
        [path],
        [
          "INITIAL_CHECKPOINT_PATH = @prompt_tuning.data.wordnet.family_checkpoint()",
          f"PRETRAINING = {objective!r}",
        ],
      )
      checkpoint = gin_config.macro_value("INITIAL_CHECKPOINT_PATH", "")
      assert checkpoint == wordnet.family_checkpoint(size, objective)
      assert readers.open_checkpoint(checkpoint).shapes() == shapes, (size, objective)
    configs.append(model.config)
    counts.append(sum(int(np.prod(v)) for v in shapes.values()))
  assert counts[-1] / counts[0] >= 25, counts
  for small, big in zip(configs, configs[1:]):
    assert big.emb_dim > small.emb_dim and big.mlp_dim > small.mlp_dim
    assert big.num_heads > small.num_heads
    assert big.num_encoder_layers >= small.num_encoder_layers
    assert big.num_decoder_layers == big.num_encoder_layers
  assert configs[-1].num_encoder_layers > configs[0].num_encoder_layers
  # Shipped compactly: bfloat16, both objectives of every size in 40 MB.
  total = sum(
    os.path.getsize(os.path.join(root, f))
    for root, _, files in os.walk(wordnet.FAMILY_DIR)
    for f in files
  )
  assert total <= 40e6, total


def test_bundled_model_config_reads_the_bundled_checkpoint():
  """The demo's config: the tiny model, its vocabulary, and its checkpoint's shapes agree."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import readers  # pylint: disable=g-import-not-at-top
  from prompt_tuning.data import wordnet  # pylint: disable=g-import-not-at-top
  from prompt_tuning.training import trainable  # pylint: disable=g-import-not-at-top

  gin_config.parse_gin(["configs/runs/wordnet_demo.gin"], ["MODEL_DIR = '/tmp/unused'"])
  assert gin_config.vocabulary() is wordnet.VOCABULARY
  assert gin_config.macro_value("CLASS_LABELS", "") == list(wordnet.LABELS)
  path = gin_config.macro_value("INITIAL_CHECKPOINT_PATH", "")
  assert path == wordnet.CHECKPOINT_DIR
  gin.clear_config()
  gin_config.parse_gin(["configs/models/wordnet_tiny_prompt.gin", "configs/prompts/no_prompt.gin"])
  model = gin_config.build_model()
  expected = {
    k: tuple(v.shape)
    for k, v in trainable.flatten(nn.meta.unbox(t5.init_shapes(model)["params"])).items()
  }
  assert readers.open_checkpoint(path).shapes() == expected
  assert wordnet.VOCABULARY.vocab_size <= model.config.vocab_size


def test_every_config_is_tested():
  named = {_model_file(f, s) for f in VOCAB_SIZES for s in SIZES}
  named |= {f"configs/models/sizes/{s}.gin" for s in SIZES}
  named |= {"configs/models/t5_1_1_prompt.gin", "configs/models/mt5_prompt.gin", TINY}
  named |= set(PROMPT_FILES) | set(PREFIX_FILES) | set(ENCODER_FILES)
  named |= {RUN_FILE}  # run end to end in tests/test_train.py
  named |= set(INFERENCE_RUN_FILES)  # run end to end in tests/test_infer.py, tests/test_eval.py
  named |= {SERVE_RUN_FILE}  # run end to end in tests/serving/test_server.py; read below
  named |= set(DECODING_FILES)
  named |= set(WORDNET_FILES)
  named |= {TASK_CLASS_LABELS, WAYWARD, MULTITASK}
  named |= set(FAMILY_FILES.values())
  # Every point of every sweep is checked as a training config in tests/sweep/test_sweep_files.py.
  named |= {f for f in CONFIG_FILES if f.startswith("configs/sweeps/")}
  assert set(CONFIG_FILES) == named


@pytest.mark.parametrize("path", CONFIG_FILES)
def test_config_parses(path):
  gin_config.parse_gin([path])


@pytest.mark.parametrize("family", sorted(VOCAB_SIZES))
@pytest.mark.parametrize("size", sorted(SIZES))
def test_model_config_matches_size(family, size):
  gin_config.parse_gin([_model_file(family, size)])
  model = gin_config.build_model()
  assert isinstance(model, t5.Transformer)
  s = SIZES[size]
  assert model.config == t5.T5Config(
    vocab_size=VOCAB_SIZES[family],
    emb_dim=s["EMBED_DIM"],
    num_heads=s["NUM_HEADS"],
    num_encoder_layers=s["NUM_ENCODER_LAYERS"],
    num_decoder_layers=s["NUM_DECODER_LAYERS"],
    head_dim=s["HEAD_DIM"],
    mlp_dim=s["MLP_DIM"],
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    dropout_rate=0.1,
    dtype="bfloat16",
    scan_layers=False,
    remat_policy="none",
  )
  assert isinstance(model.prompt, prompts.Prompt)
  assert (model.prompt.length, model.prompt.embed_dim, model.prompt.combine) == (
    100,
    s["EMBED_DIM"],
    "prefix",
  )
  vocab_file = gin.query_parameter("%SENTENCEPIECE_MODEL_FILE")
  assert ("mc4.250000" in vocab_file) == (family == "mt5")


@pytest.mark.parametrize("family", ["t5_1_1", "mt5"])
def test_default_size_is_base(family):
  base_file = {
    "t5_1_1": "configs/models/t5_1_1_prompt.gin",
    "mt5": "configs/models/mt5_prompt.gin",
  }[family]
  gin_config.parse_gin([base_file])
  default = gin_config.build_model().config
  gin.clear_config()
  gin_config.parse_gin([_model_file(family, "base")])
  assert default == gin_config.build_model().config


@pytest.mark.parametrize("size", sorted(SIZES))
def test_parameter_counts(size):
  counts = {}
  for family in VOCAB_SIZES:
    gin.clear_config()
    gin_config.parse_gin([_model_file(family, size)])
    counts[family] = _param_count(gin_config.build_model())
    published, tolerance = PUBLISHED[family, size]
    assert abs(counts[family] - published) <= tolerance * published, (
      f"{family} {size}: {counts[family]:,} parameters, published {published:,.0f}"
    )
  # Untied input embedding and logits: the vocabulary is the only difference.
  embed = SIZES[size]["EMBED_DIM"]
  assert counts["mt5"] - counts["t5_1_1"] == 2 * (250112 - 32128) * embed


def _prompt_bindings(tmp_path, vocab_path):
  table = np.random.RandomState(0).randn(32128, TINY_EMBED).astype(np.float32)
  np.save(tmp_path / "embedding.npy", table)
  prompt = np.random.RandomState(1).randn(TINY_PROMPT_LENGTH, TINY_EMBED).astype(np.float32)
  np.save(tmp_path / "prompt.npy", prompt)
  from prompt_tuning.checkpoints import convert  # pylint: disable=g-import-not-at-top

  # The same table as the frozen model's checkpoint (this project's format).
  convert.to_own({"token_embedder/embedding": table}, str(tmp_path / "frozen"))
  bindings = {
    "INITIAL_CHECKPOINT_PATH": repr(str(tmp_path / "frozen")),
    "EMBEDDING_FILE": repr(str(tmp_path / "embedding.npy")),
    "PROMPT_FILE": repr(str(tmp_path / "prompt.npy")),
    "SENTENCEPIECE_MODEL_FILE": repr(vocab_path),
    "CLASS_LABELS": "['positive', 'negative']",
    "PROMPT_STRING": "'Classify the sentiment:'",
  }
  return table, prompt, bindings


@pytest.mark.parametrize("path", sorted(PROMPT_FILES))
def test_prompt_config_initializes(path, tmp_path, t5_vocab_path, t5_vocabulary):
  table, fixed_prompt, bindings = _prompt_bindings(tmp_path, t5_vocab_path)
  gin_config.parse_gin([TINY, path], gin_config.bindings_from_flags(bindings))
  model = gin_config.build_model()
  variables = _init(model)
  if path.endswith("no_prompt.gin"):
    assert model.prompt is None and "prompt" not in variables
    return
  prompt = np.asarray(variables["prompt"]["encoder"]["prompt"]["prompt"].unbox())
  assert prompt.shape == (TINY_PROMPT_LENGTH, TINY_EMBED)
  path = path.replace("_numpy.gin", ".gin")  # both variants read the same table
  if path.endswith("from_random_uniform.gin"):
    assert np.all(np.abs(prompt) <= 0.5)
  elif path.endswith("from_sampled_vocab.gin"):
    assert all(any(np.array_equal(row, t) for t in table[:5000]) for row in prompt)
  elif path.endswith("from_class_labels.gin"):
    ids = t5_vocabulary.encode("positive")
    np.testing.assert_allclose(prompt[0], table[ids].mean(axis=0), rtol=1e-6)
    ids = t5_vocabulary.encode("negative")
    np.testing.assert_allclose(prompt[1], table[ids].mean(axis=0), rtol=1e-6)
  elif path.endswith("from_string.gin"):
    ids = t5_vocabulary.encode("Classify the sentiment:")
    n = min(len(ids), TINY_PROMPT_LENGTH)
    np.testing.assert_array_equal(prompt[:n], table[ids[:n]])
  elif path.endswith("from_file.gin"):
    np.testing.assert_array_equal(prompt, fixed_prompt)


@pytest.mark.parametrize("path", PREFIX_FILES)
def test_prefix_config_initializes(path, tmp_path):
  """The prefix replaces the encoder prompt; from a file, it is the file's array."""
  fixed = np.random.RandomState(2).randn(2, 2, 6, 2, 8).astype(np.float32)
  np.save(tmp_path / "prefix.npy", fixed)
  bindings = {"PROMPT_FILE": repr(str(tmp_path / "prefix.npy"))}
  gin_config.parse_gin([TINY, path], gin_config.bindings_from_flags(bindings))
  model = gin_config.build_model()
  variables = _init(model)
  assert model.prompt is None and list(variables["prompt"]) == ["decoder"]
  prefix = np.asarray(variables["prompt"]["decoder"]["prefix"]["prefix"].unbox())
  if path.endswith("prefix_from_file.gin"):
    np.testing.assert_array_equal(prefix, fixed)
  else:
    assert prefix.shape == (2, 2, 10, 2, 8)


@pytest.mark.parametrize("path", ENCODER_FILES)
def test_encoder_method_configs_initialize(path, tmp_path):
  """P-tuning v2's prefix and per-layer prompts reach every encoder layer; from a file, the
  variable is the file's array."""
  per_layer = "per_layer" in path
  shape = (2, 6, TINY_EMBED) if per_layer else (2, 2, 6, 2, 8)
  fixed = np.random.RandomState(3).randn(*shape).astype(np.float32)
  np.save(tmp_path / "values.npy", fixed)
  bindings = {"PROMPT_FILE": repr(str(tmp_path / "values.npy")), "PER_LAYER_MODE": "'add'"}
  gin_config.parse_gin([TINY, path], gin_config.bindings_from_flags(bindings))
  model = gin_config.build_model()
  variables = _init(model)
  assert list(variables["prompt"]) == ["encoder"]
  if per_layer:
    assert model.prefix is None and model.prompt.mode == "add"
    value = variables["prompt"]["encoder"]["prompt"]["prompt"]
  else:
    assert model.prompt is None and model.prefix.placement == "encoder"
    value = variables["prompt"]["encoder"]["prefix"]["prefix"]
  value = np.asarray(value.unbox())
  if path.endswith("_from_file.gin"):
    np.testing.assert_array_equal(value, fixed)
  else:
    assert value.shape == ((2, TINY_PROMPT_LENGTH, TINY_EMBED) if per_layer else (2, 2, 10, 2, 8))


WAYWARD = "configs/prompts/wayward.gin"


def test_wayward_config_pulls_toward_its_discrete_prompt():
  """PROMPT_LENGTH is the discrete prompt's token count; the regularizer holds its
  embeddings from the bundled model's table."""
  from prompt_tuning.data import wordnet  # pylint: disable=g-import-not-at-top
  from prompt_tuning.training import wayward  # pylint: disable=g-import-not-at-top

  bindings = {"WAYWARD_PROMPT": "'a kind of bird'", "WAYWARD_GAMMA": "0.5"}
  bindings["INITIAL_CHECKPOINT_PATH"] = repr(wordnet.CHECKPOINT_DIR)
  gin_config.parse_gin(
    ["configs/models/wordnet_tiny_prompt.gin", WAYWARD, RUN_FILE],
    gin_config.bindings_from_flags({**bindings, "MODEL_DIR": "'/unused'"}),
  )
  ids = list(wordnet.VOCABULARY.encode("a kind of bird"))
  assert gin_config.build_model().prompt.length == len(ids)
  regularizer = gin_config.macro_value("REGULARIZER", "")
  assert isinstance(regularizer, wayward.Wayward) and regularizer.ids == tuple(ids)
  assert regularizer.target.shape == (len(ids), 128) and regularizer.gamma == 0.5


MULTITASK = "configs/prompts/multitask.gin"


@pytest.mark.parametrize(
  "combine, names",
  [("add", ["shared", "tasks"]), ("project", ["bias", "kernel", "shared"])],
)
def test_multitask_config_reads_its_tasks_and_sentinels_from_the_mixture(combine, names):
  """The tasks are the mixture's, in task-id order, and task 0's sentinel is the
  vocabulary's <extra_id_0>."""
  from prompt_tuning.data import wordnet  # pylint: disable=g-import-not-at-top

  bindings = {
    "MIXTURE_OR_TASK_NAME": "'wordnet_multitask'",
    "MIXTURE_OR_TASK_MODULE": "'prompt_tuning.data.tasks'",
    "MULTITASK_COMBINE": repr(combine),
    "MODEL_DIR": "'/unused'",
  }
  gin_config.parse_gin(
    ["configs/models/wordnet_tiny_prompt.gin", MULTITASK, RUN_FILE],
    gin_config.bindings_from_flags(bindings),
  )
  prompt = gin_config.build_model().prompt
  assert prompt.tasks == ("wordnet_supersense", "wordnet_hypernym")
  assert prompt.first_sentinel == wordnet.VOCABULARY.encode("<extra_id_0>")[0]
  assert prompt.combine_tasks == combine
  variables = _init(gin_config.build_model())["prompt"]["encoder"]["prompt"]
  assert sorted(variables) == names


TASK_CLASS_LABELS = "configs/prompts/from_task_class_labels.gin"


@pytest.mark.parametrize(
  "task,labels",
  [
    ("taskless_super_glue_rte_v102", ["entailment", "not_entailment"]),
    ("taskless_super_glue_record_v102", []),
  ],
)
def test_task_class_labels_config_takes_the_tasks_labels(
  task, labels, tmp_path, t5_vocab_path, t5_vocabulary
):
  """from_task_class_labels.gin: the task's labels, then rows sampled from the vocabulary."""
  table, _, bindings = _prompt_bindings(tmp_path, t5_vocab_path)
  bindings = {k: v for k, v in bindings.items() if k != "CLASS_LABELS"}
  bindings["MIXTURE_OR_TASK_NAME"] = repr(task)
  gin_config.parse_gin([TINY, TASK_CLASS_LABELS], gin_config.bindings_from_flags(bindings))
  prompt = np.asarray(
    _init(gin_config.build_model())["prompt"]["encoder"]["prompt"]["prompt"].unbox()
  )
  for row, label in zip(prompt, labels):
    np.testing.assert_allclose(row, table[t5_vocabulary.encode(label)].mean(axis=0), rtol=1e-6)
  for row in prompt[len(labels) :]:  # the paper's fallback: sampled vocabulary
    assert any(np.array_equal(row, t) for t in table[:5000])


def test_vocabulary(t5_vocab_path, t5_vocabulary):
  gin_config.parse_gin([TINY], [f"SENTENCEPIECE_MODEL_FILE = {t5_vocab_path!r}"])
  vocabulary = gin_config.vocabulary()
  assert vocabulary.vocab_size == 32100
  assert vocabulary.encode("positive") == t5_vocabulary.encode("positive")


def test_flag_overrides_take_effect():
  bindings = gin_config.bindings_from_flags(
    {"PROMPT_LENGTH": "7", "NUM_HEADS": "3", "ACTIVATION_DTYPE": "'float32'"}
  )
  assert bindings == ["PROMPT_LENGTH = 7", "NUM_HEADS = 3", "ACTIVATION_DTYPE = 'float32'"]
  gin_config.parse_gin([_model_file("t5_1_1", "small")], bindings)
  model = gin_config.build_model()
  assert model.prompt.length == 7
  assert model.config.num_heads == 3
  assert model.config.dtype == "float32"
  assert model.config.emb_dim == 512  # The rest of the size is untouched.


def test_later_file_overrides_earlier():
  gin_config.parse_gin(["configs/models/t5_1_1_prompt.gin", "configs/models/sizes/xl.gin"])
  assert gin_config.build_model().config.emb_dim == 2048


def test_bindings_from_flags_rejects_empty_value():
  with pytest.raises(ValueError, match="PROMPT_LENGTH"):
    gin_config.bindings_from_flags({"PROMPT_LENGTH": ""})


def test_unknown_gin_file_is_a_clear_error():
  with pytest.raises(FileNotFoundError) as info:
    gin_config.parse_gin(["configs/models/t5_1_1_huge_prompt.gin"])
  message = str(info.value)
  assert "\n" not in message
  assert "configs/models/t5_1_1_huge_prompt.gin" in message
  assert str(REPO_ROOT) in message


def test_unknown_included_file_is_a_clear_error(tmp_path):
  (tmp_path / "bad.gin").write_text("include 'configs/nope.gin'\n")
  with pytest.raises(FileNotFoundError, match=re.escape("'configs/nope.gin'")):
    gin_config.parse_gin([str(tmp_path / "bad.gin")])


def test_user_search_path(tmp_path):
  (tmp_path / "mine.gin").write_text("include 'configs/test/tiny.gin'\nPROMPT_LENGTH = 2\n")
  gin_config.parse_gin(["mine.gin"], search_paths=[str(tmp_path)])
  assert gin_config.build_model().prompt.length == 2


def test_the_tiny_test_config_builds_the_architecture_the_tests_compare():
  gin_config.parse_gin([TINY])
  assert gin_config.build_model().config == hf_reference.TINY_GIN


def test_build_model_without_model_config():
  gin_config.parse_gin(["configs/models/sizes/small.gin"])
  with pytest.raises(ValueError, match="no MODEL macro"):
    gin_config.build_model()


def test_config_search_paths_include_repo_root():
  assert str(REPO_ROOT) in gin_config.config_search_paths()


@pytest.mark.parametrize("path", sorted(p for p, required in PROMPT_FILES.items() if required))
def test_unset_required_macro_is_a_clear_error(path):
  gin_config.parse_gin([TINY, path])
  with pytest.raises(ValueError, match=re.escape(PROMPT_FILES[path][-1])):
    gin_config.build_model()


RUN_FILES = {  # run file -> the macros its entry point reads itself
  "configs/runs/prompt_finetune.gin": ("RUN", "BATCH_SIZE", "MODEL_DIR"),
  "configs/runs/pretrain.gin": ("RUN", "BATCH_SIZE", "MODEL_DIR"),
  "configs/runs/model_finetune.gin": ("RUN", "BATCH_SIZE", "MODEL_DIR"),
  "configs/runs/lm_adapt.gin": ("RUN", "BATCH_SIZE", "MODEL_DIR"),
  "configs/runs/prompt_eval.gin": ("RUN", "BATCH_SIZE", "EVAL_OUTPUT_DIR"),
  "configs/runs/prompt_infer.gin": ("RUN", "BATCH_SIZE"),
}


# Every prompt file with the training run, every run file with the default prompt.
SHIPPED_COMBINATIONS = sorted(
  {(RUN_FILE, p) for p in PROMPT_FILES}
  | {(r, "configs/prompts/from_random_uniform.gin") for r in RUN_FILES}
)


@pytest.mark.parametrize("run_file,prompt_file", SHIPPED_COMBINATIONS)
def test_every_macro_of_the_shipped_configs_is_read(run_file, prompt_file):
  """No shipped combination sets a macro that its run leaves unread (that check stops runs)."""
  gin_config.parse_gin([TINY, prompt_file, run_file, "configs/models/decoding/beam_search.gin"])
  gin_config.check_every_macro_is_read(RUN_FILES[run_file])


def test_the_demo_run_file_sets_only_read_macros():
  gin_config.parse_gin(["configs/runs/wordnet_demo.gin"])
  gin_config.check_every_macro_is_read(RUN_FILES["configs/runs/prompt_finetune.gin"])


SERVE_RUN_FILE = "configs/runs/prompt_serve.gin"


def test_the_serve_run_file_lists_its_required_macros_and_sets_only_read_ones():
  from prompt_tuning import serve  # pylint: disable=g-import-not-at-top

  header = (
    open(gin_config.config_search_paths()[0] + "/" + SERVE_RUN_FILE).read().split("from __gin__")[0]
  )
  for name in serve.REQUIRED_MACROS:
    assert f"#   {name}:" in header
  gin_config.parse_gin(
    [TINY, SERVE_RUN_FILE],
    ["INITIAL_CHECKPOINT_PATH = None", "TASK_FEATURE_LENGTHS = {'inputs': 8, 'targets': 2}"],
  )
  gin_config.check_every_macro_is_read(("SERVED",))
  config = gin_config.macro_value("SERVED", "")
  assert config.task_feature_lengths == {"inputs": 8, "targets": 2}


def test_a_misspelled_macro_is_an_error_naming_the_close_one():
  gin_config.parse_gin([TINY, RUN_FILE], ["PROMPT_LENGHT = 5", "LEARNING_RATE = 0.1"])
  with pytest.raises(
    ValueError,
    match=r"sets PROMPT_LENGHT \(did you mean PROMPT_LENGTH\?\), "
    "which nothing in this run reads",
  ):
    gin_config.check_every_macro_is_read(RUN_FILES[RUN_FILE])


def test_a_macro_only_a_file_the_run_lacks_reads_names_that_file():
  # The README's infer command without configs/prompts/from_file.gin: PROMPT_FILE is read
  # only there (PROMPT_FILES, an ensemble's, is a close name but not the usual fix).
  gin_config.parse_gin(
    [TINY, "configs/runs/prompt_infer.gin"],
    ["INITIAL_CHECKPOINT_PATH = None", "PROMPT_FILE = '/runs/sst2'"],
  )
  with pytest.raises(ValueError) as error:
    gin_config.check_every_macro_is_read(RUN_FILES["configs/runs/prompt_infer.gin"])
  assert (
    "sets PROMPT_FILE (did you mean PROMPT_FILES?; add the *_from_file.gin of this model's "
    "method, in place of its training config: configs/prompts/from_file.gin for a prompt, "
    "configs/prompts/per_layer_from_file.gin for a per-layer prompt, "
    "configs/prompts/prefix_from_file.gin for a decoder prefix, "
    "configs/prompts/p_tuning_v2_from_file.gin for an encoder prefix"
    "), which nothing in this run reads"
  ) in str(error.value)


@pytest.mark.parametrize(
  "config, reader",
  [
    ("configs/prompts/p_tuning_v2.gin", "configs/prompts/p_tuning_v2_from_file.gin"),
    ("configs/prompts/prefix.gin", "configs/prompts/prefix_from_file.gin"),
  ],
)
def test_a_prompt_file_the_models_method_does_not_start_from_is_refused(config, reader, tmp_path):
  """A method's training config with from_file.gin: the file would go to a prompt the model
  does not have, and the run would start from a random init. Its own reader starts from it."""
  np.save(tmp_path / "values.npy", np.zeros((2, 2, 6, 2, 8), np.float32))
  np.save(tmp_path / "prompt.npy", np.zeros((6, TINY_EMBED), np.float32))
  # First a model that starts from its file: what it read does not count for the next.
  gin_config.parse_gin(
    [TINY, "configs/prompts/from_file.gin"], [f"PROMPT_FILE = '{tmp_path / 'prompt.npy'}'"]
  )
  assert gin_config.build_model().prompt is not None
  bindings = [f"PROMPT_FILE = '{tmp_path / 'values.npy'}'"]
  gin_config.parse_gin([TINY, config, "configs/prompts/from_file.gin"], bindings)
  with pytest.raises(ValueError) as error:
    gin_config.build_model()
  assert str(error.value).startswith("PROMPT_FILE is set, but this model's method, ")
  assert (
    f"does not start from it (it would start from a random init): read its values with {reader}"
    in str(error.value)
  )
  gin.clear_config()  # its own reader starts from it
  gin_config.parse_gin([TINY, reader], bindings)
  assert gin_config.build_model().prefix is not None
  # The entry points' check of their config builds the model: infer's refuses it too.
  infer = "configs/runs/prompt_infer.gin"
  gin.clear_config()
  gin_config.parse_gin(
    [TINY, config, "configs/prompts/from_file.gin", infer],
    bindings + ["INITIAL_CHECKPOINT_PATH = None"],
  )
  with pytest.raises(ValueError, match=f"read its values with {reader}"):
    gin_config.check_run_config(("INITIAL_CHECKPOINT_PATH",), RUN_FILES[infer])


def test_a_prompt_file_a_plain_model_does_not_start_from_says_why(tmp_path):
  np.save(tmp_path / "prompt.npy", np.zeros((6, TINY_EMBED), np.float32))
  bindings = [f"PROMPT_FILE = '{tmp_path / 'prompt.npy'}'"]
  gin_config.parse_gin(
    [TINY, "configs/prompts/from_file.gin", "configs/prompts/no_prompt.gin"], bindings
  )
  with pytest.raises(
    ValueError, match=r"this model has no prompt to start from it \(configs/prompts/no_prompt.gin\)"
  ):
    gin_config.build_model()


def test_a_misspelled_parameter_is_an_error():
  with pytest.raises(ValueError, match="doesn't have a parameter named 'train_step'"):
    gin_config.parse_gin([TINY, RUN_FILE], ["trainer.train.train_step = 5"])


def test_model_finetune_trains_every_weight_with_t5s_finetuning_optimizer():
  gin_config.parse_gin([FAMILY_FILES["xs"], "configs/runs/model_finetune.gin"])
  assert gin_config.build_model().prompt is None
  assert gin.query_parameter("%WHAT_TRAINS") == "all"
  assert gin.query_parameter("%LEARNING_RATE") == 1e-3
  assert (
    gin.query_parameter("prompt_tuning.training.optimizers.adafactor.multiply_by_parameter_scale")
    is True
  )


@pytest.mark.parametrize(
  "task,labels", [("wordnet_hypernym", ["yes", "no"]), ("wordnet_supersense", None)]
)
def test_task_class_labels_config_takes_a_wordnet_tasks_labels(task, labels):
  from prompt_tuning.data import wordnet  # pylint: disable=g-import-not-at-top

  gin_config.parse_gin(
    [FAMILY_FILES["xs"], TASK_CLASS_LABELS], [f"MIXTURE_OR_TASK_NAME = {task!r}"]
  )
  assert gin_config.macro_value("CLASS_LABELS", "") == (labels or list(wordnet.LABELS))


@pytest.mark.parametrize(
  "text,says",
  [
    (
      "TRAIN_STEPS = (3\n",
      r"gin syntax error in {bad}: the text ends inside an unclosed "
      r"bracket or string$",
    ),
    (
      "TRAIN_STEPS = 3 +\n",
      r"gin syntax error in {bad}, line 1: Expected newline: "
      r"TRAIN_STEPS = 3 \+$",
    ),
  ],
)
def test_a_gin_file_that_does_not_parse_is_one_line_naming_it(tmp_path, text, says):
  bad = tmp_path / "bad.gin"
  bad.write_text(text)
  top = tmp_path / "top.gin"  # the broken file only included: the message names it all the same
  top.write_text(f"include '{bad}'\n")
  for files in ([str(bad)], [str(top)]):
    with pytest.raises(ValueError, match=says.format(bad=re.escape(str(bad)))):
      gin_config.parse_gin(files)
  with pytest.raises(
    ValueError,
    match=r"gin syntax error in the binding 'X = \(3' \(a "
    r"--gin.NAME=VALUE flag\): the text ends inside an unclosed bracket",
  ):
    gin_config.parse_gin([], ["X = (3"])
  # A string given without its quotes (the shell ate them, or they were never there).
  with pytest.raises(ValueError) as error:
    gin_config.parse_gin([], ["MODEL_DIR = /tmp/x"])
  assert str(error.value).endswith(
    "Unable to parse value; a string keeps its quotes inside the flag: --gin.MODEL_DIR=\"'/tmp/x'\""
  )
  with pytest.raises(ValueError) as error:
    gin_config.parse_gin([], ["TASK = my task"])
  assert "\n" not in str(error.value) and str(error.value).endswith(
    "Failed to parse token 'my'; a string keeps its quotes inside the flag: "
    "--gin.TASK=\"'my task'\""
  )
  with pytest.raises(ValueError) as error:
    gin_config.parse_gin([], ["X = (3"])
  assert "quotes" not in str(error.value)


def test_configs_found_from_another_directory_log_nothing_on_the_way(tmp_path, monkeypatch, caplog):
  """From outside the repository gin finds `configs/...` on a later search path: on the way
  it logged an ERROR "Path not found" per search path that missed and an INFO
  `system_path_file_exists:` per file (a sweep's dry run printed 30 such lines)."""
  monkeypatch.chdir(tmp_path)
  with caplog.at_level(logging.DEBUG):
    gin_config.parse_gin(["configs/runs/wordnet_demo.gin"], ["MODEL_DIR = '/tmp/unused'"])
  gin_lines = [r.getMessage() for r in caplog.records if r.module == "resource_reader"]
  assert not gin_lines, gin_lines[:3]


def test_the_size_table_names_what_it_lacks():
  assert sizes.read("xl")["EMBED_DIM"] == 2048
  with pytest.raises(ValueError, match="unknown T5.1.1 size 'medium'; one of small, base"):
    sizes.read("medium")
