"""Autoregressive decoding over the decoder's key/value cache: greedy, sampling, beam search.

`decode` encodes the (prompted) inputs once, creates the decoder's cache with
the first step, then runs a `lax.while_loop` of single-token steps until every
sequence has emitted EOS or `max_length` tokens are out. Everything is one
jittable function of the variables and the tokens.

Methods (frozen dataclasses, so gin configures them and jit treats them as
static):

* `Greedy()`: the most likely token at each step.
* `Sampling(temperature, top_k, top_p)`: ancestral sampling from the tempered
  distribution, restricted to the `top_k` most likely tokens and to the
  smallest set whose probability reaches `top_p` (nucleus sampling).
* `BeamSearch(num_beams, alpha)`: beam search with t5x's brevity penalty. A
  finished sequence of `n` tokens (EOS included) scores
  `log p / ((5 + n) / 6) ** alpha`. Each step, every alive beam's EOS extension
  competes for the `num_beams` finished slots and the best `num_beams`
  non-EOS extensions stay alive; the search stops once no alive beam can still
  enter the finished set.

Every method returns the model's log-likelihood of each returned sequence
(untempered, unnormalized) beside its ranking score.
"""

import dataclasses
from typing import Any, NamedTuple, Optional, Union

import jax
from jax import lax
import jax.numpy as jnp

from prompt_tuning.models import t5

Array = jax.Array
EOS_ID = 1
NEG_INF = -1e10  # finite, so that arithmetic on "impossible" scores stays well defined
_VALID = NEG_INF / 2  # scores above this are real
MIN_TEMPERATURE = 1e-6  # decode_by_row: a row below it decodes greedily


@dataclasses.dataclass(frozen=True)
class Greedy:
  """The most likely token at every step."""


@dataclasses.dataclass(frozen=True)
class Sampling:
  """Temperature sampling with optional top-k and nucleus (top-p) truncation.

  Attributes:
    temperature: divides the logits; 0 is greedy.
    top_k: keep only the k most likely tokens (0: all).
    top_p: keep the smallest set of most likely tokens whose probability is at
      least top_p (1.0: all).
  """

  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0

  def __post_init__(self):
    if self.temperature < 0 or self.top_k < 0 or not 0 < self.top_p <= 1:
      raise ValueError(
        f"invalid sampling settings {self}: need temperature >= 0, top_k >= 0 and 0 < top_p <= 1"
      )


@dataclasses.dataclass(frozen=True)
class BeamSearch:
  """t5x's beam search with its brevity penalty `((5 + length) / 6) ** alpha`.

  Attributes:
    num_beams: beams kept per example.
    alpha: brevity penalty exponent (0: raw log-likelihood, which favours
      short outputs).
  """

  num_beams: int = 4
  alpha: float = 0.6

  def __post_init__(self):
    if self.num_beams < 1:
      raise ValueError(f"num_beams must be >= 1, got {self.num_beams}")


Method = Union[Greedy, Sampling, BeamSearch]


class DecodeOutput(NamedTuple):
  """Decoded sequences, best first.

  Attributes:
    tokens: `[batch, n, max_length]` int32; EOS included, zeros after it. `n`
      is num_beams for beam search, else 1.
    scores: `[batch, n]` the method's ranking score (beam search: length
      penalized; otherwise the log-likelihood).
    log_likelihood: `[batch, n]` sum of the model's token log-probabilities.
  """

  tokens: Array
  scores: Array
  log_likelihood: Array


def brevity_penalty(alpha: float, length: Array) -> Array:
  """t5x's (GNMT's) length penalty `((5 + length) / 6) ** alpha`."""
  return ((5.0 + length) / 6.0) ** alpha


def _filter_logits(logits: Array, top_k: int, top_p: float) -> Array:
  """Sets logits outside the top-k / nucleus to NEG_INF (rows of `[n, vocab]`)."""
  if top_k and top_k < logits.shape[-1]:
    kth = lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, NEG_INF, logits)
  if top_p < 1.0:
    logits = _nucleus(logits, top_p)
  return logits


