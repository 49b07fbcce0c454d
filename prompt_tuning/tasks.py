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
flags.DEFINE_multi_string("module", ["prompt_tuning.data.tasks"],
                          "Modules to import first (each registers tasks), as "
                          "MIXTURE_OR_TASK_MODULE does.")
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
      splits = ", ".join(seqio.TaskRegistry.get(name).splits)
      lines.append(f"{name}  task  splits: {splits}")
  for name in sorted(seqio.MixtureRegistry.names()):
    if text in name:
      tasks = ", ".join(t.name for t in seqio.MixtureRegistry.get(name).tasks)
      lines.append(f"{name}  mixture  tasks: {tasks}")
  return lines


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  lines = listing(FLAGS.module, FLAGS.filter)
  print("\n".join(lines) if lines else f"no task or mixture name contains {FLAGS.filter!r}")
  print(f"tasks: {len(lines)} registered names{' matching' if FLAGS.filter else ''}",
        file=sys.stderr)


if __name__ == "__main__":
  from prompt_tuning import cli  # pylint: disable=g-import-not-at-top
  cli.run(main)
