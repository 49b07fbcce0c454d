"""Registers this project's seqio tasks: import it as MIXTURE_OR_TASK_MODULE.

    --gin.MIXTURE_OR_TASK_MODULE="'prompt_tuning.data.tasks'"

Bundled (offline): `wordnet_supersense`, `wordnet_span_corruption`,
`wordnet_prefix_lm` (see `prompt_tuning.data.wordnet`).
"""

from prompt_tuning.data import wordnet  # pylint: disable=unused-import
