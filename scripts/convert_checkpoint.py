r"""Converts a T5 checkpoint between formats.

    # Hugging Face -> this project (then INITIAL_CHECKPOINT_PATH=/ckpts/t5_base_ours)
    python scripts/convert_checkpoint.py --input=/hf/t5-base-lm-adapt \
      --output=/ckpts/t5_base_ours --to=ours

    # t5x -> this project (a checkpoint_<step> directory, or the directory holding them)
    python scripts/convert_checkpoint.py \
      --input=/ckpts/t5_1_1_lm100k_base/checkpoint_1100000 --output=/ckpts/base_ours --to=ours

    # this project (a model-tuned or pretrained MODEL_DIR) -> Hugging Face
    python scripts/convert_checkpoint.py --input=/runs/model_tuned --output=/hf/tuned \
      --to=huggingface
    # then: transformers.T5ForConditionalGeneration.from_pretrained("/hf/tuned")

The input format is detected (as INITIAL_CHECKPOINT_PATH's is): this project's
checkpoints, Hugging Face T5/mT5 directories, t5x legacy checkpoints. Only the
model's parameters are converted (optimizer states are dropped); dtypes are
kept unless --dtype casts them (rounding to nearest even). Every format reads straight as INITIAL_CHECKPOINT_PATH, so converting to
this project's format only saves reading time later. The Hugging Face output
holds T5.1.1's untied logits layer as `lm_head.weight` with
`tie_word_embeddings: false` in config.json (transformers 5 then neither ties
nor rescales it); the tokenizer is not written (use the base model's).
"""

import argparse
import sys

from prompt_tuning.checkpoints import convert


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
    description=__doc__.split("\n")[0],
    formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog=__doc__.split("\n", 2)[2],
  )
  parser.add_argument("--input", required=True, help="the checkpoint to read (any format)")
  parser.add_argument("--output", required=True, help="the directory to write")
  parser.add_argument(
    "--to",
    required=True,
    choices=("ours", "huggingface"),
    help="ours: this project's orbax checkpoint; huggingface: config.json + model.safetensors",
  )
  parser.add_argument(
    "--relative_attention_max_distance",
    type=int,
    default=128,
    help="written to config.json (--to=huggingface); not in the weights",
  )
  parser.add_argument(
    "--layer_norm_epsilon",
    type=float,
    default=1e-6,
    help="written to config.json (--to=huggingface)",
  )
  parser.add_argument(
    "--dtype",
    choices=sorted(convert.DTYPES),
    help="cast every parameter to this dtype (default: keep the stored "
    "dtypes); bfloat16 halves a float32 checkpoint, as T5's are shipped",
  )
  args = parser.parse_args(argv)
  try:
    params = convert.read_all(args.input)
    if args.dtype:
      params = convert.cast(params, args.dtype)
    if args.to == "ours":
      where = convert.to_own(params, args.output, source=args.input)
    else:
      convert.to_huggingface(
        params,
        args.output,
        relative_attention_max_distance=args.relative_attention_max_distance,
        layer_norm_epsilon=args.layer_norm_epsilon,
      )
      where = args.output
  except (OSError, ValueError) as e:
    print(f"convert_checkpoint: {e}", file=sys.stderr)
    return 2
  print(f"convert_checkpoint: {len(params)} parameters -> {where}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