def _nucleus(logits: Array, top_p: Union[float, Array]) -> Array:
  """Keeps the smallest set of most likely tokens whose mass reaches `top_p` (`[n, 1]` by row)."""
  ordered = jnp.sort(logits, axis=-1)[:, ::-1]
  cumulative = jnp.cumsum(jax.nn.softmax(ordered, axis=-1), axis=-1)
  # The smallest prefix whose mass reaches top_p: tokens before the crossing
  # point and the one at it.
  keep = (cumulative - jax.nn.softmax(ordered, axis=-1)) < top_p
  cutoff = jnp.min(jnp.where(keep, ordered, jnp.inf), axis=-1, keepdims=True)
  return jnp.where(logits < cutoff, NEG_INF, logits)


class _Stepper:
  """One decoder step over the cache: `(tokens [n], cache) -> (logits [n, vocab], cache)`."""

  def __init__(
    self,
    model: t5.Transformer,
    variables: dict[str, Any],
    encoded: Array,
    mask: Array,
    max_length: int,
    prompts: Optional[Array] = None,
  ):
    self._model, self._max_length = model, max_length
    self._variables = {k: v for k, v in variables.items() if k != "cache"}
    self._encoded, self._mask, self._prompts = encoded, mask, prompts

  def __call__(self, tokens: Array, cache: Optional[Any]) -> tuple[Array, Any]:
    variables = dict(self._variables)
    if cache is not None:
      variables["cache"] = cache
    logits, mutated = self._model.apply(
      variables,
      self._encoded,
      self._mask,
      tokens[:, None],
      decode=True,
      max_decode_length=self._max_length,
      prompts=self._prompts,
      method=self._model.decode,
      mutable=["cache"],
    )
    return logits[:, 0].astype(jnp.float32), mutated["cache"]


def _gather_cache(cache: Any, index: Array) -> Any:
  """Reorders the cache's batch rows by `index` (`[n]`); layer-stacked leaves have batch second."""

  def gather(path, leaf):
    if leaf.ndim == 0:  # the shared decode position
      return leaf
    scanned = any(getattr(k, "key", None) == "layers" for k in path)
    return jnp.take(leaf, index, axis=1 if scanned else 0)

  return jax.tree_util.tree_map_with_path(gather, cache)


def _sample_loop(
  step: _Stepper, batch: int, max_length: int, method: Method, rng: Array, eos_id: int
) -> DecodeOutput:
  logits, cache = step(jnp.zeros((batch,), jnp.int32), None)
  sampling = method if isinstance(method, Sampling) and method.temperature > 0 else None

  def choose(t, logits):
    if sampling is None:  # greedy (or temperature 0)
      return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    filtered = _filter_logits(logits / sampling.temperature, sampling.top_k, sampling.top_p)
    return jax.random.categorical(jax.random.fold_in(rng, t), filtered).astype(jnp.int32)

  def cond(state):
    t, _, _, _, _, done = state
    return (t < max_length) & ~jnp.all(done)

  def body(state):
    t, logits, cache, out, log_likelihood, done = state
    token = jnp.where(done, 0, choose(t, logits))
    token_logp = jnp.take_along_axis(jax.nn.log_softmax(logits), token[:, None], axis=-1)[:, 0]
    log_likelihood = log_likelihood + jnp.where(done, 0.0, token_logp)
    out = out.at[:, t].set(token)
    done = done | (token == eos_id)
    logits, cache = step(token, cache)
    return t + 1, logits, cache, out, log_likelihood, done

  state = (
    jnp.zeros((), jnp.int32),
    logits,
    cache,
    jnp.zeros((batch, max_length), jnp.int32),
    jnp.zeros((batch,), jnp.float32),
    jnp.zeros((batch,), bool),
  )
  _, _, _, out, log_likelihood, _ = lax.while_loop(cond, body, state)
  return DecodeOutput(out[:, None], log_likelihood[:, None], log_likelihood[:, None])


