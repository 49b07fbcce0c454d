"""Multi-task mixtures for multi-task prompts (configs/prompts/multitask.gin).

A multi-task prompt (`models.prompts.MultiTaskPrompt`) reads each example's task from
its input's first token, the sentinel `<extra_id_t>` of task t, as the original
codebase's multi-task prompts do. `register_mixture` makes such a mixture out of
registered tasks: each task again, named `<mixture>.<task>`, with its sentinel put in
front of its tokenized inputs (before the EOS is appended, so that the inputs keep
their length; after a task's last step where its EOS step is not seqio's
append_eos_after_trim, the inputs then fitted to their length, their EOS kept), and a
seqio mixture of them.

    from prompt_tuning.data import multitask
    multitask.register_mixture("my_multitask", ["task_a", "task_b", "task_c"])

Bundled: `wordnet_multitask` (`wordnet_supersense`, `wordnet_hypernym`).
"""

import functools
from typing import Any, Optional, Sequence

import seqio
import tensorflow as tf

from prompt_tuning.data import registry

# mixture name -> its tasks' names, in task-id order; tagged task -> (task id, task).
_MIXTURES: dict[str, list[str]] = {}
_TAGGED: dict[str, tuple[int, str]] = {}


def first_sentinel(vocabulary: Any) -> int:
  """The id of `<extra_id_0>`, task 0's sentinel: the vocabulary's last id."""
  return int(vocabulary.vocab_size) - 1


def _prepend(dataset: tf.data.Dataset, token: int) -> tf.data.Dataset:
  def add(example):
    inputs = example["inputs"]
    return {**example, "inputs": tf.concat([tf.constant([token], inputs.dtype), inputs], 0)}

  return dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE)


def _prepend_and_fit(
  dataset: tf.data.Dataset, sequence_length: Any, output_features: Any, token: int
) -> tf.data.Dataset:
  """The sentinel put in front of inputs that may end with their EOS already (a task that
  appends it in a step of its own, or with seqio's tokenize_and_append_eos): an input
  that no longer fits loses the token before its EOS, as it would have lost it had the
  sentinel gone in before append_eos_after_trim."""
  length = (sequence_length or {}).get("inputs")
  if not output_features["inputs"].add_eos:
    length = None  # no EOS to keep: what does not fit is cut at the end, as before
  eos = output_features["inputs"].vocabulary.eos_id

  def add(example):
    inputs = example["inputs"]
    inputs = tf.concat([tf.constant([token], inputs.dtype), inputs], 0)
    if length:
      keep_eos = tf.logical_and(tf.size(inputs) > length, tf.equal(inputs[-1], eos))
      inputs = tf.cond(
        keep_eos,
        lambda: tf.concat([inputs[: length - 1], inputs[-1:]], 0),
        lambda: inputs,
      )
    return {**example, "inputs": inputs}

  return dataset.map(add, num_parallel_calls=tf.data.AUTOTUNE)


def _with_sentinel(preprocessors: Sequence[Any], token: int) -> list[Any]:
  """The task's preprocessors with the sentinel put in before seqio's
  append_eos_after_trim; where there is none (append_eos, which does not trim, or a step
  of the task's own), after the last step, fitted to the inputs' length."""
  steps = list(preprocessors)
  eos = seqio.preprocessors.append_eos_after_trim
  at = next((i for i, p in enumerate(steps) if getattr(p, "func", p) is eos), None)
  if at is None:
    return steps + [functools.partial(_prepend_and_fit, token=token)]
  return steps[:at] + [functools.partial(_prepend, token=token)] + steps[at:]


def register_mixture(name: str, tasks: Sequence[str], rates: Optional[Sequence[float]] = None):
  """Registers mixture `name` of `tasks` (task t: `tasks[t]`), each example's inputs led by
  its task's sentinel; returns the mixture. Registering the same again is a no-op.

  Args:
    name: the mixture's name (MIXTURE_OR_TASK_NAME).
    tasks: registered seqio tasks, in task-id order; their inputs' vocabulary must have
      an extra id per task.
    rates: sampling rates (default: equal).
  """
  tasks = [str(t) for t in tasks]
  if _MIXTURES.get(name) == tasks:
    return seqio.get_mixture_or_task(name)
  if name in _MIXTURES or name in seqio.MixtureRegistry.names():
    raise ValueError(f"a mixture named {name!r} is already registered; give another name")
  if len(set(tasks)) != len(tasks) or not tasks:
    raise ValueError(f"a multi-task mixture needs one or more different tasks, got {tasks}")
  if rates is not None and len(rates) != len(tasks):
    raise ValueError(f"{len(rates)} rates for {len(tasks)} tasks; give one rate per task")
  tagged = []
  for i, task_name in enumerate(tasks):
    task = registry.get_task_or_mixture(task_name)
    if not isinstance(task, seqio.Task):
      raise ValueError(f"{task_name} is a mixture; a multi-task mixture is made of tasks")
    vocabulary = task.output_features["inputs"].vocabulary
    if getattr(vocabulary, "extra_ids", 0) < len(tasks):
      raise ValueError(
        f"{task_name}'s vocabulary has {getattr(vocabulary, 'extra_ids', 0)} extra ids; "
        f"{len(tasks)} tasks need one sentinel each"
      )
    tagged_name = f"{name}.{task_name}"
    seqio.TaskRegistry.add(
      tagged_name,
      source=task.source,
      preprocessors=_with_sentinel(task.preprocessors, first_sentinel(vocabulary) - i),
      output_features=task.output_features,
      postprocess_fn=task.postprocessor,
      metric_objs=task.metric_objs,
    )
    _TAGGED[tagged_name] = (i, task_name)
    tagged.append((tagged_name, 1.0 if rates is None else float(rates[i])))
  mixture = seqio.MixtureRegistry.add(name, tagged)
  _MIXTURES[name] = tasks
  return mixture


def task_names(mixture: str, module: Optional[str] = None) -> tuple[str, ...]:
  """The tasks of multi-task mixture `mixture`, in task-id order (importing `module`,
  MIXTURE_OR_TASK_MODULE, first): MultiTaskPrompt's `tasks`."""
  registry.import_task_module(module)
  if mixture not in _MIXTURES:
    raise ValueError(
      f"MIXTURE_OR_TASK_NAME={mixture!r} is not a multi-task mixture, whose inputs start "
      "with their task's sentinel: register one with "
      "prompt_tuning.data.multitask.register_mixture (bundled: 'wordnet_multitask')"
    )
  return tuple(_MIXTURES[mixture])


def task_of(name: str) -> str:
  """The task a multi-task mixture's task `<mixture>.<task>` stands for (others: `name`)."""
  return _TAGGED.get(name, (0, name))[1]
