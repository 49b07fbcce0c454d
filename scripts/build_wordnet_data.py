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
* `corpus.txt.gz`: one line per synset of every part of speech, "lemmas:
  definition; examples", for pretraining; the validation and test synsets of
  the task are left out.
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

OUT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "prompt_tuning", "data", "wordnet")
# WordNet's lexicographer file numbers of the task's noun supersenses -> label.
SUPERSENSES = {5: "animal", 6: "artifact", 8: "body", 13: "food", 15: "location",
               18: "person", 20: "plant", 27: "substance"}
PER_CLASS = {"train": 1000, "validation": 50, "test": 100}
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
      lemmas = [re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in fields[4:4 + 2 * count:2]]
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
      pointers = [fields[at + 1 + 4 * i:at + 5 + 4 * i] for i in range(int(fields[at]))]
      hypernyms[fields[0]] = [p[1] for p in pointers if p[0] in ("@", "@i") and p[2] == "n"]
  return hypernyms


def _bucket(text: str) -> float:
  return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def task_splits(nouns):
  """Assigns supersense synsets to splits by lemma, disjoint and class-balanced."""
  candidates = [(o, SUPERSENSES[lex], lemmas, d) for o, lex, lemmas, d, _ in nouns
                if lex in SUPERSENSES and d]
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
    examples[name][label].append({"inputs": f"{lemmas[0]}: {definition}", "targets": label,
                                  "lemma": lemmas[0], "offset": offset})
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

  def ancestors(offset):
    seen, todo = set(), list(hypernyms.get(offset, ()))
    while todo:
      parent = todo.pop()
      if parent not in seen:
        seen.add(parent)
        todo.extend(hypernyms.get(parent, ()))
    return seen

  out = {}
  for name, rows in splits.items():
    synsets = sorted((r for r in rows if hypernyms.get(r["offset"])),
                     key=lambda r: _bucket("cycle" + r["offset"]))
    parents = [hypernyms[r["offset"]][0] for r in synsets]
    examples = []
    for i, r in enumerate(synsets):
      above = ancestors(r["offset"])
      excluded = {l.lower() for a in above for l in lemmas_of[a]}
      excluded |= {l.lower() for l in lemmas_of[r["offset"]]}
      negative = next(c for c in (parents[(i + k) % len(parents)]
                                  for k in range(1, len(parents)))
                      if c not in above and lemmas_of[c][0].lower() not in excluded)
      positive = lemmas_of[parents[i]][0]
      for category, label in ((positive, "yes"), (lemmas_of[negative][0], "no")):
        examples.append({"inputs": f"is {r['lemma']} a kind of {category}? {r['inputs']}",
                         "targets": label, "lemma": r["lemma"], "category": category,
                         "offset": r["offset"] + label})
    out[name] = sorted(examples, key=lambda e: _bucket("shuffle" + e["offset"]))
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
    print(f"build_wordnet_data: no WordNet 3.0 in {args.wordnet_dir}; apt-get install "
          "wordnet-base, or pass --wordnet_dir", file=sys.stderr)
    return 2
  synsets = {pos: list(parse_synsets(os.path.join(args.wordnet_dir, f"data.{pos}")))
             for pos in ("noun", "verb", "adj", "adv")}
  splits = task_splits(synsets["noun"])
  held_out = {r["offset"] for name in ("validation", "test") for r in splits[name]}
  hypernyms = hypernym_task(splits, synsets["noun"],
                            parse_hypernyms(os.path.join(args.wordnet_dir, "data.noun")))
  os.makedirs(args.output_dir, exist_ok=True)
  for task, keys, examples in (("supersense", ("inputs", "targets", "lemma"), splits),
                               ("hypernym", ("inputs", "targets", "lemma", "category"),
                                hypernyms)):
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
      sentence_iterator=iter(corpus), model_writer=model, vocab_size=VOCAB_SIZE,
      model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1,
      shuffle_input_sentence=False, character_coverage=1.0, minloglevel=2)
  with open(os.path.join(args.output_dir, "spm.model"), "wb") as f:
    f.write(model.getvalue())
  with open(os.path.join(args.output_dir, "LICENSE"), "w") as f:
    f.write(LICENSE)
  counts = {task: {name: dict(sorted(collections.Counter(r["targets"] for r in rows).items()))
                    for name, rows in examples.items()}
            for task, examples in (("supersense", splits), ("hypernym", hypernyms))}
  print(json.dumps({"corpus_lines": len(corpus), "splits": counts}))
  return 0


if __name__ == "__main__":
  sys.exit(main())