def _beam_loop(
  step: _Stepper, batch: int, max_length: int, method: BeamSearch, eos_id: int
) -> DecodeOutput:
  k = method.num_beams
  penalty = lambda length: brevity_penalty(method.alpha, jnp.asarray(length, jnp.float32))
  logits, cache = step(jnp.zeros((batch * k,), jnp.int32), None)
  vocab = logits.shape[-1]
  # All beams start identical; only the first may extend, or the beams would duplicate.
  alive_logp = jnp.tile(jnp.where(jnp.arange(k) == 0, 0.0, NEG_INF)[None], (batch, 1))
  sequences = jnp.zeros((batch, k, max_length), jnp.int32)
  finished_score = jnp.full((batch, k), NEG_INF)

  def take(x, index):  # x: [batch, m, ...], index: [batch, j] -> [batch, j, ...]
    return jax.vmap(lambda row, i: row[i])(x, index)

  def cond(state):
    t, _, _, _, alive_logp, _, finished_score, _ = state
    # No alive beam can finish above the worst kept finished one: its log
    # probability only falls, and the penalty divides by at most penalty(max).
    best_possible = jnp.where(
      alive_logp[:, 0] > _VALID, alive_logp[:, 0] / penalty(max_length), NEG_INF
    )
    open_ = jnp.any(best_possible > jnp.min(finished_score, axis=1))
    return (t < max_length) & open_

  def body(state):
    t, logits, cache, alive_seq, alive_logp, finished_seq, finished_score, finished_logp = state
    total = alive_logp[:, :, None] + jax.nn.log_softmax(logits).reshape(batch, k, vocab)
    # Finished: every alive beam's EOS extension competes with the kept ones.
    eos_logp = total[:, :, eos_id]
    eos_score = jnp.where(alive_logp > _VALID, eos_logp / penalty(t + 1), NEG_INF)
    all_score = jnp.concatenate([finished_score, eos_score], axis=1)
    all_seq = jnp.concatenate([finished_seq, alive_seq.at[:, :, t].set(eos_id)], axis=1)
    all_logp = jnp.concatenate([finished_logp, eos_logp], axis=1)
    finished_score, keep = lax.top_k(all_score, k)
    finished_seq, finished_logp = take(all_seq, keep), take(all_logp, keep)
    # Alive: the best k extensions by any other token.
    alive_logp, flat = lax.top_k(total.at[:, :, eos_id].set(NEG_INF).reshape(batch, -1), k)
    alive_logp = jnp.where(alive_logp > _VALID, alive_logp, NEG_INF)
    origin, token = flat // vocab, (flat % vocab).astype(jnp.int32)
    alive_seq = take(alive_seq, origin).at[:, :, t].set(token)
    cache = _gather_cache(cache, (jnp.arange(batch)[:, None] * k + origin).reshape(-1))
    logits, cache = step(token.reshape(-1), cache)
    return (
      t + 1,
      logits,
      cache,
      alive_seq,
      alive_logp,
      finished_seq,
      finished_score,
      finished_logp,
    )

  state = (
    jnp.zeros((), jnp.int32),
    logits,
    cache,
    sequences,
    alive_logp,
    sequences,
    finished_score,
    jnp.full((batch, k), NEG_INF),
  )
  t, _, _, alive_seq, alive_logp, finished_seq, finished_score, finished_logp = lax.while_loop(
    cond, body, state
  )
  # An example with no finished beam (none emitted EOS within max_length)
  # returns its alive beams, scored at their full length (as t5x does).
  none_finished = jnp.all(finished_score <= _VALID, axis=1)[:, None]
  tokens = jnp.where(none_finished[:, :, None], alive_seq, finished_seq)
  scores = jnp.where(none_finished, alive_logp / penalty(t), finished_score)
  log_likelihood = jnp.where(none_finished, alive_logp, finished_logp)
  return DecodeOutput(tokens, scores, log_likelihood)


def _prompts_by_row(model: t5.Transformer, prompts: Array) -> bool:
  """Whether `prompts` (the model's method's values, see `t5.Transformer.encode`) have a
  leading batch axis: one more than one row's values (`t5.method_shape`)."""
  return prompts.ndim == len(t5.method_shape(model)[1]) + 1


