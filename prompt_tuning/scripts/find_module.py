"""Prints the directory of an installed package, as the original codebase's helper does.

    python -m prompt_tuning.scripts.find_module prompt_tuning   # .../site-packages/prompt_tuning

The original's scripts build `--gin_search_paths` from it
("`find_module t5x`/.."). Here only `prompt_tuning`'s is needed (its configs
ship in the package and are found without a search path); t5x and flaxformer
are not installed, so for them it prints one line to stderr and exits 1, and
such a script goes on with a search path that holds nothing.
"""

import importlib.util
import os
import sys

NOT_NEEDED = ("t5x", "flaxformer")


def find(name: str) -> str:
  """The directory of package `name` (of the file of a plain module)."""
  try:
    spec = importlib.util.find_spec(name)
  except (ImportError, ValueError):
    spec = None
  if spec is None or spec.origin in (None, "namespace") and not spec.submodule_search_locations:
    why = " (not needed here: prompt_tuning runs without it)" if name in NOT_NEEDED else ""
    raise ModuleNotFoundError(f"find_module: no module {name!r} is installed{why}")
  if spec.submodule_search_locations:
    return os.path.abspath(list(spec.submodule_search_locations)[0])
  return os.path.dirname(os.path.abspath(spec.origin))


def main(argv: list[str]) -> int:
  if len(argv) != 2 or argv[1].startswith("-"):
    print("usage: python -m prompt_tuning.scripts.find_module MODULE", file=sys.stderr)
    return 0 if argv[1:] in (["-h"], ["--help"]) else 2
  try:
    print(find(argv[1]))
  except ModuleNotFoundError as e:
    print(e, file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv))
