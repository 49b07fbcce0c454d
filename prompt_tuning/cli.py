"""What the entry points share: gin flags in t5x's idiom, and parsing them.

`python -m prompt_tuning.{train,eval,infer}` take `--gin_file=...` (repeated,
later files override), `--gin.NAME=VALUE` (any binding, after the files; values
are gin expressions, so strings keep their quotes) and `--gin_search_paths`.
"""

from typing import Sequence

from absl import app
from absl import flags

from prompt_tuning import gin_config
from prompt_tuning.checkpoints import storage

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("gin_file", [], "Gin files, in order (later ones override).")
flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings (`--gin.NAME=VALUE` is rewritten "
                          "to this).")
flags.DEFINE_multi_string("gin_search_paths", [], "Extra directories to find gin files in.")


def rewrite_gin_args(argv: Sequence[str]) -> list[str]:
  """`--gin.NAME=VALUE` -> `--gin_bindings=NAME = VALUE` (t5x's flag idiom)."""
  out = []
  for arg in argv:
    if arg.startswith("--gin."):
      name, sep, value = arg[len("--gin."):].partition("=")
      if not sep:
        raise app.UsageError(f"{arg}: write --gin.NAME=VALUE")
      out.append(f"--gin_bindings={gin_config.bindings_from_flags({name: value})[0]}")
    else:
      out.append(arg)
  return out


def parse_flags_and_gin(argv: Sequence[str], required: Sequence[str]) -> None:
  """Parses the gin files and bindings of the flags, and checks the REQUIRED macros."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  gin_config.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.gin_search_paths)
  gin_config.check_required_macros(required)


# What a user's input can cause (a missing file, a wrong shape, an unset macro):
# reported as one line, without a traceback (set PROMPT_TUNING_TRACEBACKS=1 for one).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, PermissionError, ImportError,
               KeyError, storage.StorageError)


def run(main) -> None:
  """`app.run(main)` with `--gin.NAME=VALUE` flags rewritten and user errors on one line."""
  import os  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  def guarded(argv):
    try:
      return main(argv)
    except USER_ERRORS as e:
      if os.environ.get("PROMPT_TUNING_TRACEBACKS"):
        raise
      message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
      sys.exit(f"error: {message}")

  app.run(guarded, argv=rewrite_gin_args(sys.argv))
