r"""Predictions from a frozen T5 and trained prompt(s), for a file or a task's split.

    python -m prompt_tuning.infer \
      --gin_file=configs/models/t5_1_1_base_prompt.gin \
      --gin_file=configs/prompts/from_file.gin \
      --gin_file=configs/runs/prompt_infer.gin \
      --gin.INITIAL_CHECKPOINT_PATH="'/ckpts/t5_1_1_base'" \
      --gin.PROMPT_FILE="'/runs/sst2/numpy_checkpoints/checkpoint_30000'" \
      --gin.TASK_FEATURE_LENGTHS="{'inputs': 128, 'targets': 8}" \
      --input_file=in.jsonl --output_file=out.jsonl

`in.jsonl` holds one JSON object per line with an "inputs" string (a `.txt`
file: one input per line); `out.jsonl` gets, in the same order, "inputs",
"prediction" and "score" (the prediction's log-likelihood). PROMPT_FILES
(a list: an ensemble; a dict: one prompt per task, named by each line's
"task") replaces PROMPT_FILE. Without --input_file, MIXTURE_OR_TASK_NAME's
split is predicted into INFER_OUTPUT_DIR. Add
configs/models/decoding/beam_search.gin (or nucleus_sampling.gin) after the
run file for other decoding.

REQUIRED macros (configs/runs/prompt_infer.gin): INITIAL_CHECKPOINT_PATH,
TASK_FEATURE_LENGTHS, and PROMPT_FILE with configs/prompts/from_file.gin
(PROMPT_LENGTH comes from the file). The others, with their defaults, are listed
in the header of that run file and of configs/models/t5_1_1_prompt.gin.
"""

import os
from typing import Sequence

from prompt_tuning import host

if __name__ == "__main__":
  host.set_up_process()

from absl import flags  # pylint: disable=g-import-not-at-top
import gin

from prompt_tuning import cli  # pylint: disable=g-import-not-at-top
from prompt_tuning import gin_config

REQUIRED_MACROS = ("INITIAL_CHECKPOINT_PATH", "TASK_FEATURE_LENGTHS")

FLAGS = flags.FLAGS
flags.DEFINE_string(
  "input_file",
  None,
  "Inputs: .jsonl with an \"inputs\" string per line "
  "(and \"task\" with a PROMPT_FILES dict), or a text file, one per line.",
)
flags.DEFINE_string(
  "output_file",
  None,
  "Where predictions go, one JSON object per line "
  "(default: beside the input file, or under INFER_OUTPUT_DIR).",
)


def main(argv: Sequence[str]) -> None:
  cli.parse_flags_and_gin(argv, REQUIRED_MACROS)
  gin_config.check_prompt_sources()
  host.use_a_cpu_device_per_core(gin.query_parameter("%BATCH_SIZE"))
  run = gin_config.macro_value("RUN", "include configs/runs/prompt_infer.gin")
  path = run(input_file=FLAGS.input_file, output_file=FLAGS.output_file)
  cli.keep_full_log(os.path.dirname(os.path.abspath(path)))
  print(f"infer: predictions={path}")


if __name__ == "__main__":
  cli.run(main)
