"""Multi-task mixtures: each example's inputs led by its task's sentinel, the EOS kept."""

import numpy as np
import pytest
import seqio

from prompt_tuning.data import multitask
from prompt_tuning.data import tasks  # noqa: F401  (registers the bundled tasks)
from prompt_tuning.data import wordnet

LENGTHS = {"inputs": 12, "targets": 4}


def _inputs(name: str, n: int = 20) -> list[np.ndarray]:
  ds = seqio.get_mixture_or_task(name).get_dataset(LENGTHS, split="validation", shuffle=False)
  return [ex["inputs"] for ex in ds.take(n).as_numpy_iterator()]


@pytest.mark.parametrize("task_id, task", enumerate(["wordnet_supersense", "wordnet_hypernym"]))
def test_each_task_leads_with_its_sentinel_and_keeps_its_eos(task_id, task):
  assert multitask.task_names("wordnet_multitask") == ("wordnet_supersense", "wordnet_hypernym")
  sentinel = wordnet.VOCABULARY.vocab_size - 1 - task_id  # <extra_id_t>
  assert wordnet.VOCABULARY.decode([sentinel]) == f"<extra_id_{task_id}>"
  plain, tagged = _inputs(task), _inputs(f"wordnet_multitask.{task}")
  truncated = 0
  for a, b in zip(plain, tagged):
    assert b[0] == sentinel and b[-1] == 1 and len(b) <= LENGTHS["inputs"]
    np.testing.assert_array_equal(b[1:-1], a[: len(b) - 2])  # the same tokens after it
    truncated += len(a) == LENGTHS["inputs"]
  assert truncated  # some inputs are cut to the length: their EOS stays
  assert multitask.task_of(f"wordnet_multitask.{task}") == task
  assert multitask.first_sentinel(wordnet.VOCABULARY) == wordnet.VOCABULARY.vocab_size - 1


def test_mixture_refusals():
  with pytest.raises(ValueError, match="'wordnet_supersense' is not a multi-task mixture"):
    multitask.task_names("wordnet_supersense")
  with pytest.raises(ValueError, match="already registered"):
    multitask.register_mixture("wordnet_multitask", ["wordnet_hypernym"])
  with pytest.raises(ValueError, match="one or more different tasks"):
    multitask.register_mixture("twice", ["wordnet_hypernym", "wordnet_hypernym"])
  # Registering the same mixture again is a no-op.
  multitask.register_mixture("wordnet_multitask", ["wordnet_supersense", "wordnet_hypernym"])


@pytest.mark.parametrize(
  "name, steps",
  [
    ("tokenize_and_append_eos", [seqio.preprocessors.tokenize_and_append_eos]),
    ("append_eos", [seqio.preprocessors.tokenize, seqio.preprocessors.append_eos]),
  ],
)
def test_a_task_whose_eos_step_does_not_trim_gets_the_same_inputs(name, steps):
  """A task that appends its EOS without trimming for it (tokenize_and_append_eos,
  append_eos): the sentinel goes in after its last step, and an input that no longer fits
  keeps its EOS, as with append_eos_after_trim."""
  task = f"hypernym_{name}"
  if task not in seqio.TaskRegistry.names():  # the registries are the process's
    seqio.TaskRegistry.add(
      task,
      source=seqio.get_mixture_or_task("wordnet_hypernym").source,
      preprocessors=steps,
      output_features=wordnet.FEATURES,
    )
  multitask.register_mixture(f"with_{name}", ["wordnet_supersense", task])
  want = _inputs("wordnet_multitask.wordnet_hypernym", n=50)
  got = _inputs(f"with_{name}.{task}", n=50)
  assert sum(len(a) == LENGTHS["inputs"] for a in want) > 5  # some are cut to fit
  for a, b in zip(want, got):
    np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("add_eos, want", [(True, [99, 5, 6, 1]), (False, [99, 5, 6, 7, 1])])
def test_fitting_keeps_an_eos_only_where_the_task_adds_one(add_eos, want):
  """Inputs [5, 6, 7, 1] and the sentinel 99 in 4 positions: with add_eos the EOS (1) stays
  and 7 goes; without, 1 is a token like the others and what does not fit is left to the
  converter's cut at the end (here, none: this step alone)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  feature = seqio.Feature(wordnet.VOCABULARY, add_eos=add_eos)
  dataset = tf.data.Dataset.from_tensors({"inputs": tf.constant([5, 6, 7, 1], tf.int32)})
  fitted = multitask._prepend_and_fit(  # pylint: disable=protected-access
    dataset, {"inputs": 4}, {"inputs": feature}, token=99
  )
  (example,) = list(fitted.as_numpy_iterator())
  assert example["inputs"].tolist() == want
