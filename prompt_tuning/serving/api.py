"""OpenAI's completions API over the engine: what a request may ask, and what it gets back.

Requests are checked field by field, so that a client hears which field is
wrong and why (an `ApiError` becomes OpenAI's error shape,
`{"error": {"message", "type", "param", "code"}}`), and nothing the engine
cannot do is silently ignored: `n > 1`, `echo`, `best_of`, `suffix`,
penalties and `logit_bias` are refused by name.

Defaults are OpenAI's (`temperature` 1, `top_p` 1), except `max_tokens`,
which defaults to the server's TASK_FEATURE_LENGTHS['targets'] as
`prompt_tuning.infer` decodes: send `temperature: 0` to get what infer gives.
"""

import dataclasses
import json
import math
import secrets
import time
from typing import Any, Optional, Sequence

from prompt_tuning.inference import engine as engine_lib

MAX_STOP = 4  # OpenAI's limit on stop sequences
# Fields a completions request may carry that change nothing here (OpenAI's
# `user` is an end-user id for abuse monitoring).
_IGNORED = {"user"}
_REFUSED = {
  "n": (1, "this server returns one choice per prompt; send n=1 (or several prompts)"),
  "best_of": (1, "best_of is not supported; send best_of=1"),
  "echo": (False, "echo is not supported; send echo=false"),
  "suffix": (None, "suffix (insertion) is not supported by an encoder-decoder's prompts"),
  "presence_penalty": (0, "presence_penalty is not supported; send 0"),
  "frequency_penalty": (0, "frequency_penalty is not supported; send 0"),
  "logit_bias": (None, "logit_bias is not supported; leave it out"),
}
_KNOWN = (
  {
    "model",
    "prompt",
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "stream",
    "stream_options",
    "logprobs",
  }
  | _IGNORED
  | set(_REFUSED)
)


class ApiError(Exception):
  """An OpenAI-shaped error: HTTP status, message, type, the field it concerns, a code."""

  def __init__(
    self,
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: Optional[str] = None,
    code: Optional[str] = None,
    headers: Optional[dict[str, str]] = None,
  ):
    super().__init__(message)
    self.status, self.message, self.type, self.param, self.code = (
      status,
      message,
      type_,
      param,
      code,
    )
    self.headers = headers or {}

  def body(self) -> dict[str, Any]:
    return {
      "error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
    }


def bad_field(param: str, message: str, code: str = "invalid_value") -> ApiError:
  return ApiError(400, message, param=param, code=code)


@dataclasses.dataclass(frozen=True)
class Completion:
  """A checked completions request.

  Attributes:
    model: the prompt's name.
    prompts: the input texts (one choice each).
    max_tokens, temperature, top_p, seed: as OpenAI defines them.
    logprobs: None (no log-probabilities) or 0 to 5 alternatives per token.
    stop: stop sequences (the text ends before the first one).
    stream: answer as server-sent events.
    include_usage: with `stream`, a last chunk carries `usage`.
  """

  model: str
  prompts: tuple[str, ...]
  max_tokens: int
  temperature: float
  top_p: float
  seed: Optional[int]
  logprobs: Optional[int]
  stop: tuple[str, ...]
  stream: bool
  include_usage: bool


def _number(body, name, default, low, high, *, integer=False, low_open=False):
  value = body.get(name)
  if value is None:
    return default
  kind = "an integer" if integer else "a number"
  if (
    isinstance(value, bool)
    or not isinstance(value, (int, float))
    or (integer and not isinstance(value, int))
  ):
    raise bad_field(name, f"{name} must be {kind}, got {json.dumps(value)}", "invalid_type")
  try:
    finite = math.isfinite(value)
  except OverflowError:  # an integer beyond float's range
    finite = False
  if not finite or value < low or value > high or (low_open and value == low):
    lower = f"above {low}" if low_open else f"at least {low}"
    raise bad_field(name, f"{name} is {value}; it must be {lower} and at most {high}")
  return value


