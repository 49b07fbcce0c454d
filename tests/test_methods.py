"""docs/methods.md's commands, run as written (paths under /tmp moved to the test's own)."""

import json

import numpy as np
import pytest

from tests.helpers import doc_blocks

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_documented_prefix_commands(request, tmp_path):
  (block,) = doc_blocks.run_by(request, "docs/methods.md")
  result = doc_blocks.run_shell(block, tmp_path)
  assert "train: step=10 " in result.stdout
  # The prefix trained: 3 decoder layers, keys and values, 10 positions, 4 heads of 32.
  prefix = np.load(
    tmp_path / "prefix" / "numpy_checkpoints" / "checkpoint_10" / "decoder.prefix.prefix.npy"
  )
  assert prefix.shape == (3, 2, 10, 4, 32)
  (line,) = (tmp_path / "out.jsonl").read_text().splitlines()
  assert json.loads(line)["prediction"]
  config = json.loads((tmp_path / "prefix_adapter" / "adapter_config.json").read_text())
  assert (config["peft_type"], config["num_layers"], config["num_virtual_tokens"]) == (
    "PREFIX_TUNING",
    3,
    10,
  )


def test_the_documented_deep_prompt_commands(request, tmp_path):
  (block,) = doc_blocks.run_by(request, "docs/methods.md")
  result = doc_blocks.run_shell(block, tmp_path)
  assert "train: step=10 " in result.stdout
  # 3 encoder layers: a per-layer prompt of 10 positions, an encoder prefix of 10 (4 heads of 32).
  for run, name, shape in (
    ("per_layer", "encoder.prompt.prompt.npy", (3, 10, 128)),
    ("p_tuning_v2", "encoder.prefix.prefix.npy", (3, 2, 10, 4, 32)),
  ):
    value = np.load(tmp_path / run / "numpy_checkpoints" / "checkpoint_10" / name)
    assert value.shape == shape
  rows = [json.loads(r) for r in (tmp_path / "out.jsonl").read_text().splitlines()]
  assert [r["task"] for r in rows] == ["step5", "step10"] and all(r["prediction"] for r in rows)


def test_the_documented_wayward_command(request, tmp_path):
  (block,) = doc_blocks.run_by(request, "docs/methods.md")
  result = doc_blocks.run_shell(block, tmp_path)
  assert "nearest tokens at step 10: " in result.stderr
  metrics = [
    json.loads(r) for r in (tmp_path / "wayward" / "metrics.jsonl").read_text().splitlines()
  ]
  assert any("train/wayward_distance" in r for r in metrics)
  (last,) = [r for r in metrics if "eval/wayward/nearest_match" in r]
  assert 0.0 <= last["eval/wayward/nearest_match"] <= 1.0


def test_the_documented_multitask_commands(request, tmp_path):
  (block,) = doc_blocks.run_by(request, "docs/methods.md")
  result = doc_blocks.run_shell(block, tmp_path)
  assert "train: step=10 " in result.stdout
  # 'concat': a shared prompt of PROMPT_LENGTH and each of the 2 tasks' 5 vectors.
  step = tmp_path / "multitask" / "numpy_checkpoints" / "checkpoint_10"
  shared = np.load(step / "encoder.prompt.shared.npy")
  assert np.load(step / "encoder.prompt.tasks.npy").shape == (2, 5, shared.shape[1])
  rows = [json.loads(r) for r in (tmp_path / "mixed_out.jsonl").read_text().splitlines()]
  assert [r["task"] for r in rows] == ["wordnet_supersense", "wordnet_hypernym"]
  assert all(r["prediction"] for r in rows)
