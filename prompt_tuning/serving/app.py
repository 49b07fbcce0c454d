"""The HTTP server: OpenAI's completions API over one frozen model and a table of prompts.

Endpoints (every one requires `Authorization: Bearer <key>` when an API key is set):

* `GET /v1/models`: the prompts, as OpenAI models; `GET /v1/models/{name}`: one.
* `POST /v1/completions`: OpenAI's completions (`serving.api`), `stream` as
  server-sent events.
* `GET /v1/prompts`; `PUT /v1/prompts/{name}` (a JSON body `{"vectors": [[...]]}`,
  `{"npy": <base64 .npy>}` or `{"peft_adapter": {"adapter_config.json": ...,
  "adapter_model.safetensors": <base64>}}`, or a raw `.npy` body as
  application/octet-stream); `DELETE /v1/prompts/{name}`: the table at run
  time, never compiling.
* `GET /health`, `GET /metrics` (Prometheus).

Until the engine is built and compiled, `/health`, `/v1/models` and the
completions answer 503. Every error is OpenAI's shape with its 4xx or 5xx.
"""

import asyncio
import base64
import binascii
import contextlib
import hmac
import io
import json
import os
import tempfile
import threading
import time
from typing import Any, Callable, Optional

import fastapi
from fastapi import responses
import numpy as np
import prometheus_client
from starlette import exceptions as starlette_exceptions

from prompt_tuning.checkpoints import peft
from prompt_tuning.inference import decoding
from prompt_tuning.inference import engine as engine_lib
from prompt_tuning.serving import api
from prompt_tuning.serving import batcher as batcher_lib

MAX_BODY_BYTES = 64 * 2**20
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
  """The server's Prometheus metrics, in a registry of its own."""

  def __init__(self, state: "ServerState"):
    self.registry = prometheus_client.CollectorRegistry()
    r = self.registry
    self.requests = prometheus_client.Counter(
      "prompt_server_requests", "HTTP requests", ["path", "status"], registry=r
    )
    self.latency = prometheus_client.Histogram(
      "prompt_server_request_seconds",
      "Request latency",
      ["path"],
      buckets=_LATENCY_BUCKETS,
      registry=r,
    )
    self.batch_rows = prometheus_client.Histogram(
      "prompt_server_batch_rows", "Rows decoded per batch", buckets=_BATCH_BUCKETS, registry=r
    )
    self.batch_seconds = prometheus_client.Histogram(
      "prompt_server_batch_seconds",
      "Seconds per decoded batch",
      buckets=_LATENCY_BUCKETS,
      registry=r,
    )
    self.generated = prometheus_client.Counter(
      "prompt_server_generated_tokens", "Tokens generated", registry=r
    )
    prometheus_client.Gauge(
      "prompt_server_queue_rows", "Rows waiting to be decoded", registry=r
    ).set_function(lambda: state.batcher.depth() if state.batcher else 0)
    prometheus_client.Gauge(
      "prompt_server_compilations",
      "XLA compilations in this process (constant once ready)",
      registry=r,
    ).set_function(engine_lib.compilations)
    prometheus_client.Gauge(
      "prompt_server_compilations_since_ready",
      "XLA compilations since the server reported ready (0 unless something recompiled)",
      registry=r,
    ).set_function(
      lambda: engine_lib.compilations() - state.compilations_at_ready if state.ready else 0
    )
    prometheus_client.Gauge(
      "prompt_server_prompts", "Prompts in the table", registry=r
    ).set_function(lambda: len(state.engine.prompt_names()) if state.engine else 0)
    prometheus_client.Gauge("prompt_server_ready", "1 once ready", registry=r).set_function(
      lambda: float(state.ready)
    )

  def on_batch(self, rows: int, seconds: float) -> None:
    self.batch_rows.observe(rows)
    self.batch_seconds.observe(seconds)


