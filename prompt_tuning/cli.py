"""What the entry points share: gin flags in t5x's idiom, and parsing them.

`python -m prompt_tuning.{train,eval,infer}` take `--gin_file=...` (repeated,
later files override), `--gin.NAME=VALUE` (any binding, after the files; values
are gin expressions, so strings keep their quotes), `--gin_search_paths`
(repeated, or a comma-separated list as t5x takes it), `--tfds_data_dir` and
`--verbose` (the libraries' INFO logs too).
"""

import collections
import errno
import logging
import os
import shutil
import sys
from typing import Optional, Sequence

from absl import app
from absl import flags
from absl import logging as absl_logging

from prompt_tuning import gin_config
from prompt_tuning import host
from prompt_tuning.checkpoints import storage
from prompt_tuning.data import autograph

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("gin_file", [], "Gin files, in order (later ones override).")
flags.DEFINE_multi_string(
  "gin_bindings", [], "Gin bindings (`--gin.NAME=VALUE` is rewritten to this)."
)
flags.DEFINE_multi_string(
  "gin_search_paths",
  [],
  "Extra directories to find gin files in (repeated, or comma-separated as t5x takes them).",
)
flags.DEFINE_string(
  "tfds_data_dir",
  None,
  "Where tensorflow-datasets finds prepared datasets "
  "(as t5x's flag; the TFDS_DATA_DIR environment variable does the same).",
)
flags.DEFINE_bool(
  "verbose",
  False,
  "Also show the libraries' INFO logs (orbax, seqio, "
  "TensorFlow); by default only this project's INFO lines and everyone's "
  "warnings reach the console.",
)

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


# Library warnings that say nothing about a run of this project (still in the full log):
# seqio's wasted-computation notice for feature lengths above the evaluation data's longest
# (they are the run's TASK_FEATURE_LENGTHS, kept for every split alike), and its advice
# against uncached FunctionDatasets for training (the bundled tasks' data order here is
# seeded and resumed by position, the restart reshuffling it warns about cannot happen).
QUIET_WARNINGS = (
  "Given sequence lengths are longer than necessary",
  "Using an uncached FunctionDataset for training is not recommended",
)


# Library errors raised again where the command's one-line error reports them (still in the
# full log): orbax logs its writer threads' exception, with its traceback, then raises it in
# the thread that saves.
RAISED_AGAIN = ("[process=%d][thread=%s][operation_id=%s] _SignalingThread.run() raised",)


class _OwnInfoOnly(logging.Filter):
  """Lets through warnings and errors from anyone (but `QUIET_WARNINGS` and `RAISED_AGAIN`),
  INFO only from this package."""

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno == logging.WARNING and str(record.msg).startswith(QUIET_WARNINGS):
      return False
    if record.levelno >= logging.ERROR and str(record.msg).startswith(RAISED_AGAIN):
      return False
    return record.levelno >= logging.WARNING or record.pathname.startswith(_PACKAGE_DIR)


class _Buffer(logging.Handler):
  """Holds the latest records (at most `capacity`) until the full log has a place."""

  def __init__(self, capacity: int = 100_000):
    super().__init__()
    self.records: collections.deque = collections.deque(maxlen=capacity)

  def emit(self, record: logging.LogRecord) -> None:
    self.records.append(record)


_buffer: Optional[_Buffer] = None
_output_directory: Optional[str] = None  # where the command writes (keep_full_log's)


def quiet_libraries() -> None:
  """Unless --verbose: the libraries' INFO chatter (~15 orbax lines per checkpoint) stays
  off the console, where the step lines are; the full log gets every line.

  The full log goes where the command writes its output (`keep_full_log`: MODEL_DIR,
  EVAL_OUTPUT_DIR, the predictions' folder), or into --log_dir when one is given; until
  then its records are held here. A command with no output directory writes none.
  """
  global _buffer
  if FLAGS.verbose:
    return
  absl_logging.get_absl_handler().addFilter(_OwnInfoOnly())
  if FLAGS.log_dir:  # asked for: there, from the start
    _open_full_log(os.path.join(FLAGS.log_dir, f"prompt_tuning.{_program()}.{os.getpid()}.log"))
    return
  _buffer = _Buffer()
  logging.getLogger().addHandler(_buffer)


