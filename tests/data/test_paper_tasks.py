"""The paper's tasks: their real preprocessing on tfds mock data, their formats and metrics.

`tfds.testing.mock_data` with `MockPolicy.USE_CODE` knows no split sizes, which
seqio's TfdsDataSource asks for; so each dataset's metadata (features from its
builder code, plus splits of MOCK_EXAMPLES examples) is written to a temporary
data_dir and mocked with `MockPolicy.USE_FILES`: the real TfdsDataSource, the
real preprocessors, random feature values.
"""

import os

import numpy as np
import pytest
import seqio
import tensorflow_datasets as tfds
from tensorflow_datasets.core import splits as splits_lib

from prompt_tuning.data import paper_tasks
from prompt_tuning.data import tasks  # pylint: disable=unused-import  # noqa: F401

MOCK_EXAMPLES = 4
LENGTHS = {"inputs": 512, "targets": 64}
SPLITS = {
  "glue/mnli:2.0.0": [
    "train",
    "validation_matched",
    "validation_mismatched",
    "test_matched",
    "test_mismatched",
  ]
}

# task -> (tfds name, split, first word of the T5 format or None, metric keys).
SUPER_GLUE = {
  "boolq": ("super_glue/boolq:1.0.2", "boolq", {"accuracy"}),
  "cb": ("super_glue/cb:1.0.2", "cb", {"accuracy", "mean_3class_f1"}),
  "copa": ("super_glue/copa:1.0.2", "copa", {"accuracy"}),
  "multirc": ("super_glue/multirc:1.0.2", "multirc", {"exact_match", "f1"}),
  "record": ("super_glue/record:1.0.2", "record", {"em", "f1"}),
  "rte": ("super_glue/rte:1.0.2", "rte", {"accuracy"}),
  "wic": ("super_glue/wic:1.0.2", "wic", {"accuracy"}),
}
GLUE = {
  "cola": {"matthews_corrcoef"},
  "sst2": {"accuracy"},
  "mrpc": {"accuracy", "f1"},
  "qqp": {"accuracy", "f1"},
  "stsb": {"pearson_corrcoef", "spearman_corrcoef"},
  "mnli": {"accuracy"},
  "qnli": {"accuracy"},
  "rte": {"accuracy"},
  "wnli": {"accuracy"},
}
CASES = [
  (f"super_glue_{n}_v102", tfds_name, "validation", word, keys)
  for n, (tfds_name, word, keys) in SUPER_GLUE.items()
] + [
  (
    f"glue_{n}_v200",
    f"glue/{n}:2.0.0",
    "validation_matched" if n == "mnli" else "validation",
    n,
    keys,
  )
  for n, keys in GLUE.items()
]
# WSC and DPR examples must be well formed (a pronoun at its index), which random
# mock values are not: these two read these examples instead.
WELL_FORMED = {
  "super_glue/wsc.fixed:1.0.2": {
    "text": ["The city councilmen refused the demonstrators a permit because they feared violence."]
    * MOCK_EXAMPLES,
    "span1_index": [0] * MOCK_EXAMPLES,
    "span1_text": ["The city councilmen"] * MOCK_EXAMPLES,
    "span2_index": [9] * MOCK_EXAMPLES,
    "span2_text": ["they"] * MOCK_EXAMPLES,
    "label": [1, 0, 1, 0],
    "idx": list(range(MOCK_EXAMPLES)),
  },
  "definite_pronoun_resolution:1.1.0": {
    "sentence": ["The bee landed on the flower because it had pollen."] * MOCK_EXAMPLES,
    "pronoun": ["it"] * MOCK_EXAMPLES,
    "candidates": [["The bee", "the flower"]] * MOCK_EXAMPLES,
    "label": [1, 0, 1, 1],
  },
}
PRONOUN_CASES = [
  (
    "super_glue_wsc_v102_simple_eval",
    "super_glue/wsc.fixed:1.0.2",
    "validation",
    "wsc:",
    {"accuracy"},
  ),
  ("dpr_v001_simple", "definite_pronoun_resolution:1.1.0", "test", "wsc:", {"accuracy"}),
]
QA = [("squad_v010", "squad/v1.1:3.0.0")] + [
  (f"mrqa_{short}_v100", f"mrqa/{config}:1.0.0") for config, short in paper_tasks.MRQA.items()
]


def _write_metadata(tfds_name: str, data_dir: str) -> None:
  builder = tfds.builder(tfds_name, data_dir=data_dir)
  names = SPLITS.get(tfds_name, ["train", "validation", "test"])
  builder.info.set_splits(
    splits_lib.SplitDict(
      [
        splits_lib.SplitInfo(
          name=s, shard_lengths=[MOCK_EXAMPLES], num_bytes=0, filename_template=None
        )
        for s in names
      ]
    )
  )
  os.makedirs(builder.data_path, exist_ok=True)
  builder.info.write_to_directory(builder.data_path)


