"""One frozen model, a table of named prompts, and decodes compiled once for any mix of rows.

What `python -m prompt_tuning.serve` runs. The paper's serving argument (§1,
Figure 2) is that one frozen model serves many tasks at once: every row of a
batch carries its own prompt. Here the prompts live in a `PromptTable`, a
`[max_prompts, max_prompt_length, E]` array on the devices with each prompt's
length beside it; a row names its prompt by slot, shorter prompts are padded
and masked (`t5.Encoder`'s `prompt_mask`), and each row's decoding settings
(`decoding.RowSettings`: max_tokens, temperature, top_p, seed) are inputs of
the compiled decode. So `Engine.compile` compiles every batch size once, and
no request, and no change to the table, compiles anything after it:
`compilations()` counts every compilation the process makes.

    engine = Engine(model, params, input_length=64, max_length=8,
                    prompts={"sst2": sst2_prompt}, max_prompts=16, max_prompt_length=100)
    engine.compile()
    engine.set_prompt("rte", rte_prompt)            # no compilation
    engine.generate([Row(tokens=[37, 1], prompt="sst2", max_tokens=8)])
"""

import concurrent.futures
import dataclasses
import functools
import os
import threading
from typing import Any, Mapping, Optional, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

from prompt_tuning.inference import decoding
from prompt_tuning.models import t5

TOP_LOGPROBS = 5  # the most alternatives a row may ask for (OpenAI's limit for completions)
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_compilations = 0
_compilations_lock = threading.Lock()


def _count_compilation(event: str, duration: float, **kwargs) -> None:
  del duration, kwargs
  global _compilations
  if event == _COMPILE_EVENT:
    with _compilations_lock:
      _compilations += 1


jax.monitoring.register_event_duration_secs_listener(_count_compilation)


def compilations() -> int:
  """XLA compilations this process has made (any function, not only the engine's)."""
  return _compilations


@dataclasses.dataclass(frozen=True)
class Row:
  """One sequence to generate.

  Attributes:
    tokens: the encoded input, EOS included (at most the engine's input_length).
    prompt: the name of its prompt in the table.
    max_tokens: the most tokens to generate (EOS included), 1 to max_length.
    temperature: 0 is greedy.
    top_p: nucleus sampling, in (0, 1].
    seed: the row's random stream (sampling only).
    logprobs: how many most likely alternatives to return per token (0 to 5).
  """

  tokens: Sequence[int]
  prompt: str
  max_tokens: int
  temperature: float = 0.0
  top_p: float = 1.0
  seed: int = 0
  logprobs: int = 0


@dataclasses.dataclass
class Generation:
  """A row's result.

  Attributes:
    tokens: the generated ids, EOS excluded.
    ended: whether the model emitted EOS (else max_tokens cut it).
    token_logprobs: the model's log-probability of each of `tokens`.
    top_logprobs: per token, the row's `logprobs` most likely (id, log-probability).
  """

  tokens: list[int]
  ended: bool
  token_logprobs: list[float]
  top_logprobs: list[list[tuple[int, float]]]