class LocalTable:
  """The prompt table of one process: the engine's own.

  The app changes and reads the table through this interface; a server of
  several replicas gives each one that keeps its engine in step with the
  others (`serving.ray_serve.SharedTable`).
  """

  def __init__(self, engine: engine_lib.Engine):
    self.engine = engine

  async def sync(self) -> None:
    """Brings the engine's table up to date (here it always is)."""

  async def put(self, name: str, prompt: np.ndarray) -> bool:
    """Adds or replaces `name` (a ValueError, and nothing changed, when it is unusable);
    True when it replaced one."""
    existed = self.engine.has_prompt(name)
    self.engine.set_prompt(name, prompt)
    return existed

  async def remove(self, name: str) -> None:
    """Removes `name` (KeyError when there is none)."""
    self.engine.remove_prompt(name)


class ServerState:
  """What the app serves from, filled in by `serve` once the engine is compiled.

  Attributes:
    engine, vocabulary, batcher, table: set by `serve`.
    api_key: required as `Authorization: Bearer` when set.
    max_queue: the batcher's bound.
    replica: this process's name among several replicas (sent as the X-Replica
      header), or None.
  """

  def __init__(
    self, *, api_key: Optional[str] = None, max_queue: int = 256, replica: Optional[str] = None
  ):
    self.api_key, self.max_queue, self.replica = api_key or None, max_queue, replica
    self.engine: Optional[engine_lib.Engine] = None
    self.vocabulary: Any = None
    self.batcher: Optional[batcher_lib.Batcher] = None
    self.table: Any = None
    self.ready = False
    self.compilations_at_ready = 0
    self.metrics = Metrics(self)

  def serve(self, engine: engine_lib.Engine, vocabulary: Any, table: Any = None) -> None:
    """Starts serving a compiled engine (`table`: how its prompts change; LocalTable's
    interface, by default a LocalTable)."""
    self.engine, self.vocabulary = engine, vocabulary
    self.table = table if table is not None else LocalTable(engine)
    self.batcher = batcher_lib.Batcher(
      engine, max_queue=self.max_queue, on_batch=self.metrics.on_batch
    ).start()
    self.compilations_at_ready = engine_lib.compilations()
    self.ready = True

  def close(self) -> None:
    if self.batcher is not None:
      self.batcher.close(timeout=30)


def _error(e: api.ApiError) -> responses.JSONResponse:
  return responses.JSONResponse(e.body(), status_code=e.status, headers=e.headers)


def _not_ready() -> api.ApiError:
  return api.ApiError(
    503,
    "not ready: the model is loading",
    type_="server_error",
    code="not_ready",
    headers={"Retry-After": "5"},
  )