@pytest.fixture(scope="module")
def mock_tfds(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  os.environ["MOCK_TFDS_DIR"] = data_dir
  names = {c[1] for c in CASES + PRONOUN_CASES} | {q[1] for q in QA} | {"glue/qqp:2.0.0"}
  for tfds_name in sorted(names):
    _write_metadata(tfds_name, data_dir)
  with tfds.testing.mock_data(
    num_examples=MOCK_EXAMPLES, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=data_dir
  ):
    yield


def _examples(name, split):
  task = seqio.get_mixture_or_task(name)
  ds = task.get_dataset(LENGTHS, split=split, shuffle=False, seed=0)
  return task, list(ds.as_numpy_iterator())


def _decode(task, ids):
  return task.output_features["inputs"].vocabulary.decode([int(i) for i in ids if i != 1])


def _perfect_metrics(task, examples):
  """The task's metrics with every prediction equal to its target."""
  vocab = task.output_features["targets"].vocabulary
  texts = [vocab.decode([int(i) for i in ex["targets"] if i != 1]) for ex in examples]
  targets = [task.postprocess_fn(t, example=ex, is_target=True) for t, ex in zip(texts, examples)]
  predictions = [
    task.postprocess_fn(t, example=ex, is_target=False) for t, ex in zip(texts, examples)
  ]
  metrics = {}
  for fn in task.metric_fns:
    metrics.update(fn(targets, predictions))
  return metrics


@pytest.fixture
def well_formed_pronouns(mock_tfds, request):
  """Mocks the test's dataset with WELL_FORMED examples (inside the metadata mock)."""
  del mock_tfds
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  values = WELL_FORMED[request.param]

  def as_dataset(self, *args, **kwargs):
    del self, args, kwargs
    return tf.data.Dataset.from_tensor_slices(values)

  with tfds.testing.mock_data(
    num_examples=MOCK_EXAMPLES,
    as_dataset_fn=as_dataset,
    policy=tfds.testing.MockPolicy.USE_FILES,
    data_dir=os.environ["MOCK_TFDS_DIR"],
  ):
    yield


# Every task also has an mt5_ variant: the same preprocessing with the mT5 vocabulary
# (a stand-in here, see conftest.py).
PREFIXES = ("", "mt5_")


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("name,tfds_name,split,word,keys", CASES, ids=[c[0] for c in CASES])
def test_task_formats_and_metrics(mock_tfds, name, tfds_name, split, word, keys, prefix):
  del mock_tfds, tfds_name
  _check_task(name, split, word, keys, prefix)


@pytest.mark.parametrize(
  "well_formed_pronouns,name,split,word,keys",
  [(c[1], c[0], c[2], c[3], c[4]) for c in PRONOUN_CASES],
  ids=[c[0] for c in PRONOUN_CASES],
  indirect=["well_formed_pronouns"],
)
@pytest.mark.parametrize("prefix", PREFIXES)
def test_pronoun_tasks_formats_and_metrics(well_formed_pronouns, name, split, word, keys, prefix):
  del well_formed_pronouns
  _check_task(name, split, word, keys, prefix)
  task, examples = _examples(prefix + name, split)
  assert "*they*" in _decode(task, examples[0]["inputs"]) or "*it*" in _decode(
    task, examples[0]["inputs"]
  )


def _check_task(name, split, word, keys, prefix=""):
  task, examples = _examples(prefix + name, split)
  assert examples, name
  vocabulary = paper_tasks.MT5_VOCABULARY if prefix == "mt5_" else paper_tasks.T5_VOCABULARY
  for feature in task.output_features.values():
    assert feature.vocabulary.sentencepiece_model_file == vocabulary
  text = _decode(task, examples[0]["inputs"])
  assert text.split(" ", 1)[0] == word, text[:80]
  # taskless drops that first word; task_index puts the task's sentinel there.
  taskless, taskless_examples = _examples(prefix + "taskless_" + name, split)
  assert _decode(taskless, taskless_examples[0]["inputs"]) == text.split(" ", 1)[1]
  indexed, indexed_examples = _examples(prefix + "task_index_" + name, split)
  vocab = indexed.output_features["inputs"].vocabulary
  first = int(indexed_examples[0]["inputs"][0])
  assert vocab.decode([first]).startswith("<extra_id_")
  np.testing.assert_array_equal(indexed_examples[0]["inputs"][1:], taskless_examples[0]["inputs"])
  # sentinel_taskless: the taskless example with <extra_id_0> before its targets (the paper's
  # "Span Corruption + Sentinel"); predictions lose it before postprocessing.
  sentinel, sentinel_examples = _examples(prefix + "sentinel_taskless_" + name, split)
  vocab = sentinel.output_features["targets"].vocabulary
  assert vocab.decode([int(sentinel_examples[0]["targets"][0])]) == "<extra_id_0>"
  np.testing.assert_array_equal(
    sentinel_examples[0]["targets"][1:], taskless_examples[0]["targets"]
  )
  np.testing.assert_array_equal(sentinel_examples[0]["inputs"], taskless_examples[0]["inputs"])
  for ex, plain in zip(sentinel_examples, examples):  # "<extra_id_0> entailment" -> label
    with_sentinel = _decode(sentinel, ex["targets"])
    assert with_sentinel.startswith("<extra_id_0>")
    assert sentinel.postprocess_fn(with_sentinel, example=ex, is_target=False) == (
      task.postprocess_fn(_decode(task, plain["targets"]), example=plain, is_target=False)
    )
  # Class-label initialization's labels are the words the targets use (none for
  # tasks whose targets are not classes).
  labels = [] if name.startswith("dpr") else paper_tasks.class_labels(prefix + "taskless_" + name)
  targets = {_decode(task, ex["targets"]) for ex in examples}
  if labels:
    assert targets <= set(labels), (name, targets, labels)
  else:
    assert name.startswith(("super_glue_record", "glue_stsb", "super_glue_wsc", "dpr")), name
  # The metrics the paper reports, perfect when every prediction is its target.
  metrics = _perfect_metrics(task, examples)
  assert keys <= set(metrics), (name, metrics)
  # WSC's target is the label, its prediction whether the generated referent is
  # the candidate: echoing the candidate is right exactly on the positive examples.
  perfect = 50.0 if name.endswith("wsc_v102_simple_eval") else 100.0
  for key in keys - {"matthews_corrcoef", "pearson_corrcoef", "spearman_corrcoef"}:
    assert metrics[key] == pytest.approx(perfect), (key, metrics)
  # The _examples twin reports sample pairs as text beside the same metrics.
  twin = seqio.get_mixture_or_task(prefix + name + "_examples")
  assert len(twin.metric_fns) == len(task.metric_fns) + 1


def test_class_labels_of_names_and_errors():
  assert paper_tasks.class_labels("mt5_task_index_super_glue_cb_v102_examples") == [
    "entailment",
    "contradiction",
    "neutral",
  ]
  assert paper_tasks.class_labels("taskless_glue_mrpc_as_qqp_v200") == [
    "not_duplicate",
    "duplicate",
  ]  # QQP's labels on MRPC's examples
  assert paper_tasks.class_labels("taskless_super_glue_wsc_and_dev_v102_simple") == []
  with pytest.raises(ValueError, match="'wordnet_supersense' is not a GLUE or SuperGLUE task"):
    paper_tasks.class_labels("wordnet_supersense")


@pytest.mark.parametrize("name,tfds_name", QA, ids=[q[0] for q in QA])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_qa_tasks_format_and_score_f1_em(mock_tfds, name, tfds_name, prefix):
  del tfds_name
  task, examples = _examples(prefix + name, "validation")
  text = _decode(task, examples[0]["inputs"])
  assert text.startswith("question:") and " context:" in text
  metrics = _perfect_metrics(task, examples)
  assert metrics == {"em": pytest.approx(100.0), "f1": pytest.approx(100.0)}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_paraphrase_transfer_uses_the_other_tasks_format_and_labels(mock_tfds, prefix):
  task, examples = _examples(prefix + "taskless_glue_mrpc_as_qqp_v200", "validation")
  assert _decode(task, examples[0]["inputs"]).startswith("question1:")
  vocab = task.output_features["targets"].vocabulary
  labels = {vocab.decode([int(i) for i in ex["targets"] if i != 1]) for ex in examples}
  assert labels <= {"not_duplicate", "duplicate"}
  task, examples = _examples(prefix + "taskless_glue_qqp_as_mrpc_v200", "validation")
  assert _decode(task, examples[0]["inputs"]).startswith("sentence1:")


def test_mixtures_and_mt5_variants_are_registered(mock_tfds):
  mixture = seqio.get_mixture_or_task("taskless_super_glue_v102")
  assert {t.name for t in mixture.tasks} == {
    f"taskless_super_glue_{n}_v102" for n in SUPER_GLUE
  } | {"taskless_super_glue_wsc_v102_simple_train", "taskless_super_glue_wsc_v102_simple_eval"}
  rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
  assert rates["taskless_super_glue_wsc_v102_simple_eval"] == 0.0
  assert rates["taskless_super_glue_boolq_v102"] == MOCK_EXAMPLES
  for name in ("mt5_taskless_super_glue_boolq_v102", "mt5_glue_sst2_v200", "mt5_mrqa_drop_v100"):
    task = seqio.get_mixture_or_task(name)
    assert task.output_features["inputs"].vocabulary.sentencepiece_model_file == (
      paper_tasks.MT5_VOCABULARY
    )
