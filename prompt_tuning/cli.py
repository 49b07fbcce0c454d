"""What the entry points share: gin flags in t5x's idiom, and parsing them.

`python -m prompt_tuning.{train,eval,infer}` take `--gin_file=...` (repeated,
later files override), `--gin.NAME=VALUE` (any binding, after the files; values
are gin expressions, so strings keep their quotes) and `--gin_search_paths`.
"""

from typing import Sequence

from absl import app
from absl import flags

from prompt_tuning import gin_config

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


def run(main) -> None:
  """`app.run(main)` with `--gin.NAME=VALUE` flags rewritten."""
  import sys  # pylint: disable=g-import-not-at-top
  app.run(main, argv=rewrite_gin_args(sys.argv))
