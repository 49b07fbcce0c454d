r"""Writes a prompt trained here as a Hugging Face PEFT adapter: a prompt-tuning adapter, or a
prefix-tuning adapter for a decoder prefix.

    python scripts/export_peft.py --prompt_file=/runs/sst2/numpy_checkpoints/checkpoint_30000 \
      --output_dir=/tmp/sst2_adapter --base_model_name_or_path=google/t5-base-lm-adapt

Then, with transformers and peft:

    model = transformers.T5ForConditionalGeneration.from_pretrained("google/t5-base-lm-adapt")
    model = peft.PeftModel.from_pretrained(model, "/tmp/sst2_adapter")
    model.generate(input_ids=..., attention_mask=...)

--prompt_file takes what PROMPT_FILE does (a .npy file, a numpy checkpoint
directory, a training run's MODEL_DIR, or another PEFT adapter). A prompt's adapter
prompts the encoder only (num_transformer_submodules=1), as the paper and this
project do; a prefix's is PEFT's seq2seq prefix adapter (PEFT's own two submodules).
Per-layer prompts and P-tuning v2's encoder prefix have no PEFT form and are refused.
The reverse needs no script: a PEFT adapter directory is accepted wherever a
PROMPT_FILE is (docs/methods.md).
"""

import argparse
import json
import os
import re
import sys
from typing import Optional

import numpy as np

from prompt_tuning.checkpoints import prompt_files
from prompt_tuning.checkpoints import peft


SIZES = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  "prompt_tuning",
  "configs",
  "models",
  "sizes",
)


def hub_model_width(name: str) -> Optional[int]:
  """The width (d_model) of the T5 / mT5 size a hub name names, from configs/models/sizes/;
  None when it names none (or more than one)."""
  base = name.rstrip("/").rsplit("/", 1)[-1].lower()
  if not re.match(r"(m?t5|t5-v1_1)\b", base):
    return None
  sizes = set(re.findall(r"(?<![a-z])(small|base|large|xxl|xl)(?![a-z])", base))
  if len(sizes) != 1:
    return None
  with open(os.path.join(SIZES, f"{sizes.pop()}.gin")) as f:
    return int(re.search(r"^EMBED_DIM = (\d+)", f.read(), flags=re.M)[1])


def _holds_a_prefix(path: str) -> bool:
  """Whether PROMPT_FILE `path` (not a PEFT adapter) holds a decoder prefix, 5-D."""
  if peft.is_adapter(path):
    return False
  return np.load(prompt_files.resolve_prompt_file(path), mmap_mode="r").ndim in (4, 5)


def _refuse_what_peft_lacks(path: str) -> None:
  """Per-layer prompts and P-tuning v2's encoder prefix have no PEFT adapter form."""
  if peft.is_adapter(path):
    return
  resolved = prompt_files.resolve_prompt_file(path)
  if os.path.basename(resolved).startswith("encoder.prefix."):
    raise ValueError(
      f"{resolved} is an encoder prefix (P-tuning v2); PEFT puts a T5 prefix in the "
      "decoder only, so it has no PEFT adapter form"
    )
  if np.load(resolved, mmap_mode="r").ndim == 3:
    raise ValueError(f"{resolved} is a per-layer prompt, which PEFT has no adapter for")


def _export_prefix(args) -> int:
  """A prefix (prefix tuning) as a PEFT prefix-tuning adapter."""
  prefix = np.load(prompt_files.resolve_prompt_file(args.prompt_file))
  if prefix.ndim == 4:  # PREFIX_LAYOUT='peft': [P, 2L, heads, head_dim], PEFT's rows
    prefix = peft.prefix_from_peft(
      prefix.reshape(prefix.shape[0], -1), prefix.shape[1] // 2, prefix.shape[2]
    )
  config_path = os.path.join(args.base_model_name_or_path, "config.json")
  if os.path.exists(config_path):
    with open(config_path) as f:
      base = json.load(f)
    layers, _, _, heads, head_dim = prefix.shape
    want = (base.get("num_decoder_layers") or base.get("num_layers"), base.get("num_heads"))
    if want != (layers, heads) or base.get("d_kv") not in (None, head_dim):
      print(
        f"export_peft: the prefix is for {layers} decoder layers of {heads} heads of "
        f"{head_dim}, but {config_path} has {want[0]} layers of {want[1]} heads of "
        f"{base.get('d_kv')}; export it for the model it was trained with",
        file=sys.stderr,
      )
      return 2
  peft.write_prefix_adapter(prefix, args.output_dir, args.base_model_name_or_path)
  print(f"export_peft: wrote a {prefix.shape[2]}-position prefix to {args.output_dir}")
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    description=__doc__.split("\n")[0],
    formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog=__doc__.split("\n", 2)[2],
  )
  parser.add_argument("--prompt_file", required=True, help="the prompt (see PROMPT_FILE)")
  parser.add_argument("--output_dir", required=True, help="the adapter directory to write")
  parser.add_argument(
    "--base_model_name_or_path",
    required=True,
    help="the transformers T5 the prompt belongs to (hub name or directory)",
  )
  args = parser.parse_args(argv)
  try:
    _refuse_what_peft_lacks(args.prompt_file)
    if _holds_a_prefix(args.prompt_file):
      return _export_prefix(args)
    prompt = prompt_files.load_prompt_file(args.prompt_file)
  except (OSError, ValueError) as e:
    print(f"export_peft: {e}", file=sys.stderr)
    return 2
  layers = heads = None
  config_path = os.path.join(args.base_model_name_or_path, "config.json")
  if os.path.exists(config_path):  # a local base model: record its shape as PEFT does
    with open(config_path) as f:
      base = json.load(f)
    layers, heads = base.get("num_layers"), base.get("num_heads")
    if base.get("d_model") not in (None, prompt.shape[1]):
      print(
        f"export_peft: the prompt is {prompt.shape[1]} wide but {config_path} has "
        f"d_model={base['d_model']}; export it for the model it was trained with",
        file=sys.stderr,
      )
      return 2
  else:  # a hub name: the T5 size it names (t5-base-lm-adapt, t5-v1_1-xxl, mt5-large, ...)
    width = hub_model_width(args.base_model_name_or_path)
    if width not in (None, prompt.shape[1]):
      print(
        f"export_peft: the prompt is {prompt.shape[1]} wide but {args.base_model_name_or_path} "
        f"names a model {width} wide; export it for the model it was trained with",
        file=sys.stderr,
      )
      return 2
  peft.write_adapter(prompt, args.output_dir, args.base_model_name_or_path, layers, heads)
  print(f"export_peft: wrote a {prompt.shape[0]}x{prompt.shape[1]} prompt to {args.output_dir}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
