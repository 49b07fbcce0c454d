"""The supersense task's ood split: registered, balanced, disjoint, drawn from unseen branches."""

import collections

import pytest
import seqio

from prompt_tuning.data import wordnet
from tests.data.test_wordnet import FAKE_NOUNS

SPLITS = ("train", "validation", "test")


def test_ood_split_is_registered_for_supersense_only_and_reads_through_seqio():
  task = seqio.get_mixture_or_task("wordnet_supersense")
  assert list(task.splits) == ["train", "validation", "test", "ood"]
  assert list(seqio.get_mixture_or_task("wordnet_hypernym").splits) == list(SPLITS)
  rows = wordnet.read_split("ood")
  ds = task.get_dataset({"inputs": 64, "targets": 4}, split="ood", shuffle=False)
  examples = list(ds.as_numpy_iterator())
  assert len(examples) == len(rows)
  for example, row in zip(examples[:5], rows):
    assert example["inputs"].tolist() == wordnet.VOCABULARY.encode(row["inputs"])[:63] + [1]
    assert example["targets"].tolist() == wordnet.VOCABULARY.encode(row["targets"]) + [1]


def test_ood_split_is_balanced_over_the_eight_labels():
  rows = wordnet.read_split("ood")
  assert all(sorted(row) == ["inputs", "lemma", "targets"] for row in rows)
  assert all(row["inputs"].startswith(row["lemma"] + ": ") for row in rows)
  counts = collections.Counter(row["targets"] for row in rows)
  assert sorted(counts) == list(wordnet.LABELS)
  assert len(set(counts.values())) == 1 and min(counts.values()) >= 50, counts


def _corpus_lemmas():
  """Definition -> the lemma lists of the corpus lines with it (read without the builder's code)."""
  lemmas = collections.defaultdict(list)
  for line in wordnet.read_corpus():
    head, _, rest = line.partition(": ")
    lemmas[rest.split(";")[0]].append(head.split(", "))
  return lemmas


def test_ood_split_is_disjoint_from_the_shipped_splits_by_lemma_and_example():
  ood = wordnet.read_split("ood")
  shipped = [row for name in SPLITS for row in wordnet.read_split(name)]
  assert not {r["inputs"] for r in ood} & {r["inputs"] for r in shipped}
  # Every lemma, not only the first, of the synsets whose text the corpus holds,
  # one line "<lemmas>: <definition>" each: the ood and train synsets (the build
  # left only validation and test out of it).
  corpus = _corpus_lemmas()

  def all_lemmas(row):
    lines = [l for l in corpus[row["inputs"][len(row["lemma"]) + 2 :]] if l[0] == row["lemma"]]
    return lines, {l.lower() for lemmas in lines for l in lemmas} | {row["lemma"].lower()}

  shipped_lemmas = set().union(*(all_lemmas(r)[1] for r in shipped))
  in_corpus = 0
  for row in ood:
    lines, lemmas = all_lemmas(row)
    in_corpus += bool(lines)
    assert not lemmas & shipped_lemmas, (row, lemmas & shipped_lemmas)
  assert in_corpus == len(ood)  # the overlap with the corpus the docstrings state


