r"""Serve one frozen T5 and a table of named prompts over OpenAI's completions API.

    python -m prompt_tuning.serve \
      --gin_file=configs/models/t5_1_1_base_prompt.gin \
      --gin_file=configs/runs/prompt_serve.gin \
      --gin.INITIAL_CHECKPOINT_PATH="'/ckpts/t5_1_1_base'" \
      --gin.PROMPT_FILES="{'sst2': '/runs/sst2', 'rte': '/runs/rte/prompt.npy'}" \
      --gin.TASK_FEATURE_LENGTHS="{'inputs': 128, 'targets': 8}" \
      --port=8000

Every prompt is a model of the API (`GET /v1/models`); requests for different
prompts that arrive together are decoded in one batch. The model is read and
every batch size compiled once, before the server reports ready (until then
/health answers 503); no request and no change to the prompt table
(`PUT`/`DELETE /v1/prompts/NAME`) compiles anything after that. With
`--ray_replicas=N`, N Ray Serve replicas serve the same app and share one prompt
table (`serving.ray_serve`). docs/serving.md has the endpoints and curl and
openai-client examples.

REQUIRED macros (configs/runs/prompt_serve.gin): INITIAL_CHECKPOINT_PATH,
TASK_FEATURE_LENGTHS; the prompts from PROMPT_FILES (a dict) or, with
configs/prompts/from_file.gin, PROMPT_FILE (served as 'default').
"""

import os
import sys
from typing import Any, Optional, Sequence

from prompt_tuning import host

if __name__ == "__main__":
  host.set_up_process()

from absl import flags  # pylint: disable=g-import-not-at-top

from prompt_tuning import cli  # pylint: disable=g-import-not-at-top
from prompt_tuning import gin_config

REQUIRED_MACROS = ("INITIAL_CHECKPOINT_PATH", "TASK_FEATURE_LENGTHS")
API_KEY_VARIABLE = "PROMPT_TUNING_API_KEY"

FLAGS = flags.FLAGS
flags.DEFINE_string("host", "127.0.0.1", "The address to listen on (0.0.0.0: every interface).")
flags.DEFINE_integer("port", 8000, "The port to listen on.")
flags.DEFINE_integer("max_prompts", 64, "The prompt table's capacity (fixed at start).")
flags.DEFINE_integer(
  "max_prompt_length", 100, "The longest prompt the table holds (fixed at start)."
)
flags.DEFINE_list(
  "batch_sizes", ["1", "8", "32"], "The batch sizes compiled; a batch pads to the next one."
)
flags.DEFINE_list(
  "encoded_lengths",
  [],
  "Encoder lengths compiled: a batch encodes the shortest that holds its longest prompt "
  "plus input (default: a quarter and half of max_prompt_length + TASK_FEATURE_LENGTHS"
  "['inputs'], and all of it).",
)
flags.DEFINE_integer(
  "max_queue", 256, "Rows that may wait for decoding; more get 429 with Retry-After."
)
flags.DEFINE_integer(
  "ray_replicas",
  0,
  "Serve from this many Ray Serve replicas sharing one prompt table (0: this process serves).",
)
flags.DEFINE_string(
  "ray_address",
  None,
  "With --ray_replicas: the Ray cluster to join ('auto', or host:port); default: start a "
  "local Ray instance.",
)
flags.DEFINE_float("ray_cpus_per_replica", 1.0, "With --ray_replicas: CPUs each replica holds.")
flags.DEFINE_float("ray_gpus_per_replica", 0.0, "With --ray_replicas: GPUs each replica holds.")
flags.DEFINE_string(
  "api_key",
  None,
  f"Require 'Authorization: Bearer KEY' on every endpoint (or set ${API_KEY_VARIABLE}).",
)


def _positive_ints(name: str, values: list[str], example: str) -> list[int]:
  try:
    numbers = [int(v) for v in values]
  except ValueError:
    numbers = [0]
  if (name == "batch_sizes" and not numbers) or any(n < 1 for n in numbers):
    raise ValueError(f"--{name}={','.join(values)}: give positive integers, e.g. {example}")
  return numbers


def _check_port(host: str, port: int) -> None:
  """A port in use stops the command on one line, before anything loads."""
  import socket  # pylint: disable=g-import-not-at-top

  with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
      s.bind((host, port))
    except OSError as e:
      raise OSError(
        f"cannot listen on {host}:{port} ({e.strerror}); stop what uses it or pass another --port"
      ) from None


