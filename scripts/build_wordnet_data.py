r"""Builds the bundled WordNet corpus, supersense task and SentencePiece vocabulary.

Reads WordNet 3.0 as Debian's `wordnet-base` package installs it
(`apt-get install wordnet-base`: /usr/share/wordnet/data.{noun,verb,adj,adv})
and writes, under prompt_tuning/data/wordnet/:

* `supersense_{train,validation,test}.jsonl.gz`: noun synsets of eight
  supersenses (WordNet's lexicographer files), as `{"inputs": "<lemma>: <gloss
  definition>", "targets": <label>, "lemma": ...}`; labels are plain words
  (animal, artifact, body, food, location, person, plant, substance), so
  class-label prompt initialization is meaningful. Splits are disjoint by
  lemma (no lemma of a validation or test synset names any other split's
  synset) and balanced by class (train at most 1000 per class, validation 50,
  test 100).
* `supersense_ood.jsonl.gz`: the same task out of domain, the paper's domain
  shift (§6) in miniature: 50 per label from sub-categories no split reaches.
  A branch is a maximal subtree of the noun hypernym graph (`@` and `@i`)
  none of whose synsets is in train, validation or test; the split draws
  (by hash) from branches of at least two synsets (not a lone leaf beside
  seen siblings) whose synsets' lemmas are none of the splits' lemmas
  (`ood_split`). Body is the scarcest label (70 synsets qualify). The shift
  is taxonomic, not lexical: 2.64 hypernym pointers from an ood synset to its
  nearest train synset against 1.95 for test, from 336 branches (median 3
  synsets); 54.5% of ood synsets (58.3% of test) still have a split synset
  among their ancestors; inputs are as long (19.8 pieces, test 20.0) and
  as rare in pieces (2.25% of definition pieces are seen < 5 times in train,
  test 2.27%). The build prints these as `ood_shift`. Its synsets, unlike
  validation and test, are in the corpus (all 400).
* `corpus.txt.gz`: one line per synset of every part of speech, "lemmas:
  definition; examples", for pretraining; the validation and test synsets of
  the task are left out (the ood synsets are not: the corpus and vocabulary
  were shipped before the ood split and stay as they were).
* `spm.model`: a 4000-piece unigram SentencePiece vocabulary trained on the
  corpus with T5's ids (pad 0, EOS 1, unk 2, no BOS).
* `LICENSE`: WordNet 3.0's license, which permits redistribution with it.

Everything is deterministic: rerunning writes the same bytes (gzip without
timestamps, sorted records, hash-based splits, single-threaded SentencePiece
fed from memory).

    python scripts/build_wordnet_data.py [--wordnet_dir=/usr/share/wordnet]
"""

import argparse
import collections
import gzip
import hashlib
import io
import json
import os
import re
import sys

import sentencepiece as spm

OUT_DIR = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "prompt_tuning", "data", "wordnet"
)
# WordNet's lexicographer file numbers of the task's noun supersenses -> label.
SUPERSENSES = {
  5: "animal",
  6: "artifact",
  8: "body",
  13: "food",
  15: "location",
  18: "person",
  20: "plant",
  27: "substance",
}
PER_CLASS = {"train": 1000, "validation": 50, "test": 100}
# The ood split: examples per label, and the fewest synsets of a branch it draws from.
OOD_PER_CLASS = 50
OOD_MIN_BRANCH = 2
VOCAB_SIZE = 4000
LICENSE = """WordNet Release 3.0

This software and database is being provided to you, the LICENSEE, by
Princeton University under the following license.  By obtaining, using
and/or copying this software and database, you agree that you have
read, understood, and will comply with these terms and conditions.:

Permission to use, copy, modify and distribute this software and
database and its documentation for any purpose and without fee or
royalty is hereby granted, provided that you agree to comply with
the following copyright notice and statements, including the disclaimer,
and that the same appear on ALL copies of the software, database and
documentation, including modifications that you make for internal
use or for distribution.

WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.

THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR
IMPLIED.  BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANT-
ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE
OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT
INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR
OTHER RIGHTS.

The name of Princeton University or Princeton may not be used in
advertising or publicity pertaining to distribution of the software
and/or database.  Title to copyright in this software, database and
any associated documentation shall at all times remain with
Princeton University and LICENSEE agrees to preserve same.

The files under this directory are derived from WordNet 3.0 by
scripts/build_wordnet_data.py of this project.
"""


