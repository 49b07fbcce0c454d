r"""Writes one variable of a checkpoint to a .npy file, by its t5x name.

Works on every format INITIAL_CHECKPOINT_PATH accepts (this project's runs and
Hugging Face T5/mT5 directories); the array keeps its stored dtype (bfloat16,
which .npy cannot hold, is written as float32: exactly the same values) and is
in the t5x layout (kernels `[in, out]`, whatever the format stores).

    python scripts/extract_variable.py --checkpoint_dir=/tmp/tuned \
      --variable=token_embedder/embedding --output=/tmp/embedding.npy

The embedding is what configs/prompts/*_numpy.gin read as EMBEDDING_FILE.
"""

import argparse
import difflib
import sys

import ml_dtypes
import numpy as np

from prompt_tuning.checkpoints import readers


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--checkpoint_dir", required=True)
  parser.add_argument("--variable", required=True, help="t5x name, e.g. token_embedder/embedding")
  parser.add_argument("--output", required=True, help="the .npy file to write")
  args = parser.parse_args(argv)
  reader = readers.open_checkpoint(args.checkpoint_dir)
  shapes = reader.shapes()
  if args.variable not in shapes:
    close = difflib.get_close_matches(args.variable, list(shapes), n=3, cutoff=0.4)
    sys.exit(f"{args.checkpoint_dir} holds no variable {args.variable!r}; close names: {close}")
  value = reader.read_array(args.variable)
  note = ""
  if value.dtype == ml_dtypes.bfloat16:  # .npy has no bfloat16; float32 holds it exactly
    value, note = value.astype(np.float32), " (stored as bfloat16, written as float32: exact)"
  np.save(args.output, value)
  print(f"{args.variable}: {value.shape} {value.dtype} -> {args.output}{note}")


if __name__ == "__main__":
  main()
