"""The paper's seqio tasks: SuperGLUE, GLUE, and the domain-transfer sets (§6).

Text formats, postprocessors and metrics are T5's (the `t5` package's GLUE and
SuperGLUE preprocessors, `glue_utils` metrics, SQuAD preprocessing and F1/EM),
reading tfds. Names follow the original prompt-tuning code:

* `super_glue_{name}_v102`: T5's format, whose first word is the dataset name
  ("boolq question: ... passage: ...");
* `taskless_super_glue_{name}_v102`: without that word (the paper's
  single-task setting);
* `task_index_super_glue_{name}_v102`: the first word replaced by a sentinel
  token that indexes the task (`<extra_id_i>`), for multi-task prompts;
* `sentinel_taskless_super_glue_{name}_v102`: taskless, with `<extra_id_0>`
  prepended to every target, so that targets look like span corruption's (the
  paper's "Span Corruption + Sentinel", Figure 3c); predictions lose it before
  postprocessing;
* `..._examples`: the same task, also reporting sample (target, prediction)
  pairs as a text metric in TensorBoard;
* `mt5_...`: every one of the above with the mT5 vocabulary.

SuperGLUE: boolq, cb, copa, multirc, record, rte, wic, and wsc as T5 casts it
(`..._wsc_v102_simple_train` on correct referents, `..._simple_eval`, and the
mixture `..._wsc_and_dev_v102_simple`), plus DPR (`..._dpr_v001_simple`); the
examples-proportional mixture `super_glue_v102` (and its variants). GLUE:
`{,taskless_,task_index_}glue_{cola,sst2,mrpc,qqp,stsb,mnli,qnli,rte,wnli}_v200`.
Domain transfer: `squad_v010` (in-domain) and `mrqa_{name}_v100` for the
MRQA out-of-domain sets tfds carries (TextbookQA, BioASQ, RACE, RE, DuoRC,
DROP), all "question: ... context: ..." -> the first answer, scored with
SQuAD F1/EM against every answer; and the paraphrase transfer pair
`taskless_glue_mrpc_as_qqp_v200` / `taskless_glue_qqp_as_mrpc_v200` (one
dataset's examples in the other's text format and labels, so a prompt trained
on one is evaluated zero-shot on the other).

Vocabularies are T5's and mT5's SentencePiece models, from
`PROMPT_TUNING_T5_VOCABULARY` / `PROMPT_TUNING_MT5_VOCABULARY` when set (a
local copy, for offline use), else their gs://t5-data paths; they are read
only when a task's data is tokenized.
"""

import functools
import os
import re

import seqio
from t5.data import glue_utils
from t5.data import postprocessors as t5_postprocessors
from t5.data import preprocessors as t5_preprocessors
from t5.evaluation import metrics as t5_metrics
import tensorflow as tf
import tensorflow_datasets as tfds

T5_VOCABULARY = os.environ.get(
  "PROMPT_TUNING_T5_VOCABULARY", "gs://t5-data/vocabs/cc_all.32000.100extra/sentencepiece.model"
)
MT5_VOCABULARY = os.environ.get(
  "PROMPT_TUNING_MT5_VOCABULARY", "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model"
)


def _features(path: str) -> dict[str, seqio.Feature]:
  vocab = seqio.SentencePieceVocabulary(path, extra_ids=100)
  return {
    "inputs": seqio.Feature(vocab, add_eos=True, required=False),
    "targets": seqio.Feature(vocab, add_eos=True),
  }


FEATURES = {"": _features(T5_VOCABULARY), "mt5_": _features(MT5_VOCABULARY)}
SUPER_GLUE = ("boolq", "cb", "copa", "multirc", "record", "rte", "wic")
GLUE = ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli")
# The task index of each SuperGLUE task (its sentinel in task_index_ variants).
SUPER_GLUE_INDEX = {name: i for i, name in enumerate(SUPER_GLUE + ("wsc",))}
GLUE_INDEX = {name: i for i, name in enumerate(GLUE)}
# MRQA out-of-domain sets in tfds's `mrqa` builder (paper Table 2).
MRQA = {
  "textbook_qa": "textbookqa",
  "bio_asq": "bioasq",
  "race": "race",
  "relation_extraction": "re",
  "duo_rc": "duorc",
  "drop": "drop",
}


