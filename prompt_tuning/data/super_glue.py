"""The paper's SuperGLUE tasks under the original codebase's module name.

    --gin.MIXTURE_OR_TASK_MODULE="'prompt_tuning.data.super_glue'"

Importing it registers every task `prompt_tuning.data.tasks` does (the paper's
tasks are registered together, `paper_tasks`), among them
`{,taskless_,task_index_}super_glue_{name}_v102{,_examples}` and `super_glue_v102`.
"""

from prompt_tuning.data import tasks  # noqa: F401  pylint: disable=unused-import