class PromptTable:
  """Named prompts of lengths 1 to `max_length` in `capacity` slots on the devices.

  Writes go through one compiled update (`compile`), so adding, replacing and
  removing a prompt never compiles. Not thread-safe by itself: `Engine` holds
  a lock around it.
  """

  def __init__(self, capacity: int, max_length: int, width: int):
    if capacity < 1 or max_length < 1:
      raise ValueError(
        f"a prompt table needs max_prompts >= 1 and max_prompt_length >= 1, got "
        f"{capacity} and {max_length}"
      )
    self.capacity, self.max_length, self.width = int(capacity), int(max_length), int(width)
    self.vectors = jnp.zeros((self.capacity, self.max_length, self.width), jnp.float32)
    self.lengths = jnp.zeros((self.capacity,), jnp.int32)
    self._slots: dict[str, int] = {}
    self._host_lengths: dict[int, int] = {}
    self._write = None

  def compile(self) -> None:
    """Compiles the one update that every write uses."""

    def write(vectors, lengths, slot, row, length):
      return vectors.at[slot].set(row), lengths.at[slot].set(length)

    self._write = (
      jax.jit(write)
      .lower(
        self.vectors,
        self.lengths,
        np.int32(0),
        np.zeros((self.max_length, self.width), np.float32),
        np.int32(0),
      )
      .compile()
    )

  @property
  def names(self) -> list[str]:
    return sorted(self._slots, key=self._slots.get)

  def __contains__(self, name: str) -> bool:
    return name in self._slots

  def length(self, name: str) -> int:
    return self._host_lengths[self._slots[name]]

  def check(self, name: str, prompt: Any) -> np.ndarray:
    """The prompt as float32 `[P, E]`, or a ValueError saying what is wrong with it."""
    if not isinstance(name, str) or not name or len(name) > 256:
      raise ValueError(
        f"a prompt's name must be a non-empty string of at most 256 characters, got {name!r}"
      )
    try:
      array = np.asarray(prompt, np.float32)
    except (TypeError, ValueError) as e:
      raise ValueError(f"prompt {name!r} is not an array of numbers ({e})") from None
    if array.ndim != 2 or array.shape[1] != self.width:
      raise ValueError(
        f"prompt {name!r} has shape {list(array.shape)}; this model takes [P, {self.width}]"
      )
    if not 1 <= array.shape[0] <= self.max_length:
      raise ValueError(
        f"prompt {name!r} is {array.shape[0]} vectors long; this table holds 1 to "
        f"{self.max_length} (--max_prompt_length)"
      )
    if not np.all(np.isfinite(array)):
      raise ValueError(f"prompt {name!r} has values that are not finite (NaN or infinity)")
    if name not in self._slots and len(self._slots) >= self.capacity:
      raise ValueError(
        f"the prompt table is full ({self.capacity} prompts, --max_prompts); remove one first"
      )
    return array

  def set(self, name: str, prompt: Any) -> None:
    """Adds or replaces `name` (checked first: a bad prompt changes nothing)."""
    array = self.check(name, prompt)
    if self._write is None:
      self.compile()
    slot = self._slots.get(name)
    if slot is None:
      slot = min(set(range(self.capacity)) - set(self._slots.values()))
    row = np.zeros((self.max_length, self.width), np.float32)
    row[: len(array)] = array
    self.vectors, self.lengths = self._write(
      self.vectors, self.lengths, np.int32(slot), row, np.int32(len(array))
    )
    self._slots[name] = slot
    self._host_lengths[slot] = len(array)

  def remove(self, name: str) -> None:
    if name not in self._slots:
      raise KeyError(name)
    del self._slots[name]  # the slot's vectors stay until it is reused; nothing reads them

  def slots(self, names: Sequence[str]) -> np.ndarray:
    return np.asarray([self._slots[n] for n in names], np.int32)


