r"""Evaluates a frozen T5 with trained prompt(s) on a seqio task's split with its metrics.

    python -m prompt_tuning.eval \
      --gin_file=configs/models/t5_1_1_base_prompt.gin \
      --gin_file=configs/prompts/from_file.gin \
      --gin_file=configs/runs/prompt_eval.gin \
      --gin.INITIAL_CHECKPOINT_PATH="'/ckpts/t5_1_1_base'" \
      --gin.PROMPT_FILE="'/runs/sst2/numpy_checkpoints/checkpoint_30000'" \
      --gin.MIXTURE_OR_TASK_NAME="'taskless_glue_sst2_v200'" \
      --gin.MIXTURE_OR_TASK_MODULE="'prompt_tuning.data.tasks'" \
      --gin.TASK_FEATURE_LENGTHS="{'inputs': 128, 'targets': 8}" \
      --gin.EVAL_OUTPUT_DIR="'/tmp/sst2_eval'"

Writes seqio's metrics and predictions (JSON lines), TensorBoard summaries and
`metrics.json` under EVAL_OUTPUT_DIR, and prints a table. PROMPT_FILES=[...]
evaluates an ensemble (each member and the majority vote, in one pass);
PROMPT_FILES={task: file} gives each task of a mixture its own prompt.
EVAL_MODE='rank' with CLASS_LABELS=[...] scores each label instead of decoding.

REQUIRED macros (configs/runs/prompt_eval.gin): INITIAL_CHECKPOINT_PATH,
MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS, EVAL_OUTPUT_DIR, and PROMPT_FILE with
configs/prompts/from_file.gin (PROMPT_LENGTH comes from the file). The others,
with their defaults, are listed in the header of that run file and of
configs/models/t5_1_1_prompt.gin. `python -m prompt_tuning.tasks` lists the tasks.
"""

from typing import Sequence

from prompt_tuning import host

if __name__ == "__main__":
  host.set_up_process()

import gin  # pylint: disable=g-import-not-at-top

from prompt_tuning import cli  # pylint: disable=g-import-not-at-top
from prompt_tuning import gin_config
from prompt_tuning.checkpoints import prompt_files

REQUIRED_MACROS = (
  "INITIAL_CHECKPOINT_PATH",
  "MIXTURE_OR_TASK_NAME",
  "TASK_FEATURE_LENGTHS",
  "EVAL_OUTPUT_DIR",
)


def _infer_eval_step() -> None:
  """EVAL_STEP None: the step of the prompts evaluated (PROMPT_FILE's numpy checkpoint, or
  the one step every PROMPT_FILES member shares), else 0."""
  if gin_config.optional_macro("EVAL_STEP") is not None:
    return
  files = gin_config.optional_macro("PROMPT_FILES")
  if files is None:
    files = [gin_config.optional_macro("PROMPT_FILE")]
  elif isinstance(files, str):  # one directory holding a bank (a multi-task run, an MPT adapter)
    files = [files]
  elif isinstance(files, dict):
    files = list(files.values())
  steps = {prompt_files.step_of(f) for f in files if isinstance(f, str)}
  step = steps.pop() if len(steps) == 1 and None not in steps else 0
  with gin.unlock_config():
    gin.parse_config(f"EVAL_STEP = {step}")


def main(argv: Sequence[str]) -> None:
  cli.parse_flags_and_gin(argv, REQUIRED_MACROS, read_directly=("EVAL_OUTPUT_DIR",))
  gin_config.check_prompt_sources()
  host.use_a_cpu_device_per_core(gin.query_parameter("%BATCH_SIZE"))
  _infer_eval_step()
  run = gin_config.macro_value("RUN", "include configs/runs/prompt_eval.gin")
  run()
  # Once EVAL_OUTPUT_DIR holds the results: an evaluation stopped by bad input leaves none.
  cli.keep_full_log(gin.query_parameter("%EVAL_OUTPUT_DIR"))
  print(f"eval: metrics={gin.query_parameter('%EVAL_OUTPUT_DIR')}/metrics.json")


if __name__ == "__main__":
  cli.run(main)
