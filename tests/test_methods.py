"""docs/methods.md's commands, run as written (paths under /tmp moved to the test's own)."""

import json

import numpy as np
import pytest

from tests.helpers import doc_blocks

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_documented_prefix_commands(request, tmp_path):
  (block,) = doc_blocks.run_by(request, "docs/methods.md")
  result = doc_blocks.run_shell(block, tmp_path)
  assert "train: step=100 " in result.stdout
  # The prefix trained: 3 decoder layers, keys and values, 10 positions, 4 heads of 32.
  prefix = np.load(
    tmp_path / "prefix" / "numpy_checkpoints" / "checkpoint_100" / "decoder.prefix.prefix.npy"
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