def parse_synsets(path: str):
  """Yields (offset, lexname number, lemmas, definition, examples) of a data.<pos> file."""
  with open(path, encoding="utf-8") as f:
    for line in f:
      if line.startswith("  "):  # the license header
        continue
      data, _, gloss = line.partition(" | ")
      fields = data.split()
      offset, lex_filenum = fields[0], int(fields[1])
      count = int(fields[3], 16)
      lemmas = [re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in fields[4 : 4 + 2 * count : 2]]
      parts = [p.strip() for p in gloss.strip().split(";")]
      definition = parts[0]
      examples = [p.strip('"') for p in parts[1:] if p.startswith('"')]
      yield offset, lex_filenum, lemmas, definition, examples


def parse_hypernyms(path: str) -> dict[str, list[str]]:
  """Offset -> the offsets of its direct hypernyms (class `@` and instance `@i`), in file order."""
  hypernyms = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      if line.startswith("  "):
        continue
      fields = line.partition(" | ")[0].split()
      count = int(fields[3], 16)
      at = 4 + 2 * count
      pointers = [fields[at + 1 + 4 * i : at + 5 + 4 * i] for i in range(int(fields[at]))]
      hypernyms[fields[0]] = [p[1] for p in pointers if p[0] in ("@", "@i") and p[2] == "n"]
  return hypernyms


def _bucket(text: str) -> float:
  return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def ancestors(offset: str, hypernyms: dict[str, list[str]]) -> set[str]:
  """Every synset above `offset` in the noun hypernym graph (`parse_hypernyms`)."""
  seen, todo = set(), list(hypernyms.get(offset, ()))
  while todo:
    parent = todo.pop()
    if parent not in seen:
      seen.add(parent)
      todo.extend(hypernyms.get(parent, ()))
  return seen


def task_splits(nouns):
  """Assigns supersense synsets to splits by lemma, disjoint and class-balanced."""
  candidates = [
    (o, SUPERSENSES[lex], lemmas, d) for o, lex, lemmas, d, _ in nouns if lex in SUPERSENSES and d
  ]
  split_of = {}
  for offset, _, lemmas, _ in candidates:
    b = _bucket(lemmas[0].lower())
    split_of[offset] = "train" if b < 0.8 else "validation" if b < 0.9 else "test"
  # Disjoint by lemma: a synset sharing any lemma with a synset of another split
  # is dropped (train keeps its synsets; validation wins over test).
  owner = {}
  for name in ("train", "validation", "test"):
    for offset, _, lemmas, _ in candidates:
      if split_of[offset] != name:
        continue
      for lemma in lemmas:
        owner.setdefault(lemma.lower(), name)
  examples = collections.defaultdict(lambda: collections.defaultdict(list))
  for offset, label, lemmas, definition in candidates:
    name = split_of[offset]
    if any(owner[l.lower()] != name for l in lemmas):
      continue
    examples[name][label].append(
      {
        "inputs": f"{lemmas[0]}: {definition}",
        "targets": label,
        "lemma": lemmas[0],
        "offset": offset,
      }
    )
  out = {}
  for name, per_class in PER_CLASS.items():
    rows = []
    for label in sorted(examples[name]):
      ranked = sorted(examples[name][label], key=lambda r: _bucket("order" + r["offset"]))
      rows.extend(ranked[:per_class])
    out[name] = sorted(rows, key=lambda r: _bucket("shuffle" + r["offset"]))
  return out


