"""T5.1.1's (and mT5's) sizes: this folder's gin files are the one table of them.

The model configs include them (`configs/models/t5_1_1_small_prompt.gin` includes
`sizes/small.gin`); Python that needs a size without gin (the benchmarks, the GPU checks,
whose machine has no gin, and the tests) reads the same files with `read`.
"""

import importlib.resources
import re

NAMES = ("small", "base", "large", "xl", "xxl")
MACROS = (
  "NUM_HEADS",
  "NUM_ENCODER_LAYERS",
  "NUM_DECODER_LAYERS",
  "HEAD_DIM",
  "EMBED_DIM",
  "MLP_DIM",
)
_BINDING = re.compile(r"^([A-Z_]+) = (\d+)\s*(?:#.*)?$")


def read(name: str) -> dict[str, int]:
  """The macros `sizes/<name>.gin` binds, e.g. `read('small')['EMBED_DIM'] == 512`."""
  if name not in NAMES:
    raise ValueError(f"unknown T5.1.1 size {name!r}; one of {', '.join(NAMES)}")
  text = importlib.resources.files(__name__).joinpath(f"{name}.gin").read_text()
  bound = {}
  for line in text.splitlines():
    match = _BINDING.match(line.strip())
    if match:
      bound[match.group(1)] = int(match.group(2))
  if set(bound) != set(MACROS):
    raise ValueError(f"sizes/{name}.gin binds {sorted(bound)}, not the macros {list(MACROS)}")
  return bound