_NAME = re.compile(
  r"^(?:mt5_)?(?:taskless_|task_index_|sentinel_taskless_)?"
  r"(super_glue|glue)_(\w+?)(?:_as_(\w+))?_v\d+(?:_simple_\w+|_simple)?"
  r"(?:_examples)?$"
)


def class_labels(task: str) -> list[str]:
  """A GLUE or SuperGLUE task's class labels, as its targets spell them (T5's formats).

  For class-label prompt initialization (configs/prompts/from_task_class_labels.gin).
  A task whose targets are not classes (ReCoRD, WSC, STS-B) has none: [].

  Raises:
    ValueError: `task` is not one of this module's GLUE or SuperGLUE tasks.
  """
  match = _NAME.match(task)
  if match is None:
    raise ValueError(
      f"{task!r} is not a GLUE or SuperGLUE task of prompt_tuning.data."
      "paper_tasks; set CLASS_LABELS yourself (configs/prompts/"
      "from_class_labels.gin)"
    )
  benchmark, name, like = match.groups()
  configs = (
    tfds.text.super_glue.SuperGlue if benchmark == "super_glue" else tfds.text.glue.Glue
  ).builder_configs
  name = like or name  # `mrpc_as_qqp`: MRPC's examples with QQP's labels
  if name not in configs or name in ("record", "wsc"):
    return []  # ReCoRD's targets are entities, WSC's (T5's simple format) the referent
  return [str(label) for label in (configs[name].label_classes or [])]


# Text preprocessors shared by the variants.


@seqio.map_over_dataset
def remove_first_text_token(x):
  """'boolq question: ...' -> 'question: ...' (the taskless format)."""
  x = dict(x)
  x["inputs"] = tf.strings.regex_replace(x["inputs"], r"^\S+\s+", "")
  return x


def _prepend_sentinel(dataset, output_features, feature: str, index: int):
  """Prepends `<extra_id_{index}>` (id vocab_size - 1 - index) to a tokenized feature."""
  sentinel = output_features[feature].vocabulary.vocab_size - 1 - index

  @seqio.map_over_dataset
  def prepend(x):
    x = dict(x)
    x[feature] = tf.concat([[sentinel], tf.cast(x[feature], tf.int32)], axis=0)
    return x

  return prepend(dataset)


def add_task_index(dataset, output_features, index: int):
  """Prepends `<extra_id_{index}>` to the tokenized inputs (the task_index format)."""
  return _prepend_sentinel(dataset, output_features, "inputs", index)


def prepend_sentinel_to_targets(dataset, output_features):
  """Tokenized targets -> `<extra_id_0>` + targets (the sentinel_taskless format)."""
  return _prepend_sentinel(dataset, output_features, "targets", 0)


SENTINEL_TEXT = "<extra_id_0>"


def without_sentinel(postprocess_fn):
  """The postprocessor of a sentinel variant: the leading `<extra_id_0>` removed first."""

  def postprocess(output, **kwargs):
    if isinstance(output, str) and output.lstrip().startswith(SENTINEL_TEXT):
      output = output.lstrip()[len(SENTINEL_TEXT) :].lstrip()
    return postprocess_fn(output, **kwargs) if postprocess_fn else output

  return postprocess


def text_examples(targets, predictions, task_name: str, n: int = 8):
  """The first `n` (target, prediction) pairs as a text metric (the `_examples` variants)."""
  rows = [f"target: {t!r} | prediction: {p!r}" for t, p in zip(targets[:n], predictions[:n])]
  return {f"{task_name}_examples": seqio.metrics.Text(textdata="\n\n".join(rows))}