def _serve_on_ray(sizes: Any, api_key: Optional[str]) -> None:
  try:
    from prompt_tuning.serving import ray_serve  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"--ray_replicas needs Ray Serve ({e}); pip install -e '.[serve]'") from None
  _check_port(FLAGS.host, FLAGS.port)
  print(
    f"serve: starting {FLAGS.ray_replicas} Ray Serve replica"
    f"{'s' * (FLAGS.ray_replicas != 1)}; each loads the model and compiles before "
    f"http://{FLAGS.host}:{FLAGS.port} answers",
    flush=True,
  )
  ray_serve.run(
    ray_serve.Setup(
      cwd=os.getcwd(),
      gin_files=list(FLAGS.gin_file or ()),
      gin_bindings=list(FLAGS.gin_bindings or ()),
      gin_search_paths=cli.search_paths(FLAGS.gin_search_paths),
      tfds_data_dir=FLAGS.tfds_data_dir,
      sizes=sizes,
      max_queue=FLAGS.max_queue,
      api_key=api_key,
    ),
    replicas=FLAGS.ray_replicas,
    address=FLAGS.ray_address,
    cpus_per_replica=FLAGS.ray_cpus_per_replica,
    gpus_per_replica=FLAGS.ray_gpus_per_replica,
    host=FLAGS.host,
    port=FLAGS.port,
  )


def main(argv: Sequence[str]) -> None:
  cli.parse_flags_and_gin(argv, REQUIRED_MACROS, read_directly=("SERVED",))
  gin_config.check_prompt_sources()
  config = gin_config.macro_value("SERVED", "include configs/runs/prompt_serve.gin")
  batch_sizes = _positive_ints("batch_sizes", FLAGS.batch_sizes, "1,8,32")
  encoded_lengths = _positive_ints("encoded_lengths", FLAGS.encoded_lengths, "32,64") or None
  for name in ("max_queue", "max_prompts", "max_prompt_length"):  # before the model loads
    if getattr(FLAGS, name) < 1:
      raise ValueError(f"--{name}={getattr(FLAGS, name)}: give a positive integer")
  if FLAGS.ray_replicas < 0:
    raise ValueError(f"--ray_replicas={FLAGS.ray_replicas}: give 0 (no Ray) or more")
  from prompt_tuning.checkpoints import prompt_files  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import predictor  # pylint: disable=g-import-not-at-top

  for path in predictor.prompt_bank(config.prompt_files).values():  # before the model loads
    if isinstance(path, str):
      prompt_files.resolve_prompt_file(path)
  api_key = FLAGS.api_key or os.environ.get(API_KEY_VARIABLE)
  from prompt_tuning.inference import engine as engine_lib  # pylint: disable=g-import-not-at-top

  sizes = engine_lib.Sizes(FLAGS.max_prompts, FLAGS.max_prompt_length, batch_sizes, encoded_lengths)
  if FLAGS.ray_replicas:
    _serve_on_ray(sizes, api_key)
    return
  # The HTTP layer is imported only to serve: --help and config errors stay fast.
  import uvicorn  # pylint: disable=g-import-not-at-top

  from prompt_tuning.serving import app as app_lib  # pylint: disable=g-import-not-at-top

  state = app_lib.ServerState(api_key=api_key, max_queue=FLAGS.max_queue)
  address = f"http://{FLAGS.host}:{FLAGS.port}"

  def load() -> None:
    try:
      engine = engine_lib.build_compiled(config, sizes)
      state.serve(engine, config.vocabulary)
    except Exception as e:  # pylint: disable=broad-except  (a bad file or macro: one line)
      if os.environ.get("PROMPT_TUNING_TRACEBACKS"):
        raise
      # Nothing is in flight before ready: the process ends here, with the line
      # every entry point prints for a user's error.
      print(f"error: {cli.describe_failure(e)}", file=sys.stderr, flush=True)
      os._exit(1)  # pylint: disable=protected-access
    names = engine.prompt_names()
    print(
      f"serve: ready at {address} ({len(names)} prompt{'s' * (len(names) != 1)}: "
      f"{', '.join(names[:5])}"
      f"{' ...' if len(names) > 5 else ''}; batch sizes {engine.batch_sizes}, encoder "
      f"lengths {engine.encoded_lengths})",
      flush=True,
    )

  _check_port(FLAGS.host, FLAGS.port)
  print(f"serve: loading the model; {address}/health answers 503 until ready", flush=True)
  # On SIGTERM or Ctrl-C uvicorn stops listening, lets the requests it has received
  # finish (the batcher decodes what is queued), then exits (after SIGTERM by that
  # signal, status 143).
  uvicorn.run(
    app_lib.create_app(state, on_startup=load),
    host=FLAGS.host,
    port=FLAGS.port,
    log_level="warning",
    timeout_graceful_shutdown=30,
  )


if __name__ == "__main__":
  cli.run(main)