class Engine:
  """Batches of rows with any prompts and settings, decoded by compiled functions.

  Attributes:
    model: the frozen `t5.Transformer`.
    input_length: inputs' compiled length (TASK_FEATURE_LENGTHS['inputs']).
    max_length: the most tokens a row generates (TASK_FEATURE_LENGTHS['targets']).
    batch_sizes: the compiled batch sizes, ascending; a batch is padded to the
      smallest that holds it.
    encoded_lengths: the compiled encoder lengths, ascending: a batch encodes
      the smallest that holds its longest row (prompt and input), its padding
      dropped (`t5.Encoder`'s `encoded_length`), so short rows cost less.
    table: the `PromptTable`.
  """

  def __init__(
    self,
    model: t5.Transformer,
    params: Any,
    *,
    input_length: int,
    max_length: int,
    prompts: Optional[Mapping[str, Any]] = None,
    table: tuple[int, int] = (16, 100),
    batch_sizes: Sequence[int] = (1, 8, 32),
    encoded_lengths: Optional[Sequence[int]] = None,
    eos_id: int = decoding.EOS_ID,
  ):
    """Builds the engine (nothing compiles until `compile`).

    Args:
      model: the frozen model.
      params: its `params` collection, on the devices.
      input_length, max_length: see the class attributes.
      prompts: the table's first prompts, name -> `[P, E]`.
      table: `(max_prompts, max_prompt_length)`.
      batch_sizes: the batch sizes to compile.
      encoded_lengths: the encoder lengths to compile (None: a quarter, half and
        all of max_prompt_length + input_length); the largest is always all.
      eos_id: the end-of-sequence id.
    """
    if not batch_sizes or min(batch_sizes) < 1:
      raise ValueError(f"batch sizes must be positive, got {list(batch_sizes)}")
    self.model, self._params, self._eos_id = model, params, eos_id
    self.input_length, self.max_length = int(input_length), int(max_length)
    self.batch_sizes = sorted({int(b) for b in batch_sizes})
    self.table = PromptTable(table[0], table[1], model.config.emb_dim)
    full = self.table.max_length + self.input_length
    if encoded_lengths is None:
      encoded_lengths = [n for n in (full // 4, full // 2) if n >= 1]
    if any(int(n) < 1 for n in encoded_lengths):
      raise ValueError(f"encoded lengths must be positive, got {list(encoded_lengths)}")
    self.encoded_lengths = sorted({min(int(n), full) for n in encoded_lengths} | {full})
    self._lock = threading.Lock()
    self._decode: dict[int, Any] = {}
    for name, prompt in (prompts or {}).items():
      self.table.set(name, prompt)

  @property
  def max_batch(self) -> int:
    return self.batch_sizes[-1]

  def _rows(self, params, vectors, lengths, tokens, slots, settings, *, encoded_length):
    prompt_mask = jnp.arange(self.table.max_length)[None, :] < lengths[slots][:, None]
    return decoding.decode_by_row(
      self.model,
      {"params": params},
      tokens,
      settings,
      max_length=self.max_length,
      prompts=vectors[slots],
      prompt_mask=prompt_mask,
      eos_id=self._eos_id,
      top_logprobs=TOP_LOGPROBS,
      encoded_length=encoded_length,
    )

  def _inputs(self, rows: Sequence[Row], batch: int):
    tokens = np.zeros((batch, self.input_length), np.int32)
    tokens[:, 0] = self._eos_id  # filler rows: an empty input
    slots = np.zeros((batch,), np.int32)
    max_tokens = np.zeros((batch,), np.int32)
    temperature = np.zeros((batch,), np.float32)
    top_p = np.ones((batch,), np.float32)
    seed = np.zeros((batch,), np.uint32)
    if rows:
      slots[: len(rows)] = self.table.slots([r.prompt for r in rows])
    for i, r in enumerate(rows):
      tokens[i, : len(r.tokens)] = r.tokens
      max_tokens[i], temperature[i], top_p[i] = r.max_tokens, r.temperature, r.top_p
      seed[i] = np.uint32(r.seed % 2**32)
    settings = decoding.RowSettings(max_tokens, temperature, top_p, seed)
    return tokens, slots, settings

  def compile(self) -> None:
    """Compiles the table's update and the decode at every batch size and encoder length."""

    def compile_one(shape):
      batch, length = shape
      tokens, slots, settings = self._inputs([], batch)
      run = functools.partial(self._rows, encoded_length=length)
      args = (self._params, self.table.vectors, self.table.lengths, tokens, slots, settings)
      return shape, jax.jit(run).lower(*args).compile()

    with self._lock:
      if self.table._write is None:
        self.table.compile()
      shapes = [
        (b, n) for b in self.batch_sizes for n in self.encoded_lengths if (b, n) not in self._decode
      ]
      # XLA compiles outside the GIL: the shapes compile side by side.
      with concurrent.futures.ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        self._decode.update(pool.map(compile_one, shapes))

  def check(self, row: Row) -> None:
    """A ValueError naming what is wrong with `row`, before it joins a batch."""
    if row.prompt not in self.table:
      raise KeyError(row.prompt)
    if not 1 <= len(row.tokens) <= self.input_length:
      raise ValueError(
        f"the input is {len(row.tokens)} tokens; this engine takes 1 to {self.input_length}"
      )
    if not 1 <= row.max_tokens <= self.max_length:
      raise ValueError(
        f"max_tokens is {row.max_tokens}; this engine generates 1 to {self.max_length}"
      )
    if not (row.temperature >= 0 and np.isfinite(row.temperature)):
      raise ValueError(f"temperature is {row.temperature}; it must be a finite number >= 0")
    if not 0 < row.top_p <= 1:
      raise ValueError(f"top_p is {row.top_p}; it must be in (0, 1]")
    if not 0 <= row.logprobs <= TOP_LOGPROBS:
      raise ValueError(f"logprobs is {row.logprobs}; it must be 0 to {TOP_LOGPROBS}")

  def generate(self, rows: Sequence[Row]) -> list[Generation]:
    """Decodes up to `max_batch` rows together (each checked first); thread-safe.

    Raises:
      KeyError: a row names a prompt the table does not hold.
      ValueError: a row's input or settings are out of range.
    """
    results = self.generate_each(rows)  # checks every row
    for result in results:
      if isinstance(result, Exception):
        raise result
    return results

  def generate_each(self, rows: Sequence[Row]) -> list[Union[Generation, Exception]]:
    """`generate`, with each row's own result: its `Generation`, or the error that stopped it.

    A row whose prompt left the table while it waited (a concurrent `remove_prompt`)
    gets a KeyError; the other rows decode as if it had not been there.
    """
    if len(rows) > self.max_batch:
      raise ValueError(f"{len(rows)} rows; a batch holds at most {self.max_batch}")
    results: list[Union[Generation, Exception, None]] = [None] * len(rows)
    for i, row in enumerate(rows):
      try:
        self.check(row)
      except (KeyError, ValueError) as e:
        results[i] = e
    with self._lock:  # the table cannot change between this check and the decode
      for i, row in enumerate(rows):
        if results[i] is None and row.prompt not in self.table:
          results[i] = KeyError(row.prompt)
      live = [i for i in range(len(rows)) if results[i] is None]
      if not live:
        return results
      batch = next(b for b in self.batch_sizes if b >= len(live))
      need = max(len(rows[i].tokens) + self.table.length(rows[i].prompt) for i in live)
      length = next(n for n in self.encoded_lengths if n >= need)
      if (batch, length) not in self._decode:
        raise RuntimeError("the engine is not compiled: call compile() first")
      tokens, slots, settings = self._inputs([rows[i] for i in live], batch)
      out = self._decode[batch, length](
        self._params, self.table.vectors, self.table.lengths, tokens, slots, settings
      )
    out = jax.device_get(out)
    for k, i in enumerate(live):
      results[i] = self._generation(out, k, rows[i].logprobs)
    return results

  def _generation(self, out: decoding.RowOutput, k: int, logprobs: int) -> Generation:
    n = int(out.length[k])
    ids = [int(t) for t in out.tokens[k, :n]]
    ended = bool(ids) and ids[-1] == self._eos_id
    kept = n - 1 if ended else n
    top = [
      [
        (int(t), float(v))
        for t, v in zip(out.top_ids[k, j, :logprobs], out.top_logprobs[k, j, :logprobs])
      ]
      for j in range(kept)
    ]
    return Generation(
      ids[:kept], ended, [float(v) for v in out.token_logprobs[k, :kept]], top if logprobs else []
    )

  def set_prompt(self, name: str, prompt: Any) -> None:
    with self._lock:
      self.table.set(name, prompt)

  def remove_prompt(self, name: str) -> None:
    with self._lock:
      self.table.remove(name)

  def prompt_names(self) -> list[str]:
    with self._lock:
      return self.table.names

  def has_prompt(self, name: str) -> bool:
    with self._lock:
      return name in self.table


@dataclasses.dataclass(frozen=True)
class Sizes:
  """What a server fixes at start (`serve`'s flags of the same names): the prompt table's
  capacity and longest prompt, and the batch sizes and encoder lengths it compiles
  (None: `Engine`'s default lengths)."""

  max_prompts: int
  max_prompt_length: int
  batch_sizes: Sequence[int] = (1, 8, 32)
  encoded_lengths: Optional[Sequence[int]] = None


def build_compiled(config: Any, sizes: Sizes) -> "Engine":
  """`build`, then every shape compiled: an engine ready to serve (what `serve` and each Ray
  Serve replica run before they answer)."""
  engine = build(config, **dataclasses.asdict(sizes))
  engine.compile()
  return engine


def build(
  config: Any,
  *,
  max_prompts: int,
  max_prompt_length: int,
  batch_sizes: Sequence[int] = (1, 8, 32),
  encoded_lengths: Optional[Sequence[int]] = None,
) -> Engine:
  """An engine from a `predictor.PredictorConfig`: the frozen model and PROMPT_FILES read once.

  The table starts with PROMPT_FILES (a dict names the prompts; a list names
  them '0', '1', ...), or else the model's own prompt as 'default'. Its batch
  size, decoding method and seed are the requests' to choose, so they are not
  read. Nothing compiles until `Engine.compile`.
  """
  from prompt_tuning import partitioning  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import prompt_files  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import variables as variables_lib  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import predictor  # pylint: disable=g-import-not-at-top

  predictor.refuse_multitask(config.model)  # both refusals before the checkpoint is read
  method = t5.method_shape(config.model)[0]
  if method != "prompt":
    raise ValueError(
      f"this model's method is {t5.with_article(method)}; the server serves prompts before the encoder "
      "input only: use python -m prompt_tuning.infer, or a configs/prompts/from_file.gin model"
    )
  part = partitioning.Partitioner(config.num_partitions)
  variables, _ = variables_lib.init_variables(
    config.model, part, config.initial_checkpoint_path, config.seed
  )
  bank = predictor.prompt_bank(config.prompt_files) or predictor.own_prompt(config.model, variables)
  if not bank:
    raise ValueError(
      "nothing to serve: set PROMPT_FILES (a dict of name: prompt file) or the model's own "
      "prompt (configs/prompts/from_file.gin with PROMPT_FILE)"
    )
  prompts = {
    name: prompt_files.load_prompt_file(p) if isinstance(p, str) else np.asarray(jax.device_get(p))
    for name, p in bank.items()
  }
  longest = max(len(p) for p in prompts.values())
  if longest > max_prompt_length or len(prompts) > max_prompts:
    raise ValueError(
      f"{len(prompts)} prompts of up to {longest} vectors do not fit a table of "
      f"--max_prompts={max_prompts} and --max_prompt_length={max_prompt_length}; raise them"
    )
  lengths = config.task_feature_lengths
  return Engine(
    config.model,
    variables["params"],
    input_length=lengths["inputs"],
    max_length=lengths["targets"],
    prompts=prompts,
    table=(max_prompts, max_prompt_length),
    batch_sizes=batch_sizes,
    encoded_lengths=encoded_lengths,
  )