def hypernym_task(splits, nouns, hypernyms):
  """The "is X a kind of Y" task on the supersense task's synsets and splits.

  Each synset X of a split gives two examples: Y = the first lemma of X's first
  direct hypernym ("yes"), and Y = another synset's "yes" category that is no
  ancestor of X and none of X's lemmas ("no"). The synsets are put in a
  hash-shuffled cycle and X takes the next valid category along it, so each
  category is a "no" about as often as it is a "yes": neither X nor Y alone
  gives the answer (the definition often names the category, though; see
  docs/scaling.md for that baseline).
  """
  lemmas_of = {offset: lemmas for offset, _, lemmas, _, _ in nouns}

  out = {}
  for name, rows in splits.items():
    synsets = sorted(
      (r for r in rows if hypernyms.get(r["offset"])), key=lambda r: _bucket("cycle" + r["offset"])
    )
    parents = [hypernyms[r["offset"]][0] for r in synsets]
    examples = []
    for i, r in enumerate(synsets):
      above = ancestors(r["offset"], hypernyms)
      excluded = {l.lower() for a in above for l in lemmas_of[a]}
      excluded |= {l.lower() for l in lemmas_of[r["offset"]]}
      negative = next(
        c
        for c in (parents[(i + k) % len(parents)] for k in range(1, len(parents)))
        if c not in above and lemmas_of[c][0].lower() not in excluded
      )
      positive = lemmas_of[parents[i]][0]
      for category, label in ((positive, "yes"), (lemmas_of[negative][0], "no")):
        examples.append(
          {
            "inputs": f"is {r['lemma']} a kind of {category}? {r['inputs']}",
            "targets": label,
            "lemma": r["lemma"],
            "category": category,
            "offset": r["offset"] + label,
          }
        )
    out[name] = sorted(examples, key=lambda e: _bucket("shuffle" + e["offset"]))
  return out


def unseen_branches(hypernyms: dict[str, list[str]], seen: set[str]) -> dict[str, frozenset[str]]:
  """The maximal subtrees of the hypernym graph that hold no synset of `seen`.

  A synset is unseen if neither it nor any of its hyponyms (transitively, over
  the `@` and `@i` pointers of `hypernyms`) is in `seen`; a branch is an unseen
  synset none of whose hypernyms is unseen, with all its hyponyms. Every
  unseen synset is in at least one branch (several, under multiple
  inheritance).

  Args:
    hypernyms: offset -> its direct hypernyms' offsets, for every noun synset
      (`parse_hypernyms`).
    seen: the offsets of the shipped splits' synsets.

  Returns:
    The root of each branch -> the offsets of the branch's synsets (root included).
  """
  hyponyms = collections.defaultdict(list)
  for offset, parents in hypernyms.items():
    for parent in parents:
      hyponyms[parent].append(offset)
  above_seen, todo = set(), list(seen)  # the seen synsets and all their ancestors
  while todo:
    offset = todo.pop()
    if offset not in above_seen:
      above_seen.add(offset)
      todo.extend(hypernyms.get(offset, ()))
  branches = {}
  for root in sorted(hypernyms):
    if root in above_seen or any(p not in above_seen for p in hypernyms[root]):
      continue
    members, todo = set(), [root]
    while todo:
      offset = todo.pop()
      if offset not in members:
        members.add(offset)
        todo.extend(hyponyms[offset])
    branches[root] = frozenset(members)
  return branches