# FAKE_NOUNS (tests/data/test_wordnet.py) and more synsets: entity > animal >
# {dog > puppy, cat, bird > {robin, wren, finch}, collie > Lassie (an instance,
# @i)}, entity > tool > {hammer, saw}, entity > vehicle > {cart > wheelbarrow,
# sled, skid}; the wheelbarrow is also a tool, and the skid's second lemma is Hammer.
MORE_NOUNS = """\
00000008 05 n 01 bird 0 001 @ 00000002 n 0000 | a warm-blooded egg-laying vertebrate
00000009 05 n 01 robin 0 001 @ 00000008 n 0000 | a thrush with a red breast
00000010 05 n 01 wren 0 001 @ 00000008 n 0000 | a small brown songbird
00000011 05 n 01 puppy 0 001 @ 00000003 n 0000 | a young dog
00000012 06 n 01 saw 0 001 @ 00000005 n 0000 | a hand tool for cutting
00000013 06 n 01 vehicle 0 001 @ 00000001 n 0000 | a conveyance that carries people or objects
00000014 06 n 01 cart 0 001 @ 00000013 n 0000 | a wheeled vehicle
00000015 06 n 02 sled 0 sledge 0 001 @ 00000013 n 0000 | a vehicle on runners
00000016 06 n 02 skid 0 Hammer 0 001 @ 00000013 n 0000 | a sledge for hauling logs
00000017 06 n 01 wheelbarrow 0 002 @ 00000014 n 0000 @ 00000005 n 0000 | a cart with one wheel
00000018 05 n 01 collie 0 001 @ 00000002 n 0000 | a silky-coated sheepdog
00000019 05 n 01 Lassie 0 001 @i 00000018 n 0000 | a fictional collie
00000020 05 n 01 finch 0 001 @ 00000008 n 0000 | a small seed-eating songbird
"""
BIRDS = {"00000008", "00000009", "00000010", "00000020"}
VEHICLES = {"00000013", "00000014", "00000015", "00000017"}  # not the skid


@pytest.fixture(name="snippet")
def _snippet(tmp_path):
  from scripts import build_wordnet_data  # pylint: disable=g-import-not-at-top

  path = tmp_path / "data.noun"
  path.write_text(FAKE_NOUNS + MORE_NOUNS)
  nouns = list(build_wordnet_data.parse_synsets(str(path)))
  hypernyms = build_wordnet_data.parse_hypernyms(str(path))
  # dog, hammer (train), cat (validation), Lassie (test).
  labels = {
    "00000003": "animal",
    "00000004": "animal",
    "00000007": "artifact",
    "00000019": "animal",
  }
  splits = {
    name: [{"offset": o, "targets": labels[o]} for o in offsets]
    for name, offsets in (
      ("train", ["00000003", "00000007"]),
      ("validation", ["00000004"]),
      ("test", ["00000019"]),
    )
  }
  return build_wordnet_data, nouns, hypernyms, splits


def test_unseen_branches_are_the_maximal_subtrees_without_a_split_synset(snippet):
  build_wordnet_data, _, hypernyms, splits = snippet
  seen = {r["offset"] for rows in splits.values() for r in rows}
  branches = build_wordnet_data.unseen_branches(hypernyms, seen)
  # Not the collie (its instance Lassie is in test), nor animal, tool or entity
  # (above a split synset); the wheelbarrow is in the vehicle's branch though it
  # is also a tool.
  assert branches == {
    "00000006": {"00000006"},
    "00000008": BIRDS,
    "00000011": {"00000011"},
    "00000012": {"00000012"},
    "00000013": VEHICLES | {"00000016"},
  }


def test_ood_builder_never_draws_from_a_branch_holding_a_split_synset(snippet):
  build_wordnet_data, nouns, hypernyms, splits = snippet
  seen = {r["offset"] for rows in splits.values() for r in rows}
  hyponyms = collections.defaultdict(set)
  for offset, parents in hypernyms.items():
    for parent in parents:
      hyponyms[parent].add(offset)

  def subtree(offset):
    return {offset}.union(*(subtree(c) for c in hyponyms[offset]))

  def draw(per_class, **kwargs):
    rows = build_wordnet_data.ood_split(nouns, hypernyms, splits, per_class=per_class, **kwargs)
    for row in rows:
      assert not subtree(row["offset"]) & seen, row  # no split synset at or below it
      assert row["inputs"].startswith(row["lemma"] + ": ")
    assert collections.Counter(r["targets"] for r in rows) == {
      "animal": per_class,
      "artifact": per_class,
    }
    return {r["offset"] for r in rows}

  # Branches of two synsets or more: the birds and the vehicles; not the collie
  # (Lassie is in test), nor the skid (its lemma Hammer is the train hammer's).
  assert draw(4) == BIRDS | VEHICLES
  with pytest.raises(ValueError, match="4 animal synsets"):
    draw(5)
  # Lone leaves too with branches of one synset: the puppy (below the train dog)
  # and the saw (beside the train hammer).
  assert draw(5, min_branch=1) == BIRDS | VEHICLES | {"00000011", "00000012"}
