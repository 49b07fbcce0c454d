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


def test_a_task_whose_eos_step_is_not_seqios_gets_the_same_inputs():
  """A task that appends its EOS with tokenize_and_append_eos: the sentinel goes in after
  it, and an input that no longer fits keeps its EOS, as with append_eos_after_trim."""
  source = seqio.get_mixture_or_task("wordnet_hypernym").source
  seqio.TaskRegistry.add(
    "hypernym_eos_in_tokenize",
    source=source,
    preprocessors=[seqio.preprocessors.tokenize_and_append_eos],
    output_features=wordnet.FEATURES,
  )
  multitask.register_mixture("eos_in_tokenize", ["wordnet_supersense", "hypernym_eos_in_tokenize"])
  want = _inputs("wordnet_multitask.wordnet_hypernym", n=50)
  got = _inputs("eos_in_tokenize.hypernym_eos_in_tokenize", n=50)
  assert sum(len(a) == LENGTHS["inputs"] for a in want) > 5  # some are cut to fit
  for a, b in zip(want, got):
    np.testing.assert_array_equal(b, a)