def parse_completion(body: Any, *, max_tokens_limit: int) -> Completion:
  """Checks a decoded JSON body; raises `ApiError` (400) naming the first bad field."""
  if not isinstance(body, dict):
    raise ApiError(400, "the request body must be a JSON object", code="invalid_body")
  unknown = sorted(set(body) - _KNOWN)
  if unknown:
    raise bad_field(unknown[0], f"unrecognized request argument: {unknown[0]}", "unknown_parameter")
  for name, (allowed, why) in _REFUSED.items():
    value = body.get(name)
    same_kind = isinstance(value, bool) == isinstance(allowed, bool)  # True is not n=1
    if value is not None and (value != allowed or not same_kind):
      if not (name == "logit_bias" and value == {}):
        raise bad_field(name, f"{name}={json.dumps(value)}: {why}", "unsupported_parameter")
  model = body.get("model")
  if not isinstance(model, str) or not model:
    raise bad_field(
      "model",
      "model is required: the name of a prompt (GET /v1/models lists them)",
      "missing_required_parameter" if model is None else "invalid_type",
    )
  prompt = body.get("prompt")
  if isinstance(prompt, str):
    prompts = (prompt,)
  elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
    prompts = tuple(prompt)
  elif prompt is None:
    raise bad_field(
      "prompt", "prompt is required: a string or a list of strings", "missing_required_parameter"
    )
  else:
    raise bad_field(
      "prompt", "prompt must be a string or a non-empty list of strings", "invalid_type"
    )
  max_tokens = _number(body, "max_tokens", max_tokens_limit, 1, max_tokens_limit, integer=True)
  temperature = float(_number(body, "temperature", 1.0, 0.0, 2.0))
  top_p = float(_number(body, "top_p", 1.0, 0.0, 1.0, low_open=True))
  seed = body.get("seed")
  if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
    raise bad_field("seed", f"seed must be an integer, got {json.dumps(seed)}", "invalid_type")
  logprobs = _number(body, "logprobs", None, 0, engine_lib.TOP_LOGPROBS, integer=True)
  stop = body.get("stop")
  if stop is None:
    stops = ()
  elif isinstance(stop, str):
    stops = (stop,)
  elif isinstance(stop, list) and len(stop) <= MAX_STOP and all(isinstance(s, str) for s in stop):
    stops = tuple(stop)
  else:
    raise bad_field(
      "stop", f"stop must be a string or a list of at most {MAX_STOP} strings", "invalid_type"
    )
  if any(not s for s in stops):
    raise bad_field("stop", "stop sequences must not be empty")
  stream = body.get("stream", False)
  if stream is None:
    stream = False
  if not isinstance(stream, bool):
    raise bad_field("stream", "stream must be true or false", "invalid_type")
  options = body.get("stream_options")
  if options is not None and (not isinstance(options, dict) or set(options) - {"include_usage"}):
    raise bad_field("stream_options", "stream_options may only hold include_usage", "invalid_type")
  if options is not None and not stream:
    raise bad_field("stream_options", "stream_options is only allowed with stream=true")
  include_usage = (options or {}).get("include_usage", False)
  if not isinstance(include_usage, bool):
    raise bad_field(
      "stream_options", "stream_options.include_usage must be true or false", "invalid_type"
    )
  return Completion(
    model,
    prompts,
    int(max_tokens),
    temperature,
    top_p,
    seed,
    logprobs,
    stops,
    stream,
    include_usage,
  )


def new_id() -> str:
  return "cmpl-" + secrets.token_hex(12)


def row_seed(seed: Optional[int], index: int) -> int:
  """A choice's random stream: the request's seed (each prompt its own), or a fresh one."""
  if seed is None:
    return secrets.randbits(32)
  return (seed + 1_000_003 * index) % 2**32


@dataclasses.dataclass
class Choice:
  """One prompt's completion, cut at its first stop sequence.

  Attributes:
    text: the completion.
    finish_reason: "stop" (EOS or a stop sequence) or "length" (max_tokens).
    pieces: the text each kept token added (they join to `text`, except a
      token a stop sequence cut).
    token_logprobs, top_logprobs: per kept token.
    completion_tokens: tokens generated up to the cut.
    text_offset: where the completion starts in prompt + completion (the prompt's length).
  """

  text: str
  finish_reason: str
  pieces: list[str]
  token_logprobs: list[float]
  top_logprobs: list[dict[str, float]]
  completion_tokens: int
  text_offset: int = 0


