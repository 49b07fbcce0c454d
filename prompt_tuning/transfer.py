"""Ranks source prompts for a target task by the similarity of their trained prompts (SPoT).

Vu et al. (2022), "SPoT: Better Frozen Model Adaptation through Soft Prompt Transfer",
use a task's trained prompt as its task embedding and measure two similarities between a
target's prompt and each source's:

* average-token cosine: the cosine of the two prompts' mean vectors;
* per-token cosine: the mean of the cosines of every (target vector, source vector) pair.

    python -m prompt_tuning.transfer --target=TARGET --sources=SOURCE [--sources=...]

TARGET is a prompt (any PROMPT_FILE: a `.npy`, a numpy checkpoint, a PEFT prompt-tuning
adapter) or a run's MODEL_DIR. Each SOURCE is the same, or a directory of runs (a sweep
directory, a `results/` archive): each run in it whose prompt has the target's width is a
candidate. A run's prompt is its best evaluation's (`MODEL_DIR/best`) when it kept one,
else its latest. The sources are printed best first, by `--measure`, with both measures
(`--output_json` writes them too).

SPoT's transfer itself is an initialization: train the target with
`configs/prompts/from_file.gin` and `PROMPT_FILE` set to the chosen source's prompt
(docs/methods.md).
"""

import argparse
import collections
import json
import os
import sys
from typing import Optional, Sequence

import numpy as np

from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import peft
from prompt_tuning.checkpoints import prompt_files

MEASURES = ("average_token", "per_token")


def _unit(x: np.ndarray) -> np.ndarray:
  norm = np.linalg.norm(x, axis=-1, keepdims=True)
  return x / np.maximum(norm, np.finfo(np.float64).tiny)


def average_token_cosine(a: np.ndarray, b: np.ndarray) -> float:
  """Cosine of the mean vectors of prompts `a: [P, E]` and `b: [Q, E]`."""
  return float(np.dot(_unit(np.mean(a, 0, np.float64)), _unit(np.mean(b, 0, np.float64))))


def per_token_cosine(a: np.ndarray, b: np.ndarray) -> float:
  """Mean cosine over every pair of a vector of `a: [P, E]` and one of `b: [Q, E]`."""
  return float(np.mean(_unit(np.asarray(a, np.float64)) @ _unit(np.asarray(b, np.float64)).T))


def similarities(target: np.ndarray, source: np.ndarray) -> dict[str, float]:
  return {
    "average_token": average_token_cosine(target, source),
    "per_token": per_token_cosine(target, source),
  }


def run_prompt(path: str) -> str:
  """The prompt a run directory stands for: its best (`best/`) if it kept one, else what
  PROMPT_FILE reads from it (its latest); any other path as it is."""
  best = os.path.join(path, "best")
  if os.path.isdir(best) and layout.PROMPT_FILE_NAME in os.listdir(best):
    return best
  return path


def _is_prompt(path: str) -> bool:
  if peft.is_adapter(path) or os.path.isfile(path):
    return True
  try:
    prompt_files.resolve_prompt_file(run_prompt(path))
  except FileNotFoundError:
    return False
  return True


def find_sources(path: str) -> dict[str, str]:
  """Name -> prompt path: `path` itself when it is a prompt or a run, else each run (or
  prompt) directly inside it."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist")
  if _is_prompt(path):
    return {os.path.basename(os.path.normpath(path)): run_prompt(path)}
  found = {}
  for name in sorted(os.listdir(path)):
    inside = os.path.join(path, name)
    if os.path.isdir(inside) and _is_prompt(inside):
      found[name] = run_prompt(inside)
  if not found:
    raise FileNotFoundError(f"no prompt or run with a prompt in {path}")
  return found


def rank(
  target: np.ndarray, sources: dict[str, np.ndarray], measure: str = "average_token"
) -> list[dict]:
  """Each source's similarities to the target, best first by `measure` (then by name)."""
  if measure not in MEASURES:
    raise ValueError(f"unknown measure {measure!r}; choose one of {MEASURES}")
  rows = [{"source": name, **similarities(target, p)} for name, p in sources.items()]
  return sorted(rows, key=lambda r: (-r[measure], r["source"]))


def _load(path: str) -> np.ndarray:
  return prompt_files.load_prompt_file(run_prompt(path))


def _file_of(path: str) -> str:
  """The file a prompt or run stands for, to tell the target among the sources."""
  path = run_prompt(path)
  return path if peft.is_adapter(path) else os.path.realpath(prompt_files.resolve_prompt_file(path))


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
    prog="python -m prompt_tuning.transfer",
    description=__doc__.split("\n")[0],
    formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog=__doc__.split("\n", 2)[2],
  )
  parser.add_argument("--target", required=True, help="the target's prompt or run")
  parser.add_argument(
    "--sources",
    action="append",
    required=True,
    help="a source prompt or run, or a directory of runs (repeated)",
  )
  parser.add_argument(
    "--measure",
    choices=MEASURES,
    default="average_token",
    help="the order: average_token (default: cosine of the mean vectors) or per_token (mean "
    "cosine over every pair of vectors)",
  )
  parser.add_argument(
    "--output_json", help="also write the ranking here, each source with its prompt's path"
  )
  args = parser.parse_args(argv)
  try:
    target = _load(args.target)
    paths = {}
    for root in args.sources:
      for name, path in find_sources(root).items():
        if name in paths and paths[name] != path:  # the same run name in two directories
          name = os.path.join(os.path.basename(os.path.normpath(root)), name)
        paths[name] = path
    target_file = _file_of(args.target)
    sources, left_out = {}, collections.Counter()
    for name, path in paths.items():
      if _file_of(path) == target_file:
        continue  # the target itself
      try:
        prompt = _load(path)
      except ValueError:  # a per-layer prompt or a prefix: another method's
        left_out["of another method (not a prompt [P, E])"] += 1
        continue
      if prompt.shape[1] == target.shape[1]:
        sources[name] = prompt
      else:
        left_out[f"of another width than the target's {target.shape[1]} (another model's)"] += 1
    if not sources:
      why = "; ".join(f"left out {n} {w}" for w, n in sorted(left_out.items()))
      raise ValueError(f"no source prompt to rank{': ' + why if why else ''}")
    ranking = rank(target, sources, args.measure)
    for row in ranking:
      row["path"] = paths[row["source"]]
  except (OSError, ValueError) as e:
    print(f"transfer: {e}", file=sys.stderr)
    return 2
  for why, count in sorted(left_out.items()):
    print(f"transfer: left out {count} prompts {why}", file=sys.stderr)
  width = max(len(r["source"]) for r in ranking)
  print(f"{'source':<{width}}  average_token  per_token")
  for r in ranking:
    print(f"{r['source']:<{width}}  {r['average_token']:13.4f}  {r['per_token']:9.4f}")
  if args.output_json:
    with open(args.output_json, "w") as f:
      json.dump({"target": args.target, "measure": args.measure, "ranking": ranking}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