def create_app(
  state: ServerState, *, on_startup: Optional[Callable[[], None]] = None
) -> fastapi.FastAPI:
  """The FastAPI app over `state`; `on_startup` runs in a thread (e.g. loads and compiles)."""

  @contextlib.asynccontextmanager
  async def lifespan(app):
    del app
    if on_startup is not None:
      threading.Thread(target=on_startup, name="load", daemon=True).start()
    yield
    state.close()
    print("serve: stopped; every request it had received was answered", flush=True)

  app = fastapi.FastAPI(
    title="prompt_tuning server", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
  )

  app.add_middleware(_Guard, state=state)

  @app.exception_handler(api.ApiError)
  async def api_error(request, e: api.ApiError):
    del request
    return _error(e)

  @app.exception_handler(Exception)
  async def server_error(request, e: Exception):
    del request
    return _error(
      api.ApiError(
        500,
        f"the server failed on this request ({type(e).__name__}); it goes on serving",
        type_="server_error",
        code="internal_error",
      )
    )

  @app.exception_handler(starlette_exceptions.HTTPException)
  async def http_error(request, e):
    if e.status_code == 404:
      return _error(
        api.ApiError(
          404,
          f"unknown path {request.method} {request.url.path}; this server has "
          "/v1/completions, /v1/models, /v1/prompts, /health and /metrics",
          code="unknown_url",
        )
      )
    if e.status_code == 405:
      return _error(
        api.ApiError(
          405, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed"
        )
      )
    return _error(api.ApiError(e.status_code, str(e.detail)))

  async def engine() -> engine_lib.Engine:
    """The engine, its prompt table up to date; a 503 until ready."""
    if not state.ready:
      raise _not_ready()
    await state.table.sync()
    return state.engine

  @app.get("/health")
  async def health():
    eng = await engine()
    return {"status": "ok", "prompts": len(eng.prompt_names())}

  @app.get("/metrics")
  async def metrics():
    return responses.Response(
      prometheus_client.generate_latest(state.metrics.registry),
      media_type=prometheus_client.CONTENT_TYPE_LATEST,
    )

  def model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "prompt_tuning"}

  @app.get("/v1/models")
  async def models():
    return {"object": "list", "data": [model_card(n) for n in (await engine()).prompt_names()]}

  @app.get("/v1/models/{name:path}")
  async def model(name: str):
    eng = await engine()
    if not eng.has_prompt(name):
      raise _unknown_prompt(name, eng)
    return model_card(name)

  @app.post("/v1/completions")
  async def completions(request: fastapi.Request):
    body = await _json_body(request)
    eng = await engine()
    query = api.parse_completion(body, max_tokens_limit=eng.max_length)
    if not eng.has_prompt(query.model):
      raise _unknown_prompt(query.model, eng, param="model")
    if len(query.prompts) > state.batcher.max_queue:
      raise api.bad_field(
        "prompt",
        f"{len(query.prompts)} prompts in one request can never fit the queue of "
        f"{state.batcher.max_queue} rows (--max_queue); send fewer at a time",
      )
    rows, prompt_tokens = [], 0
    for i, text in enumerate(query.prompts):
      tokens = _encode(state.vocabulary, text, eng.input_length, i, len(query.prompts))
      prompt_tokens += len(tokens)
      rows.append(
        engine_lib.Row(
          tokens,
          query.model,
          query.max_tokens,
          query.temperature,
          query.top_p,
          api.row_seed(query.seed, i),
          query.logprobs or 0,
        )
      )
    try:
      futures = state.batcher.submit(rows)
    except batcher_lib.Overloaded as e:
      raise api.ApiError(
        429,
        str(e),
        type_="rate_limit_error",
        code="queue_full",
        headers={"Retry-After": str(e.retry_after)},
      ) from None
    except batcher_lib.Closed as e:
      raise api.ApiError(503, str(e), type_="server_error", code="shutting_down") from None
    try:
      generations = [await asyncio.wrap_future(f) for f in futures]
    except KeyError as e:  # removed from the table while the request waited
      raise _unknown_prompt(str(e.args[0]), eng, param="model") from None
    vocabulary = state.vocabulary
    choices = [
      api.choice_of(g, vocabulary.decode, lambda t: _token_text(vocabulary, t), query.stop, text)
      for g, text in zip(generations, query.prompts)
    ]
    state.metrics.generated.inc(sum(c.completion_tokens for c in choices))
    id_ = api.new_id()
    if query.stream:
      return responses.StreamingResponse(
        iter(api.stream_events(query, id_, choices, prompt_tokens)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
      )
    return responses.JSONResponse(api.completion_body(query, id_, choices, prompt_tokens))

  @app.get("/v1/prompts")
  async def prompts():
    eng = await engine()
    return {
      "object": "list",
      "max_prompts": eng.table.capacity,
      "max_prompt_length": eng.table.max_length,
      "data": [{"id": n, "length": eng.table.length(n)} for n in eng.prompt_names()],
    }

  @app.put("/v1/prompts/{name:path}")
  async def put_prompt(name: str, request: fastapi.Request):
    await engine()
    kind = request.headers.get("content-type", "").split(";")[0].strip()
    raw = await request.body()
    array = await asyncio.to_thread(_uploaded_prompt, kind, raw)
    try:
      existed = await state.table.put(name, array)
    except ValueError as e:
      raise api.ApiError(400, str(e), param="prompt", code="invalid_prompt") from None
    return responses.JSONResponse(
      {"id": name, "length": int(np.shape(array)[0]), "replaced": existed},
      status_code=200 if existed else 201,
    )

  @app.delete("/v1/prompts/{name:path}")
  async def delete_prompt(name: str):
    eng = await engine()
    try:
      await state.table.remove(name)
    except KeyError:
      raise _unknown_prompt(name, eng) from None
    return {"id": name, "deleted": True}

  return app


class _Guard:
  """ASGI middleware: the API key and the body's size checked first, metrics for every answer."""

  def __init__(self, app, state: ServerState):
    self.app, self.state = app, state

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    start = time.perf_counter()
    path = scope["path"]
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    status = [500]

    replica = self.state.replica

    async def sending(message):
      if message["type"] == "http.response.start":
        status[0] = message["status"]
        if replica is not None:  # which of several replicas answered
          message = dict(message, headers=[*message.get("headers", ()), _replica_header(replica)])
      await send(message)

    received = [0]

    async def receiving():  # a body without Content-Length (chunked) is counted as it comes
      message = await receive()
      if message["type"] == "http.request":
        received[0] += len(message.get("body", b""))
        if received[0] > MAX_BODY_BYTES:
          raise _body_too_large()
      return message

    key = self.state.api_key
    length = headers.get("content-length", "")
    try:
      if key is not None and not _authorized(headers.get("authorization", ""), key):
        error = api.ApiError(
          401,
          "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
          code="invalid_api_key",
        )
        await _error(error)(scope, receive, sending)
      elif length.isdigit() and int(length) > MAX_BODY_BYTES:
        await _error(_body_too_large())(scope, receive, sending)
      else:
        await self.app(scope, receiving, sending)
    finally:
      known = path if path in _PATHS else _template(path)
      self.state.metrics.requests.labels(known, str(status[0])).inc()
      self.state.metrics.latency.labels(known).observe(time.perf_counter() - start)


def _replica_header(replica: str) -> tuple[bytes, bytes]:
  return (b"x-replica", replica.encode("latin-1", "replace"))


def _body_too_large() -> api.ApiError:
  return api.ApiError(
    413, f"the request body is over {MAX_BODY_BYTES} bytes", code="body_too_large"
  )


_PATHS = {"/health", "/metrics", "/v1/models", "/v1/completions", "/v1/prompts"}


def _template(path: str) -> str:
  """A metrics label that does not grow with names: /v1/prompts/{name}, or 'other'."""
  for prefix in ("/v1/prompts/", "/v1/models/"):
    if path.startswith(prefix):
      return prefix + "{name}"
  return "other"


def _authorized(header: str, key: str) -> bool:
  scheme, _, token = header.partition(" ")
  return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())