def ood_split(
  nouns, hypernyms, splits, per_class: int = OOD_PER_CLASS, min_branch: int = OOD_MIN_BRANCH
) -> list[dict[str, str]]:
  """The out-of-domain split: supersense synsets from branches no split reaches.

  A synset is drawn from if it is in a branch of `unseen_branches` (no synset
  of the branch is in a split) of at least `min_branch` synsets (a sub-category
  none of whose members was seen, not a lone leaf beside seen siblings) and
  none of its lemmas is a lemma of a split's synset (case-insensitively). Each
  of the splits' labels gets `per_class` of them, chosen by hash.

  Args:
    nouns: the noun synsets (`parse_synsets`).
    hypernyms: `parse_hypernyms` of the same file.
    splits: split name -> its rows (`task_splits`: "offset", "targets").
    per_class: examples per label.
    min_branch: the fewest synsets a branch drawn from has.

  Returns:
    Rows like `task_splits`'s, hash-shuffled.

  Raises:
    ValueError: a label has fewer than `per_class` synsets that qualify.
  """
  seen = {r["offset"] for rows in splits.values() for r in rows}
  labels = sorted({r["targets"] for rows in splits.values() for r in rows})
  lemmas_of = {offset: lemmas for offset, _, lemmas, _, _ in nouns}
  seen_lemmas = {l.lower() for offset in seen for l in lemmas_of[offset]}
  drawable = set()
  for members in unseen_branches(hypernyms, seen).values():
    if len(members) >= min_branch:
      drawable |= members
  examples = collections.defaultdict(list)
  for offset, lex, lemmas, definition, _ in nouns:
    if (
      lex in SUPERSENSES
      and definition
      and offset in drawable
      and not any(l.lower() in seen_lemmas for l in lemmas)
    ):
      label = SUPERSENSES[lex]
      examples[label].append(
        {
          "inputs": f"{lemmas[0]}: {definition}",
          "targets": label,
          "lemma": lemmas[0],
          "offset": offset,
        }
      )
  rows = []
  for label in labels:
    if len(examples[label]) < per_class:
      raise ValueError(
        f"ood split: {len(examples[label])} {label} synsets are in unseen "
        f"branches of >= {min_branch} synsets; {per_class} are needed. Lower "
        "OOD_PER_CLASS or OOD_MIN_BRANCH"
      )
    ranked = sorted(examples[label], key=lambda r: _bucket("ood" + r["offset"]))
    rows.extend(ranked[:per_class])
  return sorted(rows, key=lambda r: _bucket("shuffle" + r["offset"]))


