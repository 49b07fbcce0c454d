"""What trains: a filter over variable paths, outside the model.

Paths are '/'-joined and start with the collection: `prompt/encoder/prompt/prompt`,
`params/encoder/layers_0/mlp/wi_0/kernel`. A choice is

* 'prompt' (prompt tuning, the default): the `prompt` collection only;
* 'all' (model tuning, the paper's baseline): `params` and `prompt`;
* a list of regular expressions: the paths any of them fully matches (for
  methods that tune chosen weights, e.g. `['params/.*/layer_norm/scale']`).

`partition` splits the variables into flat `{path: array}` dicts of trainable and
frozen leaves, so gradients and optimizer state exist only for the former;
`merge` puts them back into the nested form the model applies.
"""

import math
import re
from typing import Any, Mapping, Sequence, Union

from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import tree

WhatTrains = Union[str, Sequence[str]]
Flat = dict[str, Any]

PROMPT_TUNING = "prompt"
MODEL_TUNING = "all"


def _patterns(what: WhatTrains) -> list[re.Pattern]:
  if what == PROMPT_TUNING:
    return [re.compile(re.escape(layout.PROMPT_PREFIX) + ".*")]
  if what == MODEL_TUNING:
    return [re.compile(r"params/.*"), re.compile(re.escape(layout.PROMPT_PREFIX) + ".*")]
  if isinstance(what, str):
    raise ValueError(
      f"what trains must be {PROMPT_TUNING!r}, {MODEL_TUNING!r} or a list of "
      f"regular expressions over variable paths, got {what!r}"
    )
  return [re.compile(p) for p in what]


flatten = tree.flatten
unflatten = tree.unflatten


def partition(variables: Mapping[str, Any], what: WhatTrains = PROMPT_TUNING) -> tuple[Flat, Flat]:
  """Splits variables into `(trainable, frozen)` flat dicts.

  An empty array (a prompt of length 0) has nothing to train: it stays frozen.

  Raises:
    ValueError: if nothing matches (a run that would train nothing).
  """
  patterns = _patterns(what)
  trainable, frozen = {}, {}
  for path, value in flatten(variables).items():
    trains = any(p.fullmatch(path) for p in patterns) and math.prod(value.shape) > 0
    (trainable if trains else frozen)[path] = value
  if not trainable:
    prompts = [path for path in frozen if "prompt" in path.split("/")[0]]
    if what == PROMPT_TUNING and all(math.prod(frozen[p].shape) == 0 for p in prompts):
      raise ValueError(
        "there is no prompt to train: the model's prompt has length 0 "
        "(PROMPT_LENGTH=0) or there is none (configs/prompts/no_prompt.gin); "
        "give PROMPT_LENGTH >= 1, or WHAT_TRAINS='all' to tune the model"
      )
    raise ValueError(
      f"no variable path matches what trains ({what!r}); paths look like {sorted(frozen)[:3]}"
    )
  return trainable, frozen


def merge(trainable: Flat, frozen: Flat) -> dict[str, Any]:
  """Inverse of `partition`: the nested variables the model applies."""
  return unflatten({**frozen, **trainable})
