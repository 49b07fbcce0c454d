"""The bundled WordNet 3.0 data as seqio tasks (built by scripts/build_wordnet_data.py).

* `wordnet_supersense`: "<lemma>: <definition>" -> the noun's supersense, one
  of eight plain words (`LABELS`); splits train/validation/test, disjoint by
  lemma; metric: accuracy. A fourth split, `ood` (50 per label), shifts the
  inputs but not the labels, the paper's domain shift (§6) in miniature: its
  synsets come from branches of WordNet's hypernym graph that hold no synset
  of train/validation/test (maximal subtrees, of at least two synsets), and
  none of their lemmas is a lemma of those splits. Unlike validation and test,
  its synsets' text is in the pretraining corpus (all 400 of them); see
  scripts/build_wordnet_data.py for the rule and how far the shift goes.
* `wordnet_hypernym`: "is <lemma> a kind of <category>? <lemma>: <definition>"
  -> yes / no (`HYPERNYM_LABELS`), on the supersense task's synsets and splits
  (so also disjoint by lemma and held out of the corpus): each synset is asked
  once about its direct hypernym (yes) and once about another synset's (no);
  metric: accuracy.
* `wordnet_span_corruption`: T5's pretraining objective (15% noise, mean span
  3) on the glosses and examples of `corpus.txt.gz`.
* `wordnet_prefix_lm`: prefix language modeling on the same corpus, the
  objective of T5.1.1's "LM adaptation".

All use `VOCABULARY`, the SentencePiece model trained on the corpus (4000
pieces + 100 sentinels; T5's ids: pad 0, EOS 1, unk 2).
"""

import functools
import gzip
import hashlib
import json
import os

import seqio
from t5.data import preprocessors as t5_preprocessors
from t5.evaluation import metrics as t5_metrics
import tensorflow as tf

from prompt_tuning.data import multitask

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wordnet")
VOCABULARY_FILE = os.path.join(DATA_DIR, "spm.model")
VOCABULARY = seqio.SentencePieceVocabulary(VOCABULARY_FILE, extra_ids=100)
LABELS = ("animal", "artifact", "body", "food", "location", "person", "plant", "substance")
HYPERNYM_LABELS = ("yes", "no")
TASK_LABELS = {"wordnet_supersense": LABELS, "wordnet_hypernym": HYPERNYM_LABELS}
FEATURES = {
  "inputs": seqio.Feature(VOCABULARY, add_eos=True),
  "targets": seqio.Feature(VOCABULARY, add_eos=True),
}


@functools.lru_cache(maxsize=None)
def read_split(split: str, task: str = "supersense") -> tuple[dict[str, str], ...]:
  """The examples of `task` (supersense, hypernym) in `split` (train, validation, test).

  The supersense task also has `ood`, the out-of-domain split.
  """
  path = os.path.join(DATA_DIR, f"{task}_{split}.jsonl.gz")
  with gzip.open(path, "rt", encoding="utf-8") as f:
    return tuple(json.loads(line) for line in f)


@functools.lru_cache(maxsize=None)
def read_corpus() -> tuple[str, ...]:
  with gzip.open(os.path.join(DATA_DIR, "corpus.txt.gz"), "rt", encoding="utf-8") as f:
    return tuple(line.rstrip("\n") for line in f)


def _task_dataset(split, shuffle_files=False, seed=None, task="supersense"):
  del shuffle_files, seed
  rows = read_split(split, task)
  return tf.data.Dataset.from_tensor_slices(
    {k: [r[k] for r in rows] for k in ("inputs", "targets", "lemma")}
  )


def _corpus_split(line: str) -> str:
  """1% of the lines (by hash) are validation text."""
  return "validation" if hashlib.sha256(line.encode()).digest()[0] < 3 else "train"


def _corpus_dataset(split, shuffle_files=False, seed=None):
  del shuffle_files, seed
  lines = [line for line in read_corpus() if _corpus_split(line) == split]
  return tf.data.Dataset.from_tensor_slices({"text": lines})


def register() -> None:
  """Registers the tasks (once)."""
  if "wordnet_supersense" in seqio.TaskRegistry.names():
    return
  for task, splits in (
    ("supersense", ["train", "validation", "test", "ood"]),
    ("hypernym", ["train", "validation", "test"]),
  ):
    seqio.TaskRegistry.add(
      f"wordnet_{task}",
      source=seqio.FunctionDataSource(functools.partial(_task_dataset, task=task), splits=splits),
      preprocessors=[
        seqio.preprocessors.tokenize,
        seqio.CacheDatasetPlaceholder(),
        seqio.preprocessors.append_eos_after_trim,
      ],
      output_features=FEATURES,
      metric_fns=[t5_metrics.accuracy],
    )
  corpus = seqio.FunctionDataSource(_corpus_dataset, splits=["train", "validation"])
  to_targets = functools.partial(
    t5_preprocessors.rekey, key_map={"inputs": None, "targets": "text"}
  )
  seqio.TaskRegistry.add(
    "wordnet_span_corruption",
    source=corpus,
    preprocessors=[
      to_targets,
      seqio.preprocessors.tokenize,
      seqio.CacheDatasetPlaceholder(),
      functools.partial(
        t5_preprocessors.span_corruption, noise_density=0.15, mean_noise_span_length=3.0
      ),
      seqio.preprocessors.append_eos_after_trim,
    ],
    output_features=FEATURES,
    metric_fns=[],
  )
  seqio.TaskRegistry.add(
    "wordnet_prefix_lm",
    source=corpus,
    preprocessors=[
      to_targets,
      seqio.preprocessors.tokenize,
      seqio.CacheDatasetPlaceholder(),
      t5_preprocessors.prefix_lm,
      seqio.preprocessors.append_eos_after_trim,
    ],
    output_features=FEATURES,
    metric_fns=[],
  )
  multitask.register_mixture("wordnet_multitask", ["wordnet_supersense", "wordnet_hypernym"])


register()


def bundled_vocabulary() -> seqio.SentencePieceVocabulary:
  """The bundled vocabulary (what configs/models/wordnet_tiny_prompt.gin binds as VOCABULARY)."""
  return VOCABULARY


CHECKPOINT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wordnet_tiny")


def bundled_checkpoint() -> str:
  """The bundled tiny model pretrained on the corpus (scripts/build_wordnet_tiny_model.py)."""
  return CHECKPOINT_DIR


FAMILY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wordnet_family")
FAMILY_SIZES = ("xs", "s", "m", "l")
OBJECTIVES = ("lm_adapted", "span_corruption")


def family_checkpoint(size: str, objective: str = "lm_adapted") -> str:
  """A bundled checkpoint of the WordNet family (scripts/build_wordnet_family.py).

  Args:
    size: xs, s, m or l (configs/models/wordnet_family/<size>.gin).
    objective: lm_adapted (span corruption, then LM adaptation) or
      span_corruption (span corruption only, the paper's Figure 3c).
  """
  if size not in FAMILY_SIZES or objective not in OBJECTIVES:
    raise ValueError(
      f"wordnet.family_checkpoint({size!r}, {objective!r}): sizes are "
      f"{', '.join(FAMILY_SIZES)}; objectives {', '.join(OBJECTIVES)}"
    )
  return os.path.join(FAMILY_DIR, size, objective)


def labels() -> list[str]:
  """The supersense task's labels, for CLASS_LABELS."""
  return list(LABELS)


def hypernym_labels() -> list[str]:
  """The hypernym task's labels, for CLASS_LABELS."""
  return list(HYPERNYM_LABELS)
