"""Prompts to and from Hugging Face PEFT: export, serve with PEFT, import back."""

import json

import numpy as np
import peft as peft_lib
import pytest
import torch

from prompt_tuning.checkpoints import prompt_files
from prompt_tuning.checkpoints import peft
from prompt_tuning.inference import decoding
from scripts import export_peft
from tests import conftest
from tests.helpers import infer_run


def _infer(tmp_path, hf_dir, texts, *flags, tasks=None) -> list[str]:
  """`python -m prompt_tuning.infer`'s predictions for `texts` (each naming its task from
  `tasks`, if given) on the model in `hf_dir`."""
  input_file, output_file = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
  lines = [{"inputs": t, **({"task": tasks[i]} if tasks else {})} for i, t in enumerate(texts)]
  input_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
  infer_run.run_infer(tmp_path, hf_dir, input_file, output_file, *flags)
  return [json.loads(line)["prediction"] for line in output_file.read_text().splitlines()]


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory):
  return infer_run.save_hf_checkpoint(tmp_path_factory.mktemp("hf"))


def _peft_greedy(peft_model, vocabulary, text, **extra):
  ids = list(vocabulary.encode(text))[: infer_run.LENGTHS["inputs"] - 1] + [decoding.EOS_ID]
  with torch.no_grad():
    out = peft_model.generate(
      **extra,
      input_ids=torch.tensor([ids]),
      attention_mask=torch.ones(1, len(ids)),
      max_new_tokens=infer_run.LENGTHS["targets"],
      do_sample=False,
      num_beams=1,
      min_length=0,
      decoder_start_token_id=0,
      eos_token_id=decoding.EOS_ID,
      pad_token_id=0,
    )[0, 1:].tolist()
  return vocabulary.decode(out[: out.index(decoding.EOS_ID)] if decoding.EOS_ID in out else out)


@pytest.mark.integration
def test_exported_adapter_serves_with_peft_like_infer_and_imports_back(
  tmp_path,
  hf_checkpoint,  # pylint: disable=redefined-outer-name
  t5_vocabulary,
):
  model, hf_dir = hf_checkpoint
  prompt = np.random.default_rng(5).normal(size=(5, 16)).astype(np.float32)
  np.save(tmp_path / "prompt.npy", prompt)
  adapter = tmp_path / "adapter"
  assert (
    export_peft.main(
      [
        f"--prompt_file={tmp_path / 'prompt.npy'}",
        f"--output_dir={adapter}",
        f"--base_model_name_or_path={hf_dir}",
      ]
    )
    == 0
  )
  config = json.loads((adapter / "adapter_config.json").read_text())
  assert (
    config["peft_type"],
    config["task_type"],
    config["num_virtual_tokens"],
    config["token_dim"],
    config["num_transformer_submodules"],
  ) == ("PROMPT_TUNING", "SEQ_2_SEQ_LM", 5, 16, 1)

  # Imported back: the identical array, and usable as PROMPT_FILE.
  np.testing.assert_array_equal(prompt_files.load_prompt_file(str(adapter)), prompt)
  ours = _infer(
    tmp_path,
    hf_dir,
    infer_run.TEXTS,
    "--gin_file=configs/prompts/from_file.gin",
    "--gin.PROMPT_LENGTH=5",
    f"--gin.PROMPT_FILE='{adapter}'",
  )

  served = peft_lib.PeftModel.from_pretrained(model, str(adapter)).eval()
  theirs = [_peft_greedy(served, t5_vocabulary, text) for text in infer_run.TEXTS]
  assert ours == theirs
  assert len(set(theirs)) > 1


def test_adapters_this_project_cannot_use_are_clear_errors(tmp_path):
  prompt = np.zeros((4, 8), np.float32)
  peft.write_adapter(np.concatenate([prompt, prompt]), str(tmp_path / "both"), "t5")
  config_path = tmp_path / "both" / "adapter_config.json"
  config = json.loads(config_path.read_text())
  config.update(num_transformer_submodules=2, num_virtual_tokens=4)
  config_path.write_text(json.dumps(config))
  with pytest.raises(ValueError, match="puts prompts on both encoder and decoder"):
    prompt_files.load_prompt_file(str(tmp_path / "both"))
  config.update(peft_type="LORA")
  config_path.write_text(json.dumps(config))
  with pytest.raises(ValueError, match="PEFT LORA adapter, not PROMPT_TUNING or P_TUNING"):
    prompt_files.load_prompt_file(str(tmp_path / "both"))


@pytest.mark.parametrize(
  "name,width",
  [
    ("google/t5-base-lm-adapt", 768),
    ("google/t5-v1_1-xxl", 4096),
    ("google/mt5-large", 1024),
    ("t5-small", 512),
    ("bert-base-uncased", None),  # not a T5
    ("google/t5-efficient-tiny", None),  # a size this project has no config for
  ],
)
def test_a_hub_names_t5_size_gives_its_width(name, width):
  assert export_peft.hub_model_width(name) == width


