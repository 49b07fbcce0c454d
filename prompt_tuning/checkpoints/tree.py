"""Nested variable trees <-> flat `{'a/b/c': leaf}` dicts, the one path convention.

Paths are '/'-joined: `params/encoder/layers_0/mlp/wi_0/kernel` for the model's
variables (collection first), `encoder/layers_0/mlp/wi_0/kernel` for a
checkpoint's parameters (t5x's names).
"""

from typing import Any, Callable, Mapping, Optional

from flax import traverse_util

SEP = "/"


def flatten(
  tree: Mapping[str, Any], is_leaf: Optional[Callable[[Any], bool]] = None
) -> dict[str, Any]:
  """Nested dict -> `{'a/b/c': leaf}`; `is_leaf(value)` stops at dicts that are leaves."""
  leaf = None if is_leaf is None else (lambda _, value: is_leaf(value))
  return traverse_util.flatten_dict(dict(tree), sep=SEP, is_leaf=leaf)


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
  """`{'a/b/c': leaf}` -> nested dict."""
  return traverse_util.unflatten_dict(dict(flat), sep=SEP)
