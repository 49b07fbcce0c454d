"""Prompt initializers of the paper (§3.2), each a flax-style `(rng, shape) -> array`.

* `random_uniform(scale=0.5)`: i.i.d. uniform in [-scale, scale].
* `sampled_vocab(embeddings, population_size=5000)`: rows of the embedding table
  drawn from its first N rows (the paper's "most common" tokens in T5's
  SentencePiece ordering), without replacement unless P > N.
* `class_labels(embeddings, vocabulary, labels)`: row i is the mean embedding of
  label i's sub-tokens; remaining rows come from a fallback initializer.
* `from_string(embeddings, vocabulary, text)`: one token embedding per row, the
  rest from the fallback.
* `from_array(value)`: a given `[P, E]` array, shape checked.

`embeddings` is a `[vocab, embed]` array or a zero-argument callable returning
the table (so a checkpoint is read only when the prompt is initialized; files
are read by `prompt_tuning.checkpoints`, never here). `vocabulary` is anything with `encode(str) -> list[int]`, such as
a `seqio.SentencePieceVocabulary`.
"""

import logging
import os
from typing import Any, Callable, Protocol, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Initializer = Callable[[Array, Sequence[int]], Array]
Embeddings = Any  # array-like, or a zero-argument callable returning one.


class Vocabulary(Protocol):
  def encode(self, s: str) -> Sequence[int]: ...


def _shape(shape: Sequence[int]) -> tuple[int, int]:
  if len(shape) != 2:
    raise ValueError(f"a prompt is [length, embed]; asked to initialize shape {tuple(shape)}")
  return int(shape[0]), int(shape[1])


def _load_array(value: Any, what: str) -> np.ndarray:
  if isinstance(value, (str, bytes, os.PathLike)):
    raise ValueError(
      f"the {what} is a path ({os.fspath(value)!r}); the model takes arrays: "
      "give an array or a zero-argument callable returning one (the gin files "
      "use prompt_tuning.checkpoints.prompt_files to read files)"
    )
  if callable(value):
    value = value()
  return np.asarray(value, dtype=np.float32)


def _embedding_table(embeddings: Embeddings, embed_dim: int) -> np.ndarray:
  table = _load_array(embeddings, "embedding")
  if table.ndim != 2:
    raise ValueError(f"embedding table must be [vocab, embed], got shape {table.shape}")
  if table.shape[1] != embed_dim:
    raise ValueError(
      f"embedding table has width {table.shape[1]} but the prompt is "
      f"{embed_dim} wide (EMBED_DIM); use the embedding of the model being prompted"
    )
  return table


def random_uniform(scale: float = 0.5) -> Initializer:
  """Uniform in [-scale, scale] (the paper's random initialization, scale 0.5)."""

  def init(rng: Array, shape: Sequence[int]) -> Array:
    return jax.random.uniform(rng, _shape(shape), jnp.float32, -scale, scale)

  return init


def sampled_vocab(embeddings: Embeddings, population_size: int = 5000) -> Initializer:
  """Rows sampled from the first `population_size` rows of the embedding table.

  Without replacement; with replacement only when the prompt is longer than the
  population. A population larger than the table is the whole table.
  """
  if population_size <= 0:
    raise ValueError(f"population_size must be positive, got {population_size}")

  def init(rng: Array, shape: Sequence[int]) -> Array:
    length, embed_dim = _shape(shape)
    table = _embedding_table(embeddings, embed_dim)
    population = min(population_size, table.shape[0])
    rows = jax.random.choice(rng, population, (length,), replace=length > population)
    return jnp.asarray(table)[rows]

  return init


def _token_rows(vocabulary: Vocabulary, text: str, what: str) -> list[int]:
  ids = [int(i) for i in vocabulary.encode(text)]
  if not ids:
    raise ValueError(f"{what} {text!r} tokenizes to no tokens; give text the vocabulary can encode")
  return ids