def keep_full_log(directory: str) -> Optional[str]:
  """Writes the full log (what was held so far, then every line) to
  `<directory>/<program>.full.log`, the command's own output directory; returns its path.
  Nothing when --log_dir or --verbose decided otherwise, or after the first call."""
  global _buffer, _output_directory
  _output_directory = directory
  if _buffer is None:
    return None
  held, _buffer = _buffer, None
  logging.getLogger().removeHandler(held)
  handler = _open_full_log(os.path.join(directory, f"{_program()}.full.log"))
  if handler is not None:
    for record in held.records:
      handler.handle(record)
  return handler.baseFilename if handler is not None else None


def _program() -> str:
  return os.path.splitext(os.path.basename(sys.argv[0]))[0]


class _FullLog(logging.FileHandler):
  """The full log's file. A write that fails (a full disk) closes it without a word: the
  console has this project's lines, and logging's report of each failed line (a traceback
  per record) would bury the command's one-line error."""

  def handleError(self, record: logging.LogRecord) -> None:
    del record
    logging.getLogger().removeHandler(self)
    try:
      self.close()
    except OSError:
      pass


def _open_full_log(path: str) -> Optional[logging.FileHandler]:
  try:
    handler = _FullLog(path)
  except OSError:
    return None  # no writable place: the console keeps this project's lines
  handler.setFormatter(absl_logging.PythonFormatter())
  logging.getLogger().addHandler(handler)
  absl_logging.info("the full log, the libraries' INFO lines included: %s", path)
  return handler


def rewrite_gin_args(argv: Sequence[str]) -> list[str]:
  """`--gin.NAME=VALUE` -> `--gin_bindings=NAME = VALUE` (t5x's flag idiom)."""
  out = []
  for arg in argv:
    if arg.startswith("--gin."):
      name, sep, value = arg[len("--gin.") :].partition("=")
      if not sep:
        raise app.UsageError(f"{arg}: write --gin.NAME=VALUE")
      out.append(f"--gin_bindings={gin_config.bindings_from_flags({name: value})[0]}")
    else:
      out.append(arg)
  return out


def search_paths(values: Sequence[str]) -> list[str]:
  """--gin_search_paths values, each a directory or a comma-separated list of them."""
  return [path for value in values for path in value.split(",") if path]


