"""The bundled WordNet tasks: splits disjoint by lemma, real preprocessing, metric, vocabulary."""

import collections

import numpy as np
import seqio

from prompt_tuning.data import tasks
from prompt_tuning.data import wordnet


def test_supersense_splits_are_balanced_and_disjoint_by_lemma():
  splits = {name: wordnet.read_split(name) for name in ("train", "validation", "test")}
  for name, per_class in (("train", 1000), ("validation", 50), ("test", 100)):
    labels = [r["targets"] for r in splits[name]]
    assert sorted(set(labels)) == list(wordnet.LABELS)
    assert all(labels.count(label) == per_class for label in wordnet.LABELS)
  lemmas = {name: {r["lemma"].lower() for r in rows} for name, rows in splits.items()}
  assert not lemmas["train"] & lemmas["validation"]
  assert not lemmas["train"] & lemmas["test"]
  assert not lemmas["validation"] & lemmas["test"]
  for row in splits["validation"]:
    assert row["inputs"].startswith(row["lemma"] + ": ")
  # No held-out synset (its lemmas with its definition) is in the pretraining corpus.
  corpus = wordnet.read_corpus()
  for row in splits["validation"][:50]:
    definition = row["inputs"][len(row["lemma"]) + 2 :]
    heads = (row["lemma"] + ": ", row["lemma"] + ", ")
    assert not any(line.startswith(heads) and f": {definition}" in line for line in corpus)


def test_vocabulary_has_t5_ids():
  vocab = wordnet.VOCABULARY
  assert vocab.vocab_size == 4100
  assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
  assert vocab.decode(vocab.encode("a member of the genus Canis")) == "a member of the genus Canis"


def test_supersense_task_produces_text_to_text_examples_and_accuracy():
  task = seqio.get_mixture_or_task("wordnet_supersense")
  ds = task.get_dataset({"inputs": 48, "targets": 4}, split="validation", shuffle=False)
  examples = list(ds.as_numpy_iterator())
  assert len(examples) == 400
  first, row = examples[0], wordnet.read_split("validation")[0]
  ids = wordnet.VOCABULARY.encode(row["inputs"])[:47] + [1]  # truncated, EOS kept
  assert first["inputs"].tolist() == ids
  assert first["targets"].tolist() == wordnet.VOCABULARY.encode(row["targets"]) + [1]
  targets = [r["targets"] for r in wordnet.read_split("validation")]
  (metric,) = task.metric_fns
  assert metric(targets, targets) == {"accuracy": 100.0}
  wrong = targets[1:] + targets[:1]
  expected = 100.0 * np.mean([a == b for a, b in zip(targets, wrong)])
  assert metric(targets, wrong) == {"accuracy": expected}


def test_pretraining_tasks_corrupt_spans_and_split_prefixes():
  vocab = wordnet.VOCABULARY
  sentinel = vocab.vocab_size - 1  # <extra_id_0>
  span = seqio.get_mixture_or_task("wordnet_span_corruption").get_dataset(
    {"inputs": 64, "targets": 16}, split="train", shuffle=False, seed=0
  )
  for ex in span.take(3).as_numpy_iterator():
    assert sentinel in ex["inputs"] and ex["targets"][0] == sentinel
    assert ex["inputs"][-1] == 1 and ex["targets"][-1] == 1
  prefix = seqio.get_mixture_or_task("wordnet_prefix_lm").get_dataset(
    {"inputs": 64, "targets": 16}, split="train", shuffle=False, seed=0
  )
  ex = next(prefix.as_numpy_iterator())
  assert sentinel not in ex["inputs"] and len(ex["targets"]) > 1


def test_hypernym_task_pairs_every_synset_with_a_yes_and_a_no_on_the_supersense_splits():
  for name in ("train", "validation", "test"):
    rows = wordnet.read_split(name, "hypernym")
    by_synset = {}  # "<lemma>: <definition>", the supersense task's input
    for row in rows:
      question = f"is {row['lemma']} a kind of {row['category']}? "
      assert row["inputs"].startswith(question + f"{row['lemma']}: ")
      by_synset.setdefault(row["inputs"][len(question) :], []).append(row)
    # Each synset of the supersense split, asked once about its hypernym and once not.
    assert sorted(by_synset) == sorted(r["inputs"] for r in wordnet.read_split(name))
    for synset, pair in by_synset.items():
      assert sorted(r["targets"] for r in pair) == ["no", "yes"], synset
      assert pair[0]["category"] != pair[1]["category"]
    # No category gives the answer away: across the split, a category that is some
    # synset's "yes" is about as often another's "no".
    yes = collections.Counter(r["category"] for r in rows if r["targets"] == "yes")
    no = collections.Counter(r["category"] for r in rows if r["targets"] == "no")
    assert set(no) <= set(yes)
    majority_by_category = sum(max(yes[c], no[c]) for c in yes) / len(rows)
    assert majority_by_category < 0.55, majority_by_category
  # Held out of the corpus like the supersense task's: the same synsets' lemmas.
  lemmas = {
    n: {r["lemma"].lower() for r in wordnet.read_split(n, "hypernym")}
    for n in ("train", "validation", "test")
  }
  assert not lemmas["train"] & (lemmas["validation"] | lemmas["test"])


