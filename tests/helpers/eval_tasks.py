"""seqio tasks with known labels and a metric, for the eval command's tests (MIXTURE_OR_TASK_MODULE)."""

import os

import seqio
import tensorflow as tf

VOCAB = seqio.SentencePieceVocabulary(os.environ["T5_VOCAB"])
WORDS = [
  "great",
  "awful",
  "lovely",
  "boring",
  "superb",
  "dreadful",
  "fine",
  "bad",
  "moving",
  "dull",
  "charming",
  "tedious",
  "witty",
]
LABELS = ["positive", "negative"]
EXAMPLES = [
  {"inputs": f"review {i}: the film was {w}", "targets": LABELS[i % 2]} for i, w in enumerate(WORDS)
]


def accuracy(targets, predictions):
  return {"accuracy": 100.0 * sum(t == p for t, p in zip(targets, predictions)) / len(targets)}


TEST_EXAMPLES = [
  {"inputs": f"review {100 + i}: it was {w}", "targets": LABELS[i % 2]}
  for i, w in enumerate(("gripping", "clumsy", "tender", "flat", "vivid"))
]


def _dataset_fn(split, shuffle_files, seed=None):
  del shuffle_files, seed
  examples = TEST_EXAMPLES if split == "test" else EXAMPLES
  return tf.data.Dataset.from_tensor_slices(
    {k: [e[k] for e in examples] for k in ("inputs", "targets")}
  )


for name in ("eval_sentiment", "eval_sentiment_copy"):
  seqio.TaskRegistry.add(
    name,
    source=seqio.FunctionDataSource(_dataset_fn, splits=["train", "validation", "test"]),
    preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
    output_features={
      "inputs": seqio.Feature(VOCAB, add_eos=True),
      "targets": seqio.Feature(VOCAB, add_eos=True),
    },
    metric_fns=[accuracy],
  )

seqio.MixtureRegistry.add(
  "eval_sentiment_mixture", ["eval_sentiment", "eval_sentiment_copy"], default_rate=1.0
)