def decode(
  model: t5.Transformer,
  variables: dict[str, Any],
  encoder_input_tokens: Array,
  *,
  max_length: int,
  method: Method = Greedy(),
  prompts: Optional[Array] = None,
  prompt_mask: Optional[Array] = None,
  rng: Optional[Array] = None,
  eos_id: int = EOS_ID,
) -> DecodeOutput:
  """Decodes up to `max_length` tokens for each row of `encoder_input_tokens`.

  Args:
    model: the model (with or without a prompt).
    variables: its variables (`params`, and `prompt` if it has one).
    encoder_input_tokens: `[batch, length]` right-padded input ids.
    max_length: the most tokens generated (the targets feature length).
    method: `Greedy()`, `Sampling(...)` or `BeamSearch(...)`.
    prompts: per-example prompts `[batch, P, E]` (or one `[P, E]`) replacing the
      model's prompt variable: ensembles and mixed-task batches; for a per-layer prompt
      or a prefix, its values by row (`t5.Transformer.encode`), which every decode step
      gets too.
    prompt_mask: `[batch, P]` True at each row's real prompt vectors (prompts
      of different lengths padded to one; see `t5.Encoder`).
    rng: a PRNG key for sampling.
    eos_id: the end-of-sequence id.

  Returns:
    A `DecodeOutput`, best sequence first.
  """
  batch = encoder_input_tokens.shape[0]
  encoded, mask = model.apply(
    variables, encoder_input_tokens, prompts=prompts, prompt_mask=prompt_mask, method=model.encode
  )
  if isinstance(method, BeamSearch):
    repeat = lambda x: jnp.repeat(x, method.num_beams, axis=0)
    by_row = prompts is not None and _prompts_by_row(model, prompts)
    step = _Stepper(
      model,
      variables,
      repeat(encoded),
      repeat(mask),
      max_length,
      repeat(prompts) if by_row else prompts,
    )
    return _beam_loop(step, batch, max_length, method, eos_id)
  if isinstance(method, Sampling) and method.temperature > 0 and rng is None:
    raise ValueError("sampling needs an rng key")
  step = _Stepper(model, variables, encoded, mask, max_length, prompts)
  return _sample_loop(step, batch, max_length, method, rng, eos_id)


class RowSettings(NamedTuple):
  """How each row of a batch decodes: traced inputs of one compiled `decode_by_row`.

  Attributes:
    max_tokens: `[batch]` int32: the most tokens the row generates (EOS
      included); 0 for a row that only fills the batch.
    temperature: `[batch]` float32: 0 (or below MIN_TEMPERATURE) is greedy; above,
      samples from the tempered distribution.
    top_p: `[batch]` float32 in (0, 1]: nucleus sampling (1: the whole vocabulary).
    seed: `[batch]` uint32: the row's own random stream, so a seeded row
      samples the same tokens alone or beside any other rows.
  """

  max_tokens: Array
  temperature: Array
  top_p: Array
  seed: Array


class RowOutput(NamedTuple):
  """`decode_by_row`'s result.

  Attributes:
    tokens: `[batch, max_length]` int32: EOS included, zeros after the row's end.
    length: `[batch]` int32: tokens generated (EOS included).
    token_logprobs: `[batch, max_length]` the model's log-probability of each
      generated token (untempered; 0 after the end).
    top_ids, top_logprobs: `[batch, max_length, k]` the k most likely tokens at
      each step and their log-probabilities (zeros unless asked for).
  """

  tokens: Array
  length: Array
  token_logprobs: Array
  top_ids: Array
  top_logprobs: Array


def _choose_by_row(logits: Array, settings: RowSettings, keys: Array, t: Array) -> Array:
  """Each row's next token: greedy at temperature 0, else sampled with its own key."""
  greedy = jnp.argmax(logits, axis=-1).astype(jnp.int32)
  # Below MIN_TEMPERATURE the tempered distribution is the argmax (and dividing by a
  # denormal would overflow the logits): greedy.
  sampled_rows = settings.temperature >= MIN_TEMPERATURE

  def sample():
    scaled = logits / jnp.where(sampled_rows, settings.temperature, 1.0)[:, None]
    top_p = settings.top_p[:, None]
    # A row at top_p = 1 keeps its whole distribution whatever its neighbours ask.
    scaled = lax.cond(
      jnp.any(settings.top_p < 1.0),
      lambda x: jnp.where(top_p < 1.0, _nucleus(x, top_p), x),
      lambda x: x,
      scaled,
    )
    step_keys = jax.vmap(lambda k: jax.random.fold_in(k, t))(keys)
    return jax.vmap(jax.random.categorical)(step_keys, scaled).astype(jnp.int32)

  sampled = lax.cond(jnp.any(sampled_rows), sample, lambda: greedy)
  return jnp.where(sampled_rows, sampled, greedy)


