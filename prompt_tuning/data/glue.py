"""The paper's GLUE tasks under the original codebase's module name.

    --gin.MIXTURE_OR_TASK_MODULE="'prompt_tuning.data.glue'"

Importing it registers every task `prompt_tuning.data.tasks` does (the paper's
tasks are registered together, `paper_tasks`), among them
`{,taskless_,task_index_}glue_{name}_v200{,_examples}`, so the original's
command lines name their tasks as they did.
"""

from prompt_tuning.data import tasks  # noqa: F401  pylint: disable=unused-import