def _variants(base: str, text_preprocessor, index: int, pre=(), post=()):
  """(name, preprocessors) of the plain, taskless and task_index variants of a text format."""
  tail = [
    seqio.preprocessors.tokenize,
    seqio.CacheDatasetPlaceholder(),
    seqio.preprocessors.append_eos_after_trim,
  ]
  return {
    base: [*pre, text_preprocessor, *post, *tail],
    f"taskless_{base}": [*pre, text_preprocessor, *post, remove_first_text_token, *tail],
    f"task_index_{base}": [
      *pre,
      text_preprocessor,
      *post,
      remove_first_text_token,
      seqio.preprocessors.tokenize,
      functools.partial(add_task_index, index=index),
      seqio.CacheDatasetPlaceholder(),
      seqio.preprocessors.append_eos_after_trim,
    ],
    f"sentinel_taskless_{base}": [
      *pre,
      text_preprocessor,
      *post,
      remove_first_text_token,
      seqio.preprocessors.tokenize,
      prepend_sentinel_to_targets,
      seqio.CacheDatasetPlaceholder(),
      seqio.preprocessors.append_eos_after_trim,
    ],
  }


def _add(name, source, preprocessors, features, metric_fns, postprocess_fn=None):
  """Registers `name` and its `_examples` twin."""
  if "sentinel_taskless_" in name:
    postprocess_fn = without_sentinel(postprocess_fn)
  for suffix in ("", "_examples"):
    metrics = list(metric_fns)
    if suffix and metric_fns:
      metrics.append(functools.partial(text_examples, task_name=name))
    seqio.TaskRegistry.add(
      f"{name}{suffix}",
      source=source,
      preprocessors=preprocessors,
      output_features=features,
      metric_fns=metrics,
      postprocess_fn=postprocess_fn,
    )


def _add_benchmark(
  prefix, features, configs, names, tfds_name: str, task_name: str, index, metric_fns
) -> None:
  """Every variant of each of a GLUE-style benchmark's `names` (T5's text format and metrics)."""
  for name in names:
    config = configs[name]
    source = seqio.TfdsDataSource(tfds_name=tfds_name.format(name))
    text = glue_utils.get_glue_text_preprocessor(config)
    for task, preprocessors in _variants(task_name.format(name), text, index[name]).items():
      _add(
        prefix + task,
        source,
        preprocessors,
        features,
        metric_fns(name),
        glue_utils.get_glue_postprocess_fn(config),
      )


def _super_glue(prefix: str, features) -> None:
  _add_benchmark(
    prefix,
    features,
    tfds.text.super_glue.SuperGlue.builder_configs,
    SUPER_GLUE,
    "super_glue/{}:1.0.2",
    "super_glue_{}_v102",
    SUPER_GLUE_INDEX,
    glue_utils.get_super_glue_metric,
  )
  # WSC as T5 casts it: generate the referent; train on correct referents only.
  for split_name, splits, correct_only in (
    ("train", ["train"], True),
    ("eval", ["validation", "test"], False),
  ):
    source = seqio.TfdsDataSource(tfds_name="super_glue/wsc.fixed:1.0.2", splits=splits)
    text = functools.partial(t5_preprocessors.wsc_simple, correct_referent_only=correct_only)
    for task, preprocessors in _variants(
      f"super_glue_wsc_v102_simple_{split_name}", text, SUPER_GLUE_INDEX["wsc"]
    ).items():
      metrics = [] if correct_only else [t5_metrics.accuracy]
      post = None if correct_only else t5_postprocessors.wsc_simple
      _add(prefix + task, source, preprocessors, features, metrics, post)
  for variant in ("", "taskless_", "task_index_", "sentinel_taskless_"):
    seqio.MixtureRegistry.add(
      f"{prefix}{variant}super_glue_wsc_and_dev_v102_simple",
      [
        f"{prefix}{variant}super_glue_wsc_v102_simple_train",
        f"{prefix}{variant}super_glue_wsc_v102_simple_eval",
      ],
      default_rate=1.0,
    )
    # DPR: WSC-like pronoun resolution (Kocijan et al., 2019), T5's simple format.
    dpr = _variants(
      "dpr_v001_simple",
      t5_preprocessors.definite_pronoun_resolution_simple,
      SUPER_GLUE_INDEX["wsc"],
    )
    _add(
      f"{prefix}{variant}dpr_v001_simple",
      seqio.TfdsDataSource(tfds_name="definite_pronoun_resolution:1.1.0"),
      dpr[f"{variant}dpr_v001_simple"],
      features,
      [t5_metrics.accuracy],
    )
    # Examples-proportional over the tasks' training sets, as T5's super_glue_v102.
    members = [f"{prefix}{variant}super_glue_{n}_v102" for n in SUPER_GLUE] + [
      f"{prefix}{variant}super_glue_wsc_v102_simple_train",
      f"{prefix}{variant}super_glue_wsc_v102_simple_eval",
    ]
    seqio.MixtureRegistry.add(
      f"{prefix}{variant}super_glue_v102", members, default_rate=_examples_rate
    )