def _fill(
  rng: Array, rows: list[np.ndarray], shape: tuple[int, int], fallback: Initializer
) -> Array:
  length, _ = shape
  # jnp throughout: the trainer initializes under jit, where `rng` is traced.
  rest = jnp.asarray(fallback(rng, shape), jnp.float32)
  head = np.stack(rows).astype(np.float32) if rows else np.zeros((0, shape[1]), np.float32)
  return jnp.concatenate([jnp.asarray(head), rest[len(rows) : length]], axis=0)


def class_labels(
  embeddings: Embeddings,
  vocabulary: Vocabulary,
  labels: Sequence[str],
  fallback: Initializer | None = None,
) -> Initializer:
  """Row i is the mean of label i's sub-token embeddings (paper §3.2).

  Rows beyond the labels come from `fallback` (random uniform by default). Labels
  that do not fit in the prompt are dropped with a warning naming them. No labels
  (a task without classes) is allowed only with an explicit `fallback`, which
  then gives every row (the paper falls back to sampled vocabulary).
  """
  labels = list(labels)
  if not labels and fallback is None:
    raise ValueError("class-label initialization needs at least one label; set CLASS_LABELS")
  fallback = fallback or random_uniform()

  def init(rng: Array, shape: Sequence[int]) -> Array:
    length, embed_dim = _shape(shape)
    table = _embedding_table(embeddings, embed_dim)
    token_ids = [_token_rows(vocabulary, label, "class label") for label in labels]
    if len(labels) > length:
      logging.warning(
        "prompt length %d < %d class labels; dropped labels %s",
        length,
        len(labels),
        labels[length:],
      )
    rows = [table[ids].mean(axis=0) for ids in token_ids[:length]]
    return _fill(rng, rows, (length, embed_dim), fallback)

  return init


def from_string(
  embeddings: Embeddings, vocabulary: Vocabulary, text: str, fallback: Initializer | None = None
) -> Initializer:
  """One row per token of `text`; rows beyond it come from `fallback`."""
  fallback = fallback or random_uniform()

  def init(rng: Array, shape: Sequence[int]) -> Array:
    length, embed_dim = _shape(shape)
    table = _embedding_table(embeddings, embed_dim)
    ids = _token_rows(vocabulary, text, "prompt string")
    if len(ids) > length:
      logging.warning(
        "prompt length %d < %d tokens of %r; dropped the last %d tokens",
        length,
        len(ids),
        text,
        len(ids) - length,
      )
    return _fill(rng, [table[i] for i in ids[:length]], (length, embed_dim), fallback)

  return init


def from_array(value: Any) -> Initializer:
  """A fixed prompt: an array, or a zero-argument callable returning one.

  A callable's `source` attribute, if any, names it in errors (the gin files
  pass `checkpoints.prompt_files.prompt_file(PROMPT_FILE)`).
  """

  def init(rng: Array, shape: Sequence[int]) -> Array:
    del rng
    length, embed_dim = _shape(shape)
    prompt = _load_array(value, "prompt")
    if prompt.shape != (length, embed_dim):
      source = getattr(value, "source", "prompt array")
      raise ValueError(
        f"{source} has shape {prompt.shape}; the config says "
        f"PROMPT_LENGTH={length}, EMBED_DIM={embed_dim}"
      )
    return jnp.asarray(prompt)

  return init


def fixed_array(value: Any) -> Initializer:
  """A fixed value of the variable's whole shape (a prefix `[layers, 2, P, heads,
  head_dim]`, a per-layer prompt `[layers, P, E]`): an array, or a zero-argument callable
  returning one (configs/prompts/*_from_file.gin)."""

  def init(rng: Array, shape: Sequence[int]) -> Array:
    del rng
    array = _load_array(value, "array")
    if tuple(array.shape) != tuple(shape):
      source = getattr(value, "source", "the array")
      raise ValueError(f"{source} has shape {list(array.shape)}; this model's is {list(shape)}")
    return jnp.asarray(array)

  return init