def _unknown_prompt(name: str, eng: engine_lib.Engine, param: Optional[str] = None) -> api.ApiError:
  names = eng.prompt_names()
  shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
  shown_name = name if len(name) <= 100 else name[:100] + "..."
  return api.ApiError(
    404,
    f"no prompt named {shown_name!r}; this server has {shown or 'none'} (GET /v1/models)",
    param=param,
    code="model_not_found",
  )


async def _json_body(request: fastapi.Request) -> Any:
  raw = await request.body()
  return _parse_json(raw)


def _parse_json(raw: bytes) -> Any:
  try:
    return json.loads(raw)
  except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError included
    raise api.ApiError(
      400, f"the request body is not usable JSON ({str(e)[:200]})", code="invalid_json"
    ) from None


def _encode(vocabulary: Any, text: str, length: int, index: int, count: int) -> list[int]:
  ids = [int(i) for i in vocabulary.encode(text)] + [decoding.EOS_ID]
  if len(ids) > length:
    which = f"prompt[{index}]" if count > 1 else "the prompt"
    raise api.bad_field(
      "prompt",
      f"{which} is {len(ids)} tokens (EOS included); this server takes at most {length} "
      "(TASK_FEATURE_LENGTHS['inputs'])",
      "context_length_exceeded",
    )
  return ids


def _token_text(vocabulary: Any, token: int) -> str:
  """One token's text with its leading space (SentencePiece's piece, '▁' read as a space)."""
  tokenizer = getattr(vocabulary, "tokenizer", None)
  if tokenizer is not None and hasattr(tokenizer, "id_to_piece"):
    return tokenizer.id_to_piece(int(token)).replace("\u2581", " ")
  return vocabulary.decode([int(token)])