def decode_by_row(
  model: t5.Transformer,
  variables: dict[str, Any],
  encoder_input_tokens: Array,
  settings: RowSettings,
  *,
  max_length: int,
  prompts: Optional[Array] = None,
  prompt_mask: Optional[Array] = None,
  eos_id: int = EOS_ID,
  top_logprobs: int = 0,
  encoded_length: Optional[int] = None,
) -> RowOutput:
  """Greedy and sampled rows in one batch, each with its own length, temperature, top_p and seed.

  What a server compiles once per batch size: every setting is an input, so no
  request changes what runs. A row's tokens depend on its own input, prompt,
  settings and seed only.

  Args:
    model, variables, encoder_input_tokens, prompts, prompt_mask, eos_id: as in `decode`.
    settings: the rows' `RowSettings`.
    max_length: the most tokens any row generates (the compiled length).
    top_logprobs: k: record the k most likely tokens at each step (0: none).
    encoded_length: encode only this many positions, the attended ones first
      (`t5.Encoder`); at least every row's prompt and input length.

  Returns:
    A `RowOutput`.
  """
  batch = encoder_input_tokens.shape[0]
  encoded, mask = model.apply(
    variables,
    encoder_input_tokens,
    prompts=prompts,
    prompt_mask=prompt_mask,
    encoded_length=encoded_length,
    method=model.encode,
  )
  step = _Stepper(model, variables, encoded, mask, max_length, prompts)
  keys = jax.vmap(jax.random.key)(settings.seed)
  logits, cache = step(jnp.zeros((batch,), jnp.int32), None)
  k = max(int(top_logprobs), 1)

  def cond(state):
    t, _, _, _, done = state[:5]
    return (t < max_length) & ~jnp.all(done)

  def body(state):
    t, logits, cache, out, done, length, token_logp, top_ids, top_logp = state
    token = jnp.where(done, 0, _choose_by_row(logits, settings, keys, t))
    logp = jax.nn.log_softmax(logits)
    chosen = jnp.take_along_axis(logp, token[:, None], axis=-1)[:, 0]
    token_logp = token_logp.at[:, t].set(jnp.where(done, 0.0, chosen))
    if top_logprobs:
      values, ids = lax.top_k(logp, k)
      top_logp = top_logp.at[:, t].set(jnp.where(done[:, None], 0.0, values))
      top_ids = top_ids.at[:, t].set(jnp.where(done[:, None], 0, ids.astype(jnp.int32)))
    out = out.at[:, t].set(token)
    length = length + (~done).astype(jnp.int32)
    done = done | (token == eos_id) | (t + 1 >= settings.max_tokens)
    logits, cache = step(token, cache)
    return t + 1, logits, cache, out, done, length, token_logp, top_ids, top_logp

  state = (
    jnp.zeros((), jnp.int32),
    logits,
    cache,
    jnp.zeros((batch, max_length), jnp.int32),
    settings.max_tokens <= 0,
    jnp.zeros((batch,), jnp.int32),
    jnp.zeros((batch, max_length), jnp.float32),
    jnp.zeros((batch, max_length, k), jnp.int32),
    jnp.zeros((batch, max_length, k), jnp.float32),
  )
  _, _, _, out, _, length, token_logp, top_ids, top_logp = lax.while_loop(cond, body, state)
  return RowOutput(out, length, token_logp, top_ids, top_logp)


def sequence_log_likelihood(
  model: t5.Transformer,
  variables: dict[str, Any],
  encoder_input_tokens: Array,
  target_tokens: Array,
  *,
  prompts: Optional[Array] = None,
) -> Array:
  """`[batch]` sum of log p(target token) over the non-padding targets (teacher forced).

  Args:
    model, variables: as in `decode`.
    encoder_input_tokens: `[batch, length]` inputs.
    target_tokens: `[batch, target_length]` right-padded targets, EOS included.
    prompts: as in `decode`.
  """
  decoder_inputs = jnp.pad(target_tokens[:, :-1], ((0, 0), (1, 0)))
  logits = model.apply(variables, encoder_input_tokens, decoder_inputs, prompts=prompts)
  logp = jax.nn.log_softmax(logits.astype(jnp.float32))
  token_logp = jnp.take_along_axis(logp, target_tokens[..., None], axis=-1)[..., 0]
  return jnp.sum(jnp.where(target_tokens > 0, token_logp, 0.0), axis=-1)