def parse_flags_and_gin(
  argv: Sequence[str], required: Sequence[str], read_directly: Sequence[str] = ()
) -> None:
  """Parses the gin files and bindings of the flags; checks the REQUIRED macros are set and
  that every macro set is read (`read_directly`: those the entry point reads itself)."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  configure(
    FLAGS.gin_file, FLAGS.gin_bindings, search_paths(FLAGS.gin_search_paths), FLAGS.tfds_data_dir
  )
  gin_config.check_run_config(required, read_directly)


def configure(
  gin_files: Sequence[str],
  gin_bindings: Sequence[str],
  gin_search_paths: Sequence[str],
  tfds_data_dir: Optional[str],
) -> None:
  """The libraries quieted, TFDS_DATA_DIR's override set and the gin files and bindings
  parsed: what every entry point does before it reads a macro (a Ray Serve replica too, in
  its own process, from the command's flags)."""
  quiet_libraries()
  if tfds_data_dir:
    import seqio  # pylint: disable=g-import-not-at-top

    seqio.set_tfds_data_dir_override(tfds_data_dir)
  gin_config.parse_gin(gin_files, gin_bindings, gin_search_paths)


# What a user's input can cause (a missing file, a wrong shape, an unset macro):
# reported as one line, without a traceback (set PROMPT_TUNING_TRACEBACKS=1 for one).
USER_ERRORS = (
  ValueError,
  FileNotFoundError,
  FileExistsError,
  PermissionError,
  ImportError,
  KeyError,
  storage.StorageError,
)


def run(main) -> None:
  """`app.run(main)` with `--gin.NAME=VALUE` flags rewritten and user errors on one line."""

  def guarded(argv):
    host.import_tensorflow_quietly()  # done already where the entry point set up its process
    try:
      return main(argv)
    except (*USER_ERRORS, OSError) as e:
      if os.environ.get("PROMPT_TUNING_TRACEBACKS"):
        raise
      exit_now(f"error: {describe_failure(e)}", 1)
    except KeyboardInterrupt as e:  # Ctrl-C, or the trainer's TrainingInterrupted
      if os.environ.get("PROMPT_TUNING_TRACEBACKS"):
        raise
      message = storage.describe(e) if str(e).strip() else "interrupted; nothing was saved"
      if hasattr(e, "exit_code"):  # every host agreed to stop at this step, and saved it
        leave_together()
      exit_now(f"error: {message}", getattr(e, "exit_code", 130))

  def leave_together() -> None:
    # In a multi-host job, a host whose coordinator (host 0) has exited aborts
    # (SIGABRT) in JAX's distributed client. shutdown() is a barrier that lets
    # the coordinator leave last. Only after an agreed stop: a host that fails
    # alone would wait there for the others until the shutdown timeout.
    jax = sys.modules.get("jax")
    if jax is not None and jax.process_count() > 1:
      jax.distributed.shutdown()

  def exit_now(line: str, code: int) -> None:
    # os._exit, not sys.exit: interpreter shutdown would let libraries' worker
    # threads (orbax's) print their own tracebacks after the one line.
    sys.stdout.flush()
    print(line, file=sys.stderr, flush=True)
    autograph.remove_generated_files()
    os._exit(code)  # pylint: disable=protected-access

  if host.asks_for_help(sys.argv):  # absl exits 1 after its help; asking is no error
    FLAGS([sys.argv[0]])
    if "--helpfull" in sys.argv:
      app.usage(writeto_stdout=True, exitcode=0)
    doc = (sys.modules["__main__"].__doc__ or "").strip()
    own = "\n".join(
      h for h in (FLAGS.module_help(sys.modules[__name__]), FLAGS.main_module_help()) if h.strip()
    )
    own += (  # absl's, which decides where the full log goes
      "\n\nabsl.logging:\n  --log_dir: the full log goes to DIR/prompt_tuning.<program>.<pid>.log, from the "
      "start\n    (default: the command's output directory, once it exists)"
    )
    print(f"{doc}\n\nflags (--helpfull: every library's too):\n{own}")
    sys.exit(0)
  app.run(guarded, argv=rewrite_gin_args(sys.argv))


_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_LOW_SPACE_BYTES = 1 << 20  # less than this left where the command writes: a full disk


def describe_failure(error: BaseException) -> str:
  """The one line a failed command prints: the error's first line, said to be a full disk
  when it is one (the errno, or the command's output directory left without space: numpy's
  and tensorstore's write errors carry no errno), with what to do."""
  line = storage.describe(error)
  full = getattr(error, "errno", None) in _DISK_FULL_ERRNOS
  local = _output_directory is not None and not storage.is_remote(_output_directory)
  if not full and local and isinstance(error, (OSError, ValueError)):
    existing = os.path.abspath(_output_directory)  # or the folder it was made in: a failed
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:  # run
      existing = os.path.dirname(existing)  # removes the MODEL_DIR it created
    try:
      full = shutil.disk_usage(existing).free < _LOW_SPACE_BYTES
    except OSError:
      pass
  if not full:
    return line
  where = f" on the disk of {_output_directory}" if _output_directory else ""
  return (
    f"no space left{where} ({line}); free some and rerun the same command "
    "(a training run resumes from its last saved step)"
  )