def ood_shift(splits, ood, hypernyms, sp_model: bytes, rare: int = 5) -> dict:
  """How the ood split differs from the test split: what the build prints.

  * `branches`: how many unseen branches the ood synsets come from, and their
    median size (synsets).
  * `hops_to_train`: the mean number of hypernym pointers (either direction)
    from a synset to its nearest train synset, for test and ood.
  * `under_seen`: the share of synsets with a shipped synset among their
    ancestors.
  * `pieces`: mean input length in pieces of the bundled vocabulary, and the
    share of the definitions' pieces seen fewer than `rare` times in train's inputs.
  """
  train = {r["offset"] for r in splits["train"]}
  seen = {r["offset"] for rows in splits.values() for r in rows}
  neighbours = collections.defaultdict(set)
  for offset, parents in hypernyms.items():
    for parent in parents:
      neighbours[offset].add(parent)
      neighbours[parent].add(offset)
  hops, queue = dict.fromkeys(train, 0), collections.deque(sorted(train))
  while queue:
    offset = queue.popleft()
    for other in sorted(neighbours[offset]):
      if other not in hops:
        hops[other] = hops[offset] + 1
        queue.append(other)

  sp = spm.SentencePieceProcessor(model_proto=sp_model)
  train_pieces = collections.Counter(p for r in splits["train"] for p in sp.encode(r["inputs"]))
  branch_of = {}
  for root, members in unseen_branches(hypernyms, seen).items():
    for offset in members:
      if len(members) > len(branch_of.get(offset, ())):
        branch_of[offset] = members
  sizes = sorted({branch_of[r["offset"]] for r in ood}, key=len)
  out = {"branches": {"count": len(sizes), "median_size": len(sizes[len(sizes) // 2])}}
  for name, rows in (("test", splits["test"]), ("ood", ood)):
    definitions = [sp.encode(r["inputs"][len(r["lemma"]) + 2 :]) for r in rows]
    pieces = [p for d in definitions for p in d]
    out[name] = {
      "hops_to_train": round(sum(hops[r["offset"]] for r in rows) / len(rows), 2),
      "under_seen": round(
        sum(bool(ancestors(r["offset"], hypernyms) & seen) for r in rows) / len(rows), 3
      ),
      "input_pieces": round(sum(len(sp.encode(r["inputs"])) for r in rows) / len(rows), 1),
      "rare_definition_pieces": round(sum(train_pieces[p] < rare for p in pieces) / len(pieces), 4),
    }
  return out


def _write_gzip(path: str, text: str) -> None:
  buffer = io.BytesIO()
  with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as f:
    f.write(text.encode("utf-8"))
  with open(path, "wb") as f:
    f.write(buffer.getvalue())


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--wordnet_dir", default="/usr/share/wordnet")
  parser.add_argument("--output_dir", default=OUT_DIR)
  args = parser.parse_args(argv)
  if not os.path.exists(os.path.join(args.wordnet_dir, "data.noun")):
    print(
      f"build_wordnet_data: no WordNet 3.0 in {args.wordnet_dir}; apt-get install "
      "wordnet-base, or pass --wordnet_dir",
      file=sys.stderr,
    )
    return 2
  synsets = {
    pos: list(parse_synsets(os.path.join(args.wordnet_dir, f"data.{pos}")))
    for pos in ("noun", "verb", "adj", "adv")
  }
  splits = task_splits(synsets["noun"])
  held_out = {r["offset"] for name in ("validation", "test") for r in splits[name]}
  graph = parse_hypernyms(os.path.join(args.wordnet_dir, "data.noun"))
  hypernyms = hypernym_task(splits, synsets["noun"], graph)
  ood = ood_split(synsets["noun"], graph, splits)
  os.makedirs(args.output_dir, exist_ok=True)
  for task, keys, examples in (
    ("supersense", ("inputs", "targets", "lemma"), {**splits, "ood": ood}),
    ("hypernym", ("inputs", "targets", "lemma", "category"), hypernyms),
  ):
    for name, rows in examples.items():
      lines = "".join(json.dumps({k: r[k] for k in keys}) + "\n" for r in rows)
      _write_gzip(os.path.join(args.output_dir, f"{task}_{name}.jsonl.gz"), lines)
  corpus = []
  for pos in ("noun", "verb", "adj", "adv"):
    for offset, _, lemmas, definition, examples in synsets[pos]:
      if pos == "noun" and offset in held_out:
        continue
      text = f"{', '.join(lemmas)}: {definition}"
      if examples:
        text += "; " + "; ".join(examples)
      corpus.append(text)
  _write_gzip(os.path.join(args.output_dir, "corpus.txt.gz"), "\n".join(corpus) + "\n")
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
    sentence_iterator=iter(corpus),
    model_writer=model,
    vocab_size=VOCAB_SIZE,
    model_type="unigram",
    pad_id=0,
    eos_id=1,
    unk_id=2,
    bos_id=-1,
    num_threads=1,
    shuffle_input_sentence=False,
    character_coverage=1.0,
    minloglevel=2,
  )
  with open(os.path.join(args.output_dir, "spm.model"), "wb") as f:
    f.write(model.getvalue())
  with open(os.path.join(args.output_dir, "LICENSE"), "w") as f:
    f.write(LICENSE)
  counts = {
    task: {
      name: dict(sorted(collections.Counter(r["targets"] for r in rows).items()))
      for name, rows in examples.items()
    }
    for task, examples in (("supersense", {**splits, "ood": ood}), ("hypernym", hypernyms))
  }
  print(
    json.dumps(
      {
        "corpus_lines": len(corpus),
        "splits": counts,
        "ood_shift": ood_shift(splits, ood, graph, model.getvalue()),
      }
    )
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
