r"""Pretrains the bundled tiny T5.1.1 the paper's way, on the bundled WordNet corpus.

1. Span corruption from scratch (T5's objective: 15% noise, mean span 3) on
   `wordnet_span_corruption`, with the trainer's model-tuning mode
   (configs/runs/pretrain.gin).
2. LM adaptation: prefix language modeling on `wordnet_prefix_lm`, continuing
   from step 1 (configs/runs/lm_adapt.gin), as T5.1.1's LM-adapted checkpoints
   were made.
3. Conversion of the result to a Hugging Face directory (config.json +
   model.safetensors, float32), written to prompt_tuning/data/wordnet_tiny/:
   what configs/runs/wordnet_demo.gin and `make demo` use.

    python scripts/build_wordnet_tiny_model.py [--work_dir=/tmp/wordnet_tiny]

The architecture is configs/models/wordnet_tiny_prompt.gin. Training is
seeded (RANDOM_SEED 0: initialization, data order, dropout), so a rerun on a
machine with the same number of cores is meant to rebuild the same weights;
that has not been checked yet by a second full build (about 20 minutes on 2
cores).
"""

import argparse
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(REPO, "prompt_tuning", "data", "wordnet_tiny")


def _train(model_dir: str, run_file: str, task: str, steps: int, initial, lengths, batch):
  cmd = [sys.executable, "-m", "prompt_tuning.train",
         "--gin_file=configs/models/wordnet_tiny_prompt.gin", f"--gin_file={run_file}",
         f"--gin.MODEL_DIR='{model_dir}'", f"--gin.MIXTURE_OR_TASK_NAME='{task}'",
         "--gin.MIXTURE_OR_TASK_MODULE='prompt_tuning.data.tasks'",
         f"--gin.TASK_FEATURE_LENGTHS={lengths}", f"--gin.TRAIN_STEPS={steps}",
         f"--gin.INITIAL_CHECKPOINT_PATH={initial!r}", f"--gin.BATCH_SIZE={batch}"]
  print(" ".join(cmd), flush=True)
  subprocess.run(cmd, cwd=REPO, check=True)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--work_dir", default="/tmp/wordnet_tiny")
  parser.add_argument("--span_corruption_steps", type=int, default=4000)
  parser.add_argument("--lm_adapt_steps", type=int, default=1000)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--output", default=OUTPUT)
  args = parser.parse_args(argv)
  lengths = {"inputs": 64, "targets": 16}
  span = os.path.join(args.work_dir, "span_corruption")
  adapted = os.path.join(args.work_dir, "lm_adapt")
  _train(span, "configs/runs/pretrain.gin", "wordnet_span_corruption",
         args.span_corruption_steps, None, lengths, args.batch_size)
  _train(adapted, "configs/runs/lm_adapt.gin", "wordnet_prefix_lm", args.lm_adapt_steps, span,
         lengths, args.batch_size)
  subprocess.run([sys.executable, "scripts/convert_checkpoint.py", f"--input={adapted}",
                  f"--output={args.output}", "--to=huggingface"], cwd=REPO, check=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
