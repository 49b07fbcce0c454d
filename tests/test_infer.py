"""`python -m prompt_tuning.infer --input_file` against transformers' greedy generate()."""

import json
import os
import subprocess

import numpy as np
import pytest
import torch

from prompt_tuning.inference import decoding
from tests import conftest
from tests.helpers import infer_run

LENGTHS, TEXTS, run_infer = infer_run.LENGTHS, infer_run.TEXTS, infer_run.run_infer


@pytest.fixture(scope="module")
def hf_checkpoint(tmp_path_factory):
  return infer_run.save_hf_checkpoint(tmp_path_factory.mktemp("hf"))


@pytest.fixture(scope="module")
def hf_checkpoint_formats(hf_checkpoint, tmp_path_factory):
  """The same model as save_pretrained writes it: one safetensors file, sharded, and .bin."""
  model, single = hf_checkpoint
  sharded = tmp_path_factory.mktemp("hf_sharded")
  model.save_pretrained(sharded, max_shard_size="100KB")
  assert os.path.exists(sharded / "model.safetensors.index.json")
  binary = tmp_path_factory.mktemp("hf_bin")
  model.config.save_pretrained(binary)
  torch.save(model.state_dict(), binary / "pytorch_model.bin")
  return model, {"safetensors": single, "sharded": str(sharded), "bin": str(binary)}


def _reference(model, vocabulary, prompt, text):
  """HF greedy generate() on [prompt; embedded tokens] and the output's log-likelihood."""
  ids = list(vocabulary.encode(text))[: LENGTHS["inputs"] - 1] + [decoding.EOS_ID]
  table = model.shared.weight.detach().numpy()
  embeds = torch.from_numpy(np.concatenate([prompt, table[ids]])[None].astype(np.float32))
  with torch.no_grad():
    out = model.generate(
      inputs_embeds=embeds,
      attention_mask=torch.ones(embeds.shape[:2]),
      max_new_tokens=LENGTHS["targets"],
      do_sample=False,
      num_beams=1,
      min_length=0,
      decoder_start_token_id=0,
      eos_token_id=decoding.EOS_ID,
      pad_token_id=0,
    )[0, 1:].tolist()
    if decoding.EOS_ID in out:
      out = out[: out.index(decoding.EOS_ID) + 1]
    logits = model(inputs_embeds=embeds, decoder_input_ids=torch.tensor([[0] + out[:-1]])).logits
    logp = torch.log_softmax(logits[0], -1)[torch.arange(len(out)), torch.tensor(out)]
  text_ids = out[:-1] if out[-1:] == [decoding.EOS_ID] else out
  return vocabulary.decode(text_ids), float(logp.sum())


@pytest.mark.integration
@pytest.mark.parametrize(
  "prompt_length,kind",
  [(5, "safetensors"), (5, "sharded"), (5, "bin"), (0, "safetensors")],
  ids=["prompted", "prompted_sharded", "prompted_bin", "plain_t5"],
)
def test_infer_file_equals_transformers_greedy_generate(
  tmp_path, hf_checkpoint_formats, t5_vocabulary, prompt_length, kind
):
  model, dirs = hf_checkpoint_formats
  hf_dir = dirs[kind]
  prompt = np.random.default_rng(3).normal(size=(prompt_length, 16)).astype(np.float32)
  np.save(tmp_path / "prompt.npy", prompt)
  input_file = tmp_path / "in.jsonl"
  input_file.write_text("".join(json.dumps({"inputs": t}) + "\n" for t in TEXTS))
  output_file = tmp_path / "out" / "predictions.jsonl"
  extra = [f"--gin.PROMPT_LENGTH={prompt_length}"]
  if prompt_length:
    extra += [
      "--gin_file=configs/prompts/from_file.gin",
      f"--gin.PROMPT_FILE='{tmp_path / 'prompt.npy'}'",
    ]
  result = run_infer(tmp_path, hf_dir, input_file, output_file, *extra)
  assert "1 of 8 inputs were longer than 12 tokens" in result.stderr

  rows = [json.loads(line) for line in output_file.read_text().splitlines()]
  assert [r["inputs"] for r in rows] == TEXTS
  ends = set()
  for row in rows:
    want, score = _reference(model, t5_vocabulary, prompt, row["inputs"])
    assert row["prediction"] == want, row
    np.testing.assert_allclose(row["score"], score, atol=1e-3)
    ends.add(len(t5_vocabulary.encode(row["prediction"])))
  assert len(ends) > 1  # outputs of several lengths: EOS stops decoding per example


@pytest.mark.integration
def test_infer_reads_text_files_and_rejects_bad_lines(tmp_path, hf_checkpoint):
  _, hf_dir = hf_checkpoint
  (tmp_path / "in.txt").write_text("first input\n\nsecond input\n")
  out = tmp_path / "out.jsonl"
  run_infer(tmp_path, hf_dir, tmp_path / "in.txt", out, "--gin.PROMPT_LENGTH=0")
  assert [json.loads(r)["inputs"] for r in out.read_text().splitlines()] == [
    "first input",
    "second input",
  ]

  (tmp_path / "bad.jsonl").write_text('{"inputs": "ok"}\n{"text": "no inputs key"}\n')
  (tmp_path / "empty.txt").write_text("\n\n")
  for name, line in [
    ("bad.jsonl", f'error: {tmp_path}/bad.jsonl line 2 has no "inputs" string'),
    ("empty.txt", f"error: --input_file {tmp_path}/empty.txt holds no inputs"),
  ]:
    cmd, env = infer_run.command(
      hf_dir, tmp_path / name, tmp_path / "bad_out.jsonl", "--gin.PROMPT_LENGTH=0"
    )
    result = subprocess.run(
      cmd, cwd=conftest.REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    errors = [e for e in result.stderr.splitlines() if e.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith(line), result.stderr[-2000:]
    assert "Traceback" not in result.stderr  # one line, not a stack
    assert not (tmp_path / "bad_out.jsonl").exists()