def test_hypernym_task_is_registered_with_its_labels_and_accuracy():
  task = seqio.get_mixture_or_task("wordnet_hypernym")
  ds = task.get_dataset({"inputs": 64, "targets": 4}, split="test", shuffle=False)
  examples = list(ds.as_numpy_iterator())
  rows = wordnet.read_split("test", "hypernym")
  assert len(examples) == len(rows) == 1600
  assert examples[3]["targets"].tolist() == wordnet.VOCABULARY.encode(rows[3]["targets"]) + [1]
  assert tasks.class_labels("wordnet_hypernym") == ["yes", "no"]
  assert tasks.class_labels("wordnet_supersense") == list(wordnet.LABELS)
  (metric,) = task.metric_fns
  targets = [r["targets"] for r in rows]
  assert metric(targets, ["yes"] * len(targets)) == {"accuracy": 50.0}


# WordNet 3.0's data.noun format: offset lex_filenum ss_type w_cnt(hex) (word lex_id)...
# p_cnt (pointer_symbol offset pos source/target)... | gloss
FAKE_NOUNS = """\
  1 This software and database is being provided to you
00000001 03 n 01 entity 0 002 ~ 00000002 n 0000 ~ 00000005 n 0000 | that which exists
00000002 05 n 01 animal 0 003 @ 00000001 n 0000 ~ 00000003 n 0000 ~ 00000004 n 0000 | a living organism
00000003 05 n 02 dog 0 domestic_dog 0 002 @ 00000002 n 0000 #m 00000006 n 0000 | a member of the genus Canis
00000004 05 n 01 cat 0 001 @ 00000002 n 0000 | a feline mammal
00000005 06 n 01 tool 0 002 @ 00000001 n 0000 ~ 00000007 n 0000 | an implement used in work
00000006 14 n 01 Canis 0 001 @i 00000001 n 0000 | a genus
00000007 06 n 01 hammer 0 001 @ 00000005 n 0000 | a hand tool with a heavy head
"""


def test_hypernym_builder_pairs_direct_hypernyms_with_other_synsets_categories(tmp_path):
  from scripts import build_wordnet_data  # pylint: disable=g-import-not-at-top

  path = tmp_path / "data.noun"
  path.write_text(FAKE_NOUNS)
  hypernyms = build_wordnet_data.parse_hypernyms(str(path))
  # Class (@) and instance (@i) hypernyms only; hyponyms (~) and members (#m) are not.
  assert hypernyms == {
    "00000001": [],
    "00000002": ["00000001"],
    "00000003": ["00000002"],
    "00000004": ["00000002"],
    "00000005": ["00000001"],
    "00000006": ["00000001"],
    "00000007": ["00000005"],
  }
  nouns = list(build_wordnet_data.parse_synsets(str(path)))
  rows = [
    {"offset": o, "lemma": lemmas[0], "inputs": f"{lemmas[0]}: {d}"}
    for o, _, lemmas, d, _ in nouns
    if o in ("00000003", "00000004", "00000007")
  ]
  examples = build_wordnet_data.hypernym_task({"test": rows}, nouns, hypernyms)["test"]
  answers = {(e["lemma"], e["category"]): e["targets"] for e in examples}
  # Each synset: its direct hypernym's first lemma (yes), and another synset's "yes"
  # category that is none of its ancestors (no): the cat and the dog are animals, so
  # their "no" is the hammer's category, and the hammer's is "animal".
  assert answers == {
    ("dog", "animal"): "yes",
    ("dog", "tool"): "no",
    ("cat", "animal"): "yes",
    ("cat", "tool"): "no",
    ("hammer", "tool"): "yes",
    ("hammer", "animal"): "no",
  }
  (dog_yes,) = [e for e in examples if e["lemma"] == "dog" and e["targets"] == "yes"]
  assert dog_yes["inputs"] == "is dog a kind of animal? dog: a member of the genus Canis"
