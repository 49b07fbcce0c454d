"""Wayward prompts (Khashabi et al., 2022, "Prompt Waywardness"): a prompt trained with a
pull toward the embedding of a discrete prompt, and read back as its nearest tokens.

The loss gains `gamma * (1/P) * sum_i ||p_i - d_i||^2`, the squared distance of each
prompt vector `p_i` to the embedding `d_i` of the discrete prompt's i-th token, averaged
over the P positions (the original codebase's `extended/train/wayward.py` regularizer).
At each evaluation the prompt is projected onto the vocabulary, each vector to its
nearest token embedding (Euclidean): `wayward/nearest_match` is the share of positions
whose nearest token is the discrete prompt's, and the projection is logged as text.

`configs/prompts/wayward.gin` switches it on (`WAYWARD_PROMPT`, `WAYWARD_GAMMA`).
"""

import dataclasses
from typing import Any, Callable, Union

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
PROMPT_PATH = "prompt/encoder/prompt/prompt"  # the trainable prompt's flat path
EMBEDDING_PATH = "params/token_embedder/embedding"


def token_ids(text: str, vocabulary: Any) -> list[int]:
  """The discrete prompt's token ids (no EOS)."""
  ids = [int(i) for i in vocabulary.encode(text)]
  if not ids:
    raise ValueError(f"WAYWARD_PROMPT {text!r} has no tokens; give a discrete prompt")
  return ids


def token_count(text: str, vocabulary: Any) -> int:
  """How many tokens the discrete prompt has: the prompt's length P (wayward.gin)."""
  return len(token_ids(text, vocabulary))


@dataclasses.dataclass(frozen=True)
class Wayward:
  """The regularizer and its report (see the module docstring).

  Attributes:
    ids: the discrete prompt's token ids, P of them.
    target: their embeddings, `[P, E]`.
    gamma: the weight of the distance in the loss (0: reported only).
    vocabulary: decodes the nearest tokens for the log (None: ids only).
  """

  ids: tuple[int, ...]
  target: np.ndarray
  gamma: float
  vocabulary: Any = None

  def __post_init__(self):
    if isinstance(self.gamma, bool) or not np.isfinite(self.gamma) or self.gamma < 0:
      raise ValueError(f"WAYWARD_GAMMA={self.gamma!r}; it must be a number >= 0")

  def distance(self, prompt: Array) -> Array:
    """`(1/P) sum_i ||p_i - d_i||^2` for a `[P, E]` prompt."""
    if prompt.ndim != 2:
      raise ValueError(
        f"wayward prompts pull a prompt [P, E] toward a discrete prompt; this prompt is "
        f"{list(prompt.shape)} (a per-layer prompt?): use a plain prompt"
      )
    if prompt.shape != self.target.shape:
      raise ValueError(
        f"the prompt is {list(prompt.shape)} and the discrete prompt {list(self.target.shape)}; "
        "PROMPT_LENGTH must be the discrete prompt's token count (wayward.gin sets it)"
      )
    diff = prompt.astype(jnp.float32) - jnp.asarray(self.target, jnp.float32)
    return jnp.sum(jnp.square(diff)) / prompt.shape[0]

  def __call__(self, trainable: dict[str, Array]) -> tuple[Array, dict[str, Array]]:
    """The loss term and its metric, from the trainable variables (flat paths)."""
    if PROMPT_PATH not in trainable:
      raise ValueError(f"wayward prompts need a trained prompt ({PROMPT_PATH}); none trains")
    distance = self.distance(trainable[PROMPT_PATH])
    return self.gamma * distance, {"wayward_distance": distance}

  def nearest(self, prompt: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """Each prompt vector's nearest token id (Euclidean), among the vocabulary's tokens
    (the table's rows beyond them are padding)."""
    size = getattr(self.vocabulary, "vocab_size", None) or len(embeddings)
    prompt = np.asarray(prompt, np.float32)
    table = np.asarray(embeddings[: min(size, len(embeddings))], np.float32)
    squared = np.sum(table**2, 1)[None, :] - 2 * prompt @ table.T  # + |p|^2, the same per row
    return np.argmin(squared, axis=1)

  def report(self, variables: dict[str, Any]) -> tuple[dict[str, float], str]:
    """`wayward/nearest_match` and the nearest tokens as text, from the flat variables."""
    prompt = np.asarray(jax.device_get(variables[PROMPT_PATH]))
    ids = self.nearest(prompt, np.asarray(jax.device_get(variables[EMBEDDING_PATH])))
    match = float(np.mean(ids == np.asarray(self.ids)))
    if self.vocabulary is not None:
      text = " | ".join(self.vocabulary.decode([int(i)]) for i in ids)
    else:
      text = " ".join(str(int(i)) for i in ids)
    return {"wayward/nearest_match": match}, text


def wayward_prompt(
  text: str,
  vocabulary: Any,
  embeddings: Union[np.ndarray, Callable[[], np.ndarray]],
  gamma: float,
) -> Wayward:
  """The `Wayward` for discrete prompt `text`, embedded with the frozen model's table
  (an array or a zero-argument callable, as `readers.embedding_table` gives)."""
  ids = token_ids(text, vocabulary)
  table = np.asarray(embeddings() if callable(embeddings) else embeddings, np.float32)
  if max(ids) >= table.shape[0]:
    raise ValueError(f"token id {max(ids)} is beyond the embedding table's {table.shape[0]} rows")
  return Wayward(tuple(ids), table[ids], float(gamma), vocabulary)