def choice_of(
  generation: engine_lib.Generation, decode, token_text, stops: Sequence[str], prompt: str = ""
) -> Choice:
  """A `Choice` from a generation, stop sequences applied.

  Args:
    generation: the engine's result.
    decode: `ids -> text`.
    token_text: `id -> text` of one token as it reads inside a text (the
      alternatives of `top_logprobs`).
    stops: the stop sequences.
    prompt: the input text (the log-probabilities' text offsets count from its start,
      as OpenAI's do).
  """
  ids = generation.tokens
  texts = [decode(ids[: k + 1]) for k in range(len(ids))]
  full = texts[-1] if texts else ""
  pieces, previous = [], ""
  for text in texts:  # each token's share of the text (SentencePiece joins pieces)
    pieces.append(text[len(previous) :] if text.startswith(previous) else text)
    previous = text
  cut = min((i for i in (full.find(s) for s in stops) if i >= 0), default=-1)
  finish = "stop" if generation.ended else "length"
  kept = len(ids)
  if cut >= 0:
    full, finish = full[:cut], "stop"
    offset, kept = 0, 0
    for piece in pieces:  # tokens that start before the cut
      if offset >= cut:
        break
      offset += len(piece)
      kept += 1
  top = []
  for k, alternatives in enumerate(generation.top_logprobs[:kept]):
    # The chosen token under the name `tokens` gives it; ids that read the same keep the
    # likelier value (the alternatives come best first).
    names: dict[str, float] = {}
    for token, value in alternatives:
      names.setdefault(pieces[k] if token == ids[k] else token_text(token), value)
    top.append(names)
  return Choice(
    full, finish, pieces[:kept], generation.token_logprobs[:kept], top, kept, len(prompt)
  )


def logprobs_body(choice: Choice) -> dict[str, Any]:
  offsets, offset = [], choice.text_offset
  for piece in choice.pieces:
    offsets.append(offset)
    offset += len(piece)
  return {
    "tokens": choice.pieces,
    "token_logprobs": choice.token_logprobs,
    "top_logprobs": choice.top_logprobs,
    "text_offset": offsets,
  }


def completion_body(
  request: Completion, id_: str, choices: Sequence[Choice], prompt_tokens: int
) -> dict[str, Any]:
  completion_tokens = sum(c.completion_tokens for c in choices)
  return {
    "id": id_,
    "object": "text_completion",
    "created": int(time.time()),
    "model": request.model,
    "choices": [
      {
        "text": c.text,
        "index": i,
        "logprobs": logprobs_body(c) if request.logprobs is not None else None,
        "finish_reason": c.finish_reason,
      }
      for i, c in enumerate(choices)
    ],
    "usage": usage(prompt_tokens, completion_tokens),
  }


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
  return {
    "prompt_tokens": prompt_tokens,
    "completion_tokens": completion_tokens,
    "total_tokens": prompt_tokens + completion_tokens,
  }


def stream_events(
  request: Completion, id_: str, choices: Sequence[Choice], prompt_tokens: int
) -> list[str]:
  """The server-sent events of a streamed completion: a chunk per token, then `[DONE]`."""
  created = int(time.time())

  def chunk(index, text, logprobs, finish):
    return {
      "id": id_,
      "object": "text_completion",
      "created": created,
      "model": request.model,
      "choices": [{"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}],
    }

  events = []
  for index, c in enumerate(choices):
    offset = 0
    for k, piece in enumerate(c.pieces):
      text = c.text[offset : offset + len(piece)] if offset < len(c.text) else ""
      logprobs = None
      if request.logprobs is not None:
        logprobs = {
          "tokens": [piece],
          "token_logprobs": [c.token_logprobs[k]],
          "top_logprobs": [c.top_logprobs[k]],
          "text_offset": [c.text_offset + offset],
        }
      events.append(chunk(index, text, logprobs, None))
      offset += len(piece)
    # Whatever the pieces did not cover (they join to the text unless the
    # tokenizer rewrote earlier text), so that the chunks always join to it.
    events.append(chunk(index, c.text[offset:], None, c.finish_reason))
  if request.include_usage:
    tail = chunk(0, "", None, None)
    tail["choices"] = []
    tail["usage"] = usage(prompt_tokens, sum(c.completion_tokens for c in choices))
    events.append(tail)
  return [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