def _examples_rate(task: seqio.Task) -> float:
  """Examples-proportional rate (the number of training examples), 0 for eval-only tasks."""
  if "train" not in task.splits:
    return 0.0
  return float(task.num_input_examples("train") or 0)


def _glue(prefix: str, features) -> None:
  configs = tfds.text.glue.Glue.builder_configs
  _add_benchmark(
    prefix,
    features,
    configs,
    GLUE,
    "glue/{}:2.0.0",
    "glue_{}_v200",
    GLUE_INDEX,
    glue_utils.get_glue_metric,
  )
  # Zero-shot paraphrase transfer: one dataset in the other's format and labels.
  for data, like in (("mrpc", "qqp"), ("qqp", "mrpc")):
    rename = {
      "mrpc": {"sentence1": "question1", "sentence2": "question2"},
      "qqp": {"question1": "sentence1", "question2": "sentence2"},
    }[data]
    key_map = {new: old for old, new in rename.items()}
    key_map.update(label="label", idx="idx")
    source = seqio.TfdsDataSource(tfds_name=f"glue/{data}:2.0.0")
    text = glue_utils.get_glue_text_preprocessor(configs[like])
    _add(
      f"{prefix}taskless_glue_{data}_as_{like}_v200",
      source,
      [
        functools.partial(t5_preprocessors.rekey, key_map=key_map),
        text,
        remove_first_text_token,
        seqio.preprocessors.tokenize,
        seqio.CacheDatasetPlaceholder(),
        seqio.preprocessors.append_eos_after_trim,
      ],
      features,
      glue_utils.get_glue_metric(like),
      glue_utils.get_glue_postprocess_fn(configs[like]),
    )


@seqio.map_over_dataset
def mrqa_text(x):
  """MRQA -> SQuAD's format: 'question: ... context: ...' -> the first answer."""
  return {
    "inputs": tf.strings.join(["question: ", x["question"], " context: ", x["context"]]),
    "targets": x["answers"][0],
    "answers": x["answers"],
    "id": x["qid"],
  }


def _squad_metric(targets, predictions):
  return t5_metrics.squad(targets, predictions)


def _qa(prefix: str, features) -> None:
  squad_post = t5_postprocessors.qa
  _add(
    f"{prefix}squad_v010",
    seqio.TfdsDataSource(tfds_name="squad/v1.1:3.0.0"),
    [
      t5_preprocessors.squad,
      seqio.preprocessors.tokenize,
      seqio.CacheDatasetPlaceholder(),
      seqio.preprocessors.append_eos_after_trim,
    ],
    features,
    [_squad_metric],
    squad_post,
  )
  for tfds_config, short in MRQA.items():
    _add(
      f"{prefix}mrqa_{short}_v100",
      seqio.TfdsDataSource(tfds_name=f"mrqa/{tfds_config}:1.0.0"),
      [
        mrqa_text,
        seqio.preprocessors.tokenize,
        seqio.CacheDatasetPlaceholder(),
        seqio.preprocessors.append_eos_after_trim,
      ],
      features,
      [_squad_metric],
      squad_post,
    )


def register() -> None:
  """Registers every task and mixture (once)."""
  if "taskless_super_glue_boolq_v102" in seqio.TaskRegistry.names():
    return
  for prefix, features in FEATURES.items():
    _super_glue(prefix, features)
    _glue(prefix, features)
    _qa(prefix, features)


register()