def _decode_base64(value: Any, field: str) -> bytes:
  if not isinstance(value, str):
    raise api.bad_field(field, f"{field} must be a base64 string", "invalid_type")
  try:
    return base64.b64decode(value, validate=True)
  except (binascii.Error, ValueError):
    raise api.bad_field(field, f"{field} is not valid base64") from None


def _npy(data: bytes, field: str) -> np.ndarray:
  if not data.startswith(b"\x93NUMPY"):
    raise api.bad_field(field, f"{field} is not a .npy file (no .npy header)", "invalid_prompt")
  try:
    array = np.load(io.BytesIO(data), allow_pickle=False)
  except (ValueError, OSError, EOFError, MemoryError) as e:
    raise api.bad_field(
      field, f"{field} is not a usable .npy file ({e})", "invalid_prompt"
    ) from None
  if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
    raise api.bad_field(
      field,
      f"{field} must hold real numbers, not {getattr(array, 'dtype', type(array))}",
      "invalid_prompt",
    )
  return array


def _uploaded_prompt(kind: str, raw: bytes) -> Any:
  """The prompt a PUT carries (its content type and body): vectors, a .npy or a PEFT adapter.

  Runs in a worker thread: parsing megabytes must not hold up the event loop.
  """
  if kind == "application/octet-stream":
    return _npy(raw, "body")
  body = _parse_json(raw)
  given = sorted(set(body) & {"vectors", "npy", "peft_adapter"}) if isinstance(body, dict) else []
  if len(given) != 1 or set(body) - set(given):
    raise api.ApiError(
      400,
      "send one of {\"vectors\": [[...], ...]}, {\"npy\": <base64 .npy>} or {\"peft_adapter\": "
      "{\"adapter_config.json\": ..., \"adapter_model.safetensors\": <base64>}} (or a .npy body "
      "as application/octet-stream)",
      code="invalid_prompt",
    )
  if given == ["vectors"]:
    vectors = body["vectors"]
    numbers = isinstance(vectors, list) and all(
      isinstance(v, list)
      and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
      for v in vectors
    )
    if not numbers:
      raise api.bad_field(
        "vectors", "vectors must be a [P, E] list of lists of numbers", "invalid_type"
      )
    try:
      return np.asarray(vectors, np.float64)
    except (ValueError, OverflowError):  # ragged rows; an integer beyond float64
      raise api.bad_field(
        "vectors", "vectors must be a [P, E] list of numbers, every row as long as the others"
      ) from None
  if given == ["npy"]:
    return _npy(_decode_base64(body["npy"], "npy"), "npy")
  files = body["peft_adapter"]
  if not isinstance(files, dict) or set(files) != {peft.CONFIG_FILE, peft.WEIGHTS_FILE}:
    raise api.bad_field(
      "peft_adapter",
      f"peft_adapter must hold exactly {peft.CONFIG_FILE!r} and {peft.WEIGHTS_FILE!r}",
      "invalid_prompt",
    )
  config = files[peft.CONFIG_FILE]
  if isinstance(config, str):
    try:
      config = json.loads(config)
    except (ValueError, RecursionError) as e:
      raise api.bad_field("peft_adapter", f"{peft.CONFIG_FILE} is not JSON ({e})") from None
  weights = _decode_base64(files[peft.WEIGHTS_FILE], peft.WEIGHTS_FILE)
  with tempfile.TemporaryDirectory() as directory:
    with open(os.path.join(directory, peft.CONFIG_FILE), "w") as f:
      json.dump(config, f)
    with open(os.path.join(directory, peft.WEIGHTS_FILE), "wb") as f:
      f.write(weights)
    try:
      return peft.read_prompt(directory)
    except Exception as e:  # pylint: disable=broad-except  (safetensors raises its own errors)
      message = str(e).replace(directory + os.sep, "").replace(directory, "the adapter")
      raise api.bad_field(
        "peft_adapter", f"not a usable PEFT adapter: {message}", "invalid_prompt"
      ) from None
