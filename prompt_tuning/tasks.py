r"""Lists the registered seqio tasks and mixtures: what MIXTURE_OR_TASK_NAME can be.

    python -m prompt_tuning.tasks                        # this project's tasks
    python -m prompt_tuning.tasks --module=my_tasks      # and a module of your own
    python -m prompt_tuning.tasks --filter=glue_sst2

Each line is a name, its kind and its splits (mixtures: their tasks). The default
module is `prompt_tuning.data.tasks`, what MIXTURE_OR_TASK_MODULE names for the
paper's tasks and the bundled WordNet ones.
"""

import sys
from typing import Sequence

from absl import app
from absl import flags

FLAGS = flags.FLAGS
flags.DEFINE_multi_string(
  "module",
  ["prompt_tuning.data.tasks"],
  "Modules to import first (each registers tasks), as MIXTURE_OR_TASK_MODULE does.",
)
flags.DEFINE_string("filter", "", "Only names containing this text.")


def listing(modules: Sequence[str], text: str = "") -> list[str]:
  """One line per registered task or mixture whose name contains `text`."""
  import seqio  # pylint: disable=g-import-not-at-top
  from prompt_tuning.data import registry  # pylint: disable=g-import-not-at-top

  for module in modules:
    registry.import_task_module(module)
  lines = []
  for name in sorted(seqio.TaskRegistry.names()):
    if text in name:
      lines.append(f"{name}  task  {_splits(seqio.TaskRegistry.get(name))}")
  for name in sorted(seqio.MixtureRegistry.names()):
    if text in name:
      tasks = ", ".join(t.name for t in seqio.MixtureRegistry.get(name).tasks)
      lines.append(f"{name}  mixture  tasks: {tasks}")
  return lines


NO_DATA = "no data: "  # what a task's line says instead of its splits


def _splits(task) -> str:
  """`splits: train, validation`, or why there are none (a tfds dataset not prepared)."""
  try:
    return "splits: " + ", ".join(task.splits)
  except Exception:  # pylint: disable=broad-except
    # seqio finds no split when the source's data is missing (e.g. a tfds dataset not
    # prepared in TFDS_DATA_DIR); a listing lists it all the same.
    source = getattr(task, "source", None)
    tfds_name = getattr(source, "tfds_dataset", None)
    tfds_name = getattr(tfds_name, "name", None) or getattr(source, "_tfds_name", None)
    what = f"tfds dataset {tfds_name} not prepared" if tfds_name else "its source has no splits"
    return f"{NO_DATA}{what}"


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  lines = listing(FLAGS.module, FLAGS.filter)
  print("\n".join(lines) if lines else f"no task or mixture name contains {FLAGS.filter!r}")
  missing = sum(NO_DATA in line for line in lines)
  print(
    f"tasks: {len(lines)} registered names{' matching' if FLAGS.filter else ''}"
    + (
      f"; {missing} without their data (tfds datasets not prepared here: `tfds build` them, "
      "or point TFDS_DATA_DIR / --tfds_data_dir at them)"
      if missing
      else ""
    ),
    file=sys.stderr,
  )


if __name__ == "__main__":
  from prompt_tuning import cli  # pylint: disable=g-import-not-at-top

  cli.run(main)
