r"""`make demo`: prompt-tune the bundled tiny model on the bundled WordNet task, then evaluate.

Runs the project's own commands, as a user would:

1. `python -m prompt_tuning.train` with configs/runs/wordnet_demo.gin: a
   20-token prompt, initialized from the embeddings of the eight class labels,
   trained on `wordnet_supersense` (inputs "<lemma>: <definition>", targets
   the noun's supersense) while the pretrained tiny T5 stays frozen;
2. `python -m prompt_tuning.eval` on the validation split (lemmas never seen
   in training) with the learned prompt file, writing predictions and
   metrics;

and prints, last, `demo: <task> validation accuracy=<x> majority_baseline=<y>
prompt=<path>` (accuracy in percent; the baseline always answers the most
frequent training label). `--random_model` runs the same with a randomly
initialized frozen model of the same shape instead of the pretrained one, to
show what pretraining contributes.

    python scripts/demo.py [--output_dir=build/demo] [--random_model]
"""

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASK = "wordnet_supersense"
PROMPT_LENGTH = 20  # as configs/runs/wordnet_demo.gin
LENGTHS = {"inputs": 48, "targets": 4}


def _run(cmd: list[str]) -> None:
  print("+ " + " ".join(cmd), flush=True)
  subprocess.run(cmd, cwd=REPO, check=True)


def _random_checkpoint(directory: str) -> str:
  """The bundled model's shape with random weights (seed 0), as a Hugging Face directory."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import tree
  from prompt_tuning import gin_config  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import convert  # pylint: disable=g-import-not-at-top
  import flax.linen as nn  # pylint: disable=g-import-not-at-top

  gin_config.parse_gin(["configs/models/wordnet_tiny_prompt.gin", "configs/prompts/no_prompt.gin"])
  model = gin_config.build_model()
  x = np.ones((1, 2), np.int32)
  params = jax.device_get(nn.meta.unbox(model.init(jax.random.key(0), x, x)))["params"]
  convert.to_huggingface({k: np.asarray(v) for k, v in tree.flatten(params).items()}, directory)
  return directory


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output_dir", default=os.path.join(REPO, "build", "demo"))
  parser.add_argument(
    "--random_model",
    action="store_true",
    help="a randomly initialized frozen model instead of the pretrained one",
  )
  args = parser.parse_args(argv)
  start = time.time()
  sys.path.insert(0, REPO)
  from prompt_tuning import host  # pylint: disable=g-import-not-at-top

  host.import_tensorflow_quietly()  # the data modules import it: its loading lines, caught
  from prompt_tuning.data import wordnet  # pylint: disable=g-import-not-at-top

  out = os.path.abspath(args.output_dir) + ("_random_model" if args.random_model else "")
  if os.path.exists(out):
    shutil.rmtree(out)  # a fresh run, not a resumed one
  os.makedirs(out)
  model_dir, eval_dir = os.path.join(out, "prompt"), os.path.join(out, "eval")
  overrides, random_dir = [], None
  if args.random_model:
    random_dir = _random_checkpoint(os.path.join(out, "random_frozen_model"))
    overrides.append(f"--gin.INITIAL_CHECKPOINT_PATH='{random_dir}'")

  _run(
    [
      sys.executable,
      "-m",
      "prompt_tuning.train",
      "--gin_file=configs/runs/wordnet_demo.gin",
      f"--gin.MODEL_DIR='{model_dir}'",
      *overrides,
    ]
  )
  frozen = random_dir if args.random_model else wordnet.bundled_checkpoint()
  _run(
    [
      sys.executable,
      "-m",
      "prompt_tuning.eval",
      "--gin_file=configs/models/wordnet_tiny_prompt.gin",
      "--gin_file=configs/prompts/from_file.gin",
      "--gin_file=configs/runs/prompt_eval.gin",
      f"--gin.INITIAL_CHECKPOINT_PATH='{frozen}'",
      f"--gin.PROMPT_FILE='{model_dir}'",
      f"--gin.PROMPT_LENGTH={PROMPT_LENGTH}",
      f"--gin.MIXTURE_OR_TASK_NAME='{TASK}'",
      "--gin.MIXTURE_OR_TASK_MODULE='prompt_tuning.data.tasks'",
      f"--gin.TASK_FEATURE_LENGTHS={LENGTHS}",
      f"--gin.EVAL_OUTPUT_DIR='{eval_dir}'",
    ]
  )

  with open(os.path.join(eval_dir, "metrics.json")) as f:
    accuracy = json.load(f)["results"][TASK]["."]["accuracy"]
  majority = collections.Counter(r["targets"] for r in wordnet.read_split("train")).most_common(1)
  validation = [r["targets"] for r in wordnet.read_split("validation")]
  baseline = 100.0 * validation.count(majority[0][0]) / len(validation)
  steps = sorted(
    int(n.split("_")[1]) for n in os.listdir(os.path.join(model_dir, "numpy_checkpoints"))
  )
  prompt = os.path.join(
    model_dir, "numpy_checkpoints", f"checkpoint_{steps[-1]}", "encoder.prompt.prompt.npy"
  )
  print(f"demo: finished in {time.time() - start:.0f}s; predictions in {eval_dir}")
  print(
    f"demo: {TASK} validation accuracy={accuracy:.1f} majority_baseline={baseline:.1f} "
    f"prompt={prompt}"
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
