"""Looking up registered seqio tasks and mixtures, and checking them against the model.

What the trainer, evaluation and inference all ask of a MIXTURE_OR_TASK_NAME:
import the module that registers it, find it (or close names), its tasks, its
splits, and whether its vocabulary is the model's.
"""

import difflib
import functools
import importlib
from typing import Optional

import seqio
import tensorflow as tf


def import_task_module(module: Optional[str]) -> None:
  """Imports MIXTURE_OR_TASK_MODULE so that its tasks register."""
  if not module:
    return
  try:
    importlib.import_module(module)
  except ImportError as e:
    raise ImportError(
      f"MIXTURE_OR_TASK_MODULE={module!r} does not import ({e}); pass a module "
      "on the Python path that registers your seqio tasks"
    ) from None


def get_task_or_mixture(name: str):
  """The registered task or mixture, or an error listing close names."""
  if name in seqio.MixtureRegistry.names():
    return seqio.get_mixture_or_task(name)
  if name in seqio.TaskRegistry.names():
    return seqio.get_mixture_or_task(name)
  known = list(seqio.TaskRegistry.names()) + list(seqio.MixtureRegistry.names())
  close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
  hint = (
    f"close names: {close}"
    if close
    else "set MIXTURE_OR_TASK_MODULE to the module that registers it"
  )
  raise ValueError(f"no seqio task or mixture named {name!r}; {hint}")


def tasks_of(name: str) -> list:
  """The tasks of a mixture, or the task itself, by name."""
  provider = get_task_or_mixture(name)
  return list(provider.tasks) if isinstance(provider, seqio.Mixture) else [provider]


def targets_vocabulary(name: str):
  """The vocabulary of the first task's targets."""
  return tasks_of(name)[0].output_features["targets"].vocabulary


def has_split(name: str, split: str) -> bool:
  """Whether every task of `name` has `split`."""
  return all(split in task.splits for task in tasks_of(name))


def check_vocabulary(name: str, vocabulary, vocab_size: int) -> None:
  """Raises if a task of `name` uses a vocabulary other than the model's.

  Args:
    name: task or mixture.
    vocabulary: the model's VOCABULARY (None skips the identity check).
    vocab_size: rows of the model's embedding table (NUM_EMBEDDINGS).
  """
  tasks = tasks_of(name)  # a registered name, or a one-line error first
  if isinstance(vocabulary, seqio.SentencePieceVocabulary):
    _file_bytes(vocabulary.sentencepiece_model_file)  # readable, or a one-line error now
  for task in tasks:
    for feature_name, feature in task.output_features.items():
      vocab = feature.vocabulary
      if isinstance(vocab, seqio.SentencePieceVocabulary):
        _file_bytes(vocab.sentencepiece_model_file, _TASK_VOCABULARY_HINT)
      if vocab.vocab_size > vocab_size:
        raise ValueError(
          f"task {task.name!r} feature {feature_name!r} has a vocabulary of "
          f"{vocab.vocab_size} ids but the model embeds {vocab_size} (NUM_EMBEDDINGS); use "
          "the model's vocabulary for the task, or a model made for the task's vocabulary"
        )
      if vocabulary is None or vocab == vocabulary or _same_sentencepiece(vocab, vocabulary):
        continue
      raise ValueError(
        f"task {task.name!r} feature {feature_name!r} uses {_describe(vocab)}, "
        f"but the model's VOCABULARY is {_describe(vocabulary)}; set "
        "SENTENCEPIECE_MODEL_FILE to the task's vocabulary, or register the "
        "task with the model's"
      )


def _describe(vocabulary) -> str:
  if isinstance(vocabulary, seqio.SentencePieceVocabulary):
    return (
      f"SentencePieceVocabulary({vocabulary.sentencepiece_model_file}, "
      f"extra_ids={vocabulary.extra_ids})"
    )
  return f"{type(vocabulary).__name__}({vocabulary.vocab_size} ids)"


_MODEL_VOCABULARY_HINT = (
  "set SENTENCEPIECE_MODEL_FILE to a local copy (offline, gs:// cannot be read)"
)
_TASK_VOCABULARY_HINT = (
  "it is a task's vocabulary: for the paper's tasks set "
  "PROMPT_TUNING_T5_VOCABULARY (PROMPT_TUNING_MT5_VOCABULARY for mt5_ "
  "tasks) to a local copy (offline, gs:// cannot be read)"
)


@functools.lru_cache(maxsize=8)
def _file_bytes(path: str, hint: str = _MODEL_VOCABULARY_HINT) -> bytes:
  """A vocabulary file's contents, read once per path (a mixture's tasks share it).

  Raises:
    ValueError: the file cannot be read (missing, or gs:// without network).
  """
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  except (tf.errors.OpError, OSError) as e:
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise ValueError(
      f"cannot read the SentencePiece vocabulary {path} ({reason}); {hint}"
    ) from None


def _same_sentencepiece(a, b) -> bool:
  """Whether two SentencePiece vocabularies map text to the same ids.

  Their files may be at other paths, and their numbers of extra ids (sentinels
  appended after the pieces) may differ: the size check covers those.
  """
  if not (
    isinstance(a, seqio.SentencePieceVocabulary) and isinstance(b, seqio.SentencePieceVocabulary)
  ):
    return False
  return _file_bytes(a.sentencepiece_model_file) == _file_bytes(b.sentencepiece_model_file)