def test_a_prompt_exported_for_a_model_of_another_width_is_refused(tmp_path, capsys):
  """A 128-wide prompt labelled for google/t5-base-lm-adapt (768 wide) was written without a
  word; PeftModel would fail on it, or worse, load it into the wrong model."""
  prompt = tmp_path / "prompt.npy"
  np.save(prompt, np.zeros((4, 128), np.float32))
  argv = [f"--prompt_file={prompt}", f"--output_dir={tmp_path / 'adapter'}"]
  assert export_peft.main(argv + ["--base_model_name_or_path=google/t5-base-lm-adapt"]) == 2
  assert capsys.readouterr().err.strip() == (
    "export_peft: the prompt is 128 wide but google/t5-base-lm-adapt names a model 768 "
    "wide; export it for the model it was trained with"
  )
  assert not (tmp_path / "adapter").exists()
  assert export_peft.main(argv + ["--base_model_name_or_path=my-org/my-t5"]) == 0  # unknown


@pytest.mark.parametrize(
  "name,shape,says",
  [
    ("encoder.prefix.prefix.npy", (2, 2, 4, 2, 8), "is an encoder prefix (P-tuning v2)"),
    ("encoder.prompt.prompt.npy", (2, 4, 16), "is a per-layer prompt"),
  ],
)
def test_what_peft_has_no_adapter_for_is_refused(tmp_path, capsys, name, shape, says):
  """P-tuning v2's encoder prefix would otherwise be written as a decoder prefix."""
  step = tmp_path / "run" / "numpy_checkpoints" / "checkpoint_5"
  step.mkdir(parents=True)
  np.save(step / name, np.ones(shape, np.float32))
  argv = [f"--prompt_file={tmp_path / 'run'}", f"--output_dir={tmp_path / 'adapter'}"]
  assert export_peft.main(argv + ["--base_model_name_or_path=my-org/my-t5"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("export_peft: ") and says in err and err.count("\n") == 1
  assert not (tmp_path / "adapter").exists()


def _infer_vocabulary():
  """The vocabulary infer decodes with (configs/models/t5_1_1_prompt.gin: 100 sentinels),
  so that a sentinel decodes alike on both sides."""
  import seqio  # pylint: disable=g-import-not-at-top

  return seqio.SentencePieceVocabulary(str(conftest.VOCAB_PATH), extra_ids=100)


PREFIX_TEXTS = infer_run.TEXTS + [
  "frozen models serve many tasks",
  "b",
  "the cat sat on the mat",
  "prefix tuning puts keys and values first",
  "zebra",
  "one frozen T5, many prompts",
  "what is the capital of France?",
  "ok",
]


@pytest.mark.integration
def test_a_peft_prefix_tuning_adapter_decodes_here_as_peft_generate(
  tmp_path,
  hf_checkpoint,  # pylint: disable=redefined-outer-name
):
  import transformers  # pylint: disable=g-import-not-at-top

  _, hf_dir = hf_checkpoint
  torch.manual_seed(7)
  base = transformers.T5ForConditionalGeneration.from_pretrained(hf_dir)
  config = peft_lib.PrefixTuningConfig(task_type="SEQ_2_SEQ_LM", num_virtual_tokens=6)
  peft_lib.get_peft_model(base, config).save_pretrained(tmp_path / "adapter")
  served = peft_lib.PeftModel.from_pretrained(
    transformers.T5ForConditionalGeneration.from_pretrained(hf_dir), str(tmp_path / "adapter")
  ).eval()
  theirs = [_peft_greedy(served, _infer_vocabulary(), text) for text in PREFIX_TEXTS]

  ours = _infer(
    tmp_path,
    hf_dir,
    PREFIX_TEXTS,
    "--gin_file=configs/prompts/prefix_from_file.gin",
    f"--gin.PROMPT_FILE='{tmp_path / 'adapter'}'",
  )
  assert ours == theirs
  # The prefix matters (else equal answers say nothing): the model alone answers otherwise.
  plain = [
    _peft_greedy(served.get_base_model(), _infer_vocabulary(), text) for text in PREFIX_TEXTS
  ]
  assert plain != theirs and len(set(theirs)) > 1


@pytest.mark.integration
def test_a_peft_p_tuning_adapter_is_a_prompt_file(
  tmp_path,
  hf_checkpoint,  # pylint: disable=redefined-outer-name
  t5_vocabulary,
):
  """P-tuning saves its prompt encoder's output; on T5 that output is a soft prompt."""
  import transformers  # pylint: disable=g-import-not-at-top

  _, hf_dir = hf_checkpoint
  torch.manual_seed(8)
  base = transformers.T5ForConditionalGeneration.from_pretrained(hf_dir)
  config = peft_lib.PromptEncoderConfig(
    task_type="SEQ_2_SEQ_LM", num_virtual_tokens=5, encoder_hidden_size=32
  )
  peft_lib.get_peft_model(base, config).save_pretrained(tmp_path / "adapter")
  served = peft_lib.PeftModel.from_pretrained(
    transformers.T5ForConditionalGeneration.from_pretrained(hf_dir), str(tmp_path / "adapter")
  ).eval()
  theirs = [_peft_greedy(served, _infer_vocabulary(), text) for text in infer_run.TEXTS]
  assert prompt_files.load_prompt_file(str(tmp_path / "adapter")).shape == (5, 16)
  ours = _infer(
    tmp_path,
    hf_dir,
    infer_run.TEXTS,
    "--gin_file=configs/prompts/from_file.gin",
    f"--gin.PROMPT_FILE='{tmp_path / 'adapter'}'",
  )
  assert ours == theirs and len(set(theirs)) > 1


@pytest.mark.integration
def test_a_peft_multitask_adapter_is_a_bank_of_its_tasks_prompts(
  tmp_path,
  hf_checkpoint,  # pylint: disable=redefined-outer-name
  t5_vocabulary,
):
  """MPT's task t prompt is the shared prompt times a low-rank task matrix; PROMPT_FILES
  naming the adapter decodes one batch of mixed tasks as PeftModel.generate with task_ids."""
  import transformers  # pylint: disable=g-import-not-at-top

  _, hf_dir = hf_checkpoint
  torch.manual_seed(11)
  base = transformers.T5ForConditionalGeneration.from_pretrained(hf_dir)
  config = peft_lib.MultitaskPromptTuningConfig(
    task_type="SEQ_2_SEQ_LM", num_virtual_tokens=5, num_tasks=3, num_ranks=2
  )
  model = peft_lib.get_peft_model(base, config)
  encoder = model.prompt_encoder["default"]
  with torch.no_grad():  # far from PEFT's near-zero init, so that the tasks differ
    for weights in (encoder.embedding.weight, encoder.prefix_task_cols, encoder.prefix_task_rows):
      weights.copy_(torch.randn_like(weights))
  model.save_pretrained(tmp_path / "adapter")
  served = peft_lib.PeftModel.from_pretrained(
    transformers.T5ForConditionalGeneration.from_pretrained(hf_dir), str(tmp_path / "adapter")
  ).eval()
  texts = (infer_run.TEXTS * 3)[:16]
  tasks = [i % 3 for i in range(len(texts))]
  theirs = [
    _peft_greedy(served, _infer_vocabulary(), text, task_ids=torch.tensor([t]))
    for text, t in zip(texts, tasks)
  ]
  ours = _infer(
    tmp_path,
    hf_dir,
    texts,
    f"--gin.PROMPT_FILES='{tmp_path / 'adapter'}'",
    tasks=[str(t) for t in tasks],
  )
  assert ours == theirs
  assert len({theirs[i] for i in range(3)}) > 1 or len(set(theirs)) > 3  # the tasks differ


@pytest.mark.integration
def test_a_prefix_trained_here_exports_to_a_peft_adapter_that_decodes_the_same(
  tmp_path,
  hf_checkpoint,  # pylint: disable=redefined-outer-name
  capsys,
):
  """tiny.gin's 2 decoder layers: PEFT gives both the same rows, as PREFIX_LAYOUT='peft'
  trains them; a prefix with two different layers is refused in one line."""
  import transformers  # pylint: disable=g-import-not-at-top

  _, hf_dir = hf_checkpoint
  rng = np.random.default_rng(9)
  np.save(tmp_path / "rows.npy", rng.normal(size=(6, 4, 2, 8)).astype(np.float32))
  argv = [f"--output_dir={tmp_path / 'adapter'}", f"--base_model_name_or_path={hf_dir}"]
  assert export_peft.main([f"--prompt_file={tmp_path / 'rows.npy'}", *argv]) == 0
  ours = _infer(
    tmp_path,
    hf_dir,
    PREFIX_TEXTS,
    "--gin_file=configs/prompts/prefix_from_file.gin",
    f"--gin.PROMPT_FILE='{tmp_path / 'rows.npy'}'",
  )
  served = peft_lib.PeftModel.from_pretrained(
    transformers.T5ForConditionalGeneration.from_pretrained(hf_dir), str(tmp_path / "adapter")
  ).eval()
  assert ours == [_peft_greedy(served, _infer_vocabulary(), text) for text in PREFIX_TEXTS]
  assert len(set(ours)) > 1

  np.save(tmp_path / "layers.npy", rng.normal(size=(2, 2, 6, 2, 8)).astype(np.float32))
  capsys.readouterr()
  argv[0] = f"--output_dir={tmp_path / 'refused'}"
  assert export_peft.main([f"--prompt_file={tmp_path / 'layers.npy'}", *argv]) == 2
  assert capsys.readouterr().err.strip() == (
    "export_peft: PEFT gives decoder layers 0 and 1 the same prefix rows, but this prefix's "
    "differ; train it with PREFIX_LAYOUT='peft' to export it"
  )
  assert not (tmp_path / "refused").exists()
