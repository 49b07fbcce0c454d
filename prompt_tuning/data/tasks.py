"""Registers this project's seqio tasks: import it as MIXTURE_OR_TASK_MODULE.

    --gin.MIXTURE_OR_TASK_MODULE="'prompt_tuning.data.tasks'"

Bundled (offline): `wordnet_supersense`, `wordnet_hypernym`,
`wordnet_span_corruption`, `wordnet_prefix_lm` (see `prompt_tuning.data.wordnet`). The paper's SuperGLUE,
GLUE and domain-transfer tasks, reading tfds (see
`prompt_tuning.data.paper_tasks`), e.g. `taskless_super_glue_boolq_v102`,
`taskless_glue_sst2_v200`, `super_glue_v102`, `mrqa_bioasq_v100`.
"""

from prompt_tuning.data import wordnet  # pylint: disable=unused-import
from prompt_tuning.data import paper_tasks  # pylint: disable=unused-import,g-bad-import-order


def class_labels(task: str) -> list[str]:
  """The class labels of a task registered here, as its targets spell them: a bundled
  WordNet task's, or a GLUE / SuperGLUE task's (`paper_tasks.class_labels`).

  For class-label prompt initialization with the labels of whichever task a run
  trains (configs/prompts/from_task_class_labels.gin).
  """
  if task in wordnet.TASK_LABELS:
    return list(wordnet.TASK_LABELS[task])
  return paper_tasks.class_labels(task)
