r"""Prompt tuning (or model tuning) of a T5.1.1 model, configured with gin.

Trains what WHAT_TRAINS selects (the prompt by default) on a seqio task or
mixture, over a (data, model) mesh, checkpointing only what changed. Rerunning
the same command resumes from MODEL_DIR's latest checkpoint.

    python -m prompt_tuning.train \
      --gin_file=configs/models/t5_1_1_small_prompt.gin \
      --gin_file=configs/runs/prompt_finetune.gin \
      --gin.MODEL_DIR="'/tmp/sst2_prompt'" \
      --gin.MIXTURE_OR_TASK_NAME="'my_task'" \
      --gin.MIXTURE_OR_TASK_MODULE="'my_tasks'" \
      --gin.TASK_FEATURE_LENGTHS="{'inputs': 128, 'targets': 8}" \
      --gin.TRAIN_STEPS=30000 \
      --gin.INITIAL_CHECKPOINT_PATH=None

`--gin.NAME=VALUE` overrides any binding after the gin files (values are gin
expressions: strings keep their quotes). A macro that nothing reads (a typo)
stops the run before anything is written.

REQUIRED macros (configs/runs/prompt_finetune.gin): MODEL_DIR,
MIXTURE_OR_TASK_NAME, TASK_FEATURE_LENGTHS, TRAIN_STEPS, INITIAL_CHECKPOINT_PATH.
The others, with their defaults, are listed in the header of that run file and of
configs/models/t5_1_1_prompt.gin (the model) and configs/prompts/*.gin (the
prompt's initialization). `python -m prompt_tuning.tasks` lists the tasks.
Ctrl-C (or SIGTERM) saves the current step and stops; rerun to resume.
--verbose also shows the libraries' INFO logs (orbax, seqio, TensorFlow) on the
console; they always go to the full log, MODEL_DIR/train.full.log.
"""

import os
from typing import Sequence

from prompt_tuning import host

# First of all, before the heavy imports: take PROMPT_TUNING_CPU_CORES cores if
# set, and restart once with glibc's huge-page tunable (see host.py; its speed-up is in
# BENCHMARKS.md).
if __name__ == "__main__":
  host.set_up_process()

from absl import flags  # pylint: disable=g-import-not-at-top
import gin
import jax

from prompt_tuning import cli  # pylint: disable=g-import-not-at-top
from prompt_tuning import gin_config
from prompt_tuning.checkpoints import layout

RUN_REQUIRED_MACROS = (
  "MODEL_DIR",
  "MIXTURE_OR_TASK_NAME",
  "TASK_FEATURE_LENGTHS",
  "TRAIN_STEPS",
  "INITIAL_CHECKPOINT_PATH",
)
READ_DIRECTLY = ("MODEL_DIR",)  # macros this entry point reads itself

FLAGS = flags.FLAGS
flags.DEFINE_bool(
  "multiprocess",
  False,
  "Call jax.distributed.initialize() (one process per "
  "host of a TPU pod or GPU cluster; JAX finds its peers from the platform or "
  "from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID).",
)
rewrite_gin_args = cli.rewrite_gin_args


def _initialize_distributed() -> None:
  """jax.distributed.initialize(), from the platform or the JAX_* environment variables."""
  ids = {
    key: int(os.environ[name])
    for key, name in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID"))
    if name in os.environ
  }
  # Collectives between CPU hosts (accelerator platforms bring their own).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(**ids)


def main(argv: Sequence[str]) -> None:
  cli.parse_flags_and_gin(argv, RUN_REQUIRED_MACROS, read_directly=READ_DIRECTLY)
  # Before anything starts JAX's backends.
  host.use_a_cpu_device_per_core(gin.query_parameter("%BATCH_SIZE"))
  if FLAGS.multiprocess or os.environ.get("JAX_COORDINATOR_ADDRESS"):
    _initialize_distributed()
  run = gin_config.macro_value("RUN", "include configs/runs/prompt_finetune.gin")
  model_dir = gin.query_parameter("%MODEL_DIR")

  def write_operative_config():
    os.makedirs(model_dir, exist_ok=True)
    cli.keep_full_log(model_dir)
    with open(layout.config_file(model_dir), "w") as f:
      f.write(gin.operative_config_str())

  result = run(on_start=write_operative_config)
  saved = (  # the prompt, or (nothing else trains a prompt) the whole checkpoint
    f"prompt={result['numpy_checkpoint_dir']}"
    if result["numpy_checkpoint_dir"]
    else f"checkpoint={result['checkpoint_dir']}"
  )
  print(
    f"train: step={result['step']} loss={result['metrics'].get('loss', float('nan')):.4f} {saved}"
  )


if __name__ == "__main__":
  cli.run(main)
