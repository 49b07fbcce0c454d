"""The soft prompt (Lester et al., 2021, §2) and how it joins the embedded input.

A `Prompt` owns one `[length, embed]` variable in its own collection, `prompt`,
not in `params`: a trainer differentiates with respect to that collection alone
and the frozen model never receives a gradient.

A combiner places `[batch, length, embed]` prompt vectors among the embedded
tokens and extends the token mask so that the prompt is always attended to:

* `prefix_prompt` (the paper): `[prompt; tokens]`.
* `prefix_prompt_after_first`: `[token_0; prompt; tokens_1:]` (keeps a BOS first).
* `suffix_prompt`: `[tokens; prompt; padding]`, after each example's last real
  token (inputs are right-padded).

The sequence grows by `length` positions in every case.
"""

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from prompt_tuning.models import layers
from prompt_tuning.models import prompt_init as initializers

Array = jax.Array
Combiner = Callable[[Array, Array, Array], tuple[Array, Array]]

PROMPT_COLLECTION = "prompt"


def _check(embedded: Array, mask: Array, prompt: Array) -> None:
  if (
    prompt.ndim != 3 or prompt.shape[0] != embedded.shape[0] or prompt.shape[2] != embedded.shape[2]
  ):
    raise ValueError(
      f"prompt has shape {prompt.shape}; expected [batch={embedded.shape[0]}, "
      f"length, embed={embedded.shape[2]}] to join inputs of shape {embedded.shape}"
    )
  if mask.shape != embedded.shape[:2]:
    raise ValueError(f"mask shape {mask.shape} does not match inputs {embedded.shape[:2]}")


def prefix_prompt(embedded: Array, mask: Array, prompt: Array) -> tuple[Array, Array]:
  """`[prompt; tokens]`.

  Args:
    embedded: `[batch, length, embed]` embedded tokens.
    mask: `[batch, length]` bool, True at real tokens.
    prompt: `[batch, prompt_length, embed]`.

  Returns:
    `[batch, prompt_length + length, embed]` inputs and their mask.
  """
  _check(embedded, mask, prompt)
  prompt_mask = jnp.ones(prompt.shape[:2], dtype=mask.dtype)
  return (
    jnp.concatenate([prompt.astype(embedded.dtype), embedded], axis=1),
    jnp.concatenate([prompt_mask, mask], axis=1),
  )


def prefix_prompt_after_first(embedded: Array, mask: Array, prompt: Array) -> tuple[Array, Array]:
  """`[token_0; prompt; tokens_1:]`; shapes as in `prefix_prompt`."""
  _check(embedded, mask, prompt)
  prompt_mask = jnp.ones(prompt.shape[:2], dtype=mask.dtype)
  inputs = jnp.concatenate(
    [embedded[:, :1], prompt.astype(embedded.dtype), embedded[:, 1:]], axis=1
  )
  return inputs, jnp.concatenate([mask[:, :1], prompt_mask, mask[:, 1:]], axis=1)


def suffix_prompt(embedded: Array, mask: Array, prompt: Array) -> tuple[Array, Array]:
  """`[tokens; prompt; padding]` per example; shapes as in `prefix_prompt`.

  Each example's prompt starts right after its last real token, so inputs must
  be right-padded (real tokens first), as seqio's feature converters make them.
  """
  _check(embedded, mask, prompt)
  batch, length = mask.shape
  prompt_length = prompt.shape[1]
  lengths = jnp.sum(mask.astype(jnp.int32), axis=1, keepdims=True)  # [b, 1]
  position = jnp.arange(length + prompt_length)[None, :]  # [1, l + p]
  # Index into concat([tokens, prompt]) for every output position.
  source = jnp.where(
    position < lengths,
    position,
    jnp.where(
      position < lengths + prompt_length, length + position - lengths, position - prompt_length
    ),
  )
  pool = jnp.concatenate([embedded, prompt.astype(embedded.dtype)], axis=1)
  inputs = jnp.take_along_axis(pool, source[..., None], axis=1)
  pool_mask = jnp.concatenate([mask, jnp.ones((batch, prompt_length), mask.dtype)], axis=1)
  return inputs, jnp.take_along_axis(pool_mask, source, axis=1)


def positions_skipping_masked(
  combine: Combiner, mask: Array, prompt_mask: Array
) -> tuple[Array, Array]:
  """Where a combiner puts padded prompt slots, and positions that skip them.

  Prompts of different lengths share a batch padded to one length `P`; a
  padded slot must neither be attended to nor move the positions of what
  follows it, so that each row encodes as its own prompt would alone. The
  combiner itself says where the slots go: it joins a one-wide channel (1 at
  tokens and real prompt vectors, 0 at padded slots) as it joins the vectors.

  Args:
    combine: the combiner `(embedded, mask, prompt) -> (inputs, mask)`.
    mask: `[batch, length]` the tokens' mask.
    prompt_mask: `[batch, P]` True at each row's real prompt vectors.

  Returns:
    `positions: [batch, P + length]` int32 (a padded slot repeats the position
    before it) and `real: [batch, P + length]` bool (False at padded slots).
  """
  if prompt_mask.ndim != 2 or prompt_mask.shape[0] != mask.shape[0]:
    raise ValueError(
      f"prompt_mask has shape {prompt_mask.shape}; expected [batch={mask.shape[0]}, P]"
    )
  tokens = jnp.ones(mask.shape + (1,), jnp.float32)
  channel, _ = combine(tokens, mask, prompt_mask.astype(jnp.float32)[..., None])
  real = channel[..., 0] > 0.5
  positions = jnp.maximum(jnp.cumsum(real.astype(jnp.int32), axis=1) - 1, 0)
  return positions, real


COMBINERS = {
  "prefix": prefix_prompt,
  "prefix_after_first": prefix_prompt_after_first,
  "suffix": suffix_prompt,
}


class Prompt(nn.Module):
  """A learned `[length, embed]` soft prompt in the `prompt` collection.

  Attributes:
    length: number of prompt vectors, P. 0 gives the plain model.
    embed_dim: width E; must equal the model's embedding width.
    prompt_init: `(rng, (P, E)) -> array`; see `prompt_init`.
    combine: how the prompt joins the inputs: a name in `COMBINERS` or a
      function `(embedded, mask, prompt) -> (inputs, mask)`.
    param_dtype: dtype of the stored prompt (float32: it is what trains).
  """

  length: int
  embed_dim: int
  prompt_init: initializers.Initializer = initializers.random_uniform()
  combine: str | Combiner = "prefix"
  param_dtype: layers.DType = jnp.float32

  def combiner(self) -> Combiner:
    if callable(self.combine):
      return self.combine
    if self.combine not in COMBINERS:
      raise ValueError(
        f"unknown prompt combiner {self.combine!r}; choose one of {sorted(COMBINERS)}"
      )
    return COMBINERS[self.combine]

  @nn.compact
  def __call__(self) -> Array:
    """Returns the prompt, `[length, embed]`."""
    if (
      isinstance(self.length, bool)
      or not isinstance(self.length, (int, np.integer))
      or (self.length < 0)
    ):
      raise ValueError(
        f"prompt length (PROMPT_LENGTH) is {self.length!r}; it must be an integer >= 0"
      )
    shape = (self.length, self.embed_dim)

    def init():
      value = self.prompt_init(self.make_rng("params"), shape)
      return nn.LogicallyPartitioned(
        jnp.asarray(value, self.param_dtype), names=("prompt", "prompt_embed")
      )

    return self.variable(PROMPT_COLLECTION, "prompt", init).value


PER_LAYER_MODES = ("replace", "add")


class PerLayerPrompt(Prompt):
  """A prompt at the input of every encoder layer (the original codebase's per-layer
  prompts): `[layers, length, embed]` in the `prompt` collection.

  Layer 0's prompt joins the embedded inputs in front, as a `Prompt` does; the
  input of each later layer i is the previous layer's output with its first
  `length` positions (the prompt's) replaced by layer i's prompt ('replace') or
  with layer i's prompt added to them ('add'). With one layer it is a `Prompt`.

  Attributes (besides `Prompt`'s; `combine` must be 'prefix'):
    num_layers: the encoder's layers.
    mode: 'replace' or 'add'.
    prompt_init: initializes layer 0's `[length, embed]`.
    layer_init: initializes each later layer's `[length, embed]`; None: `prompt_init`
      for 'replace' and zeros for 'add' (so that training starts from a prompt).
    value_init: initializes the whole `[layers, length, embed]` instead (a file's).
  """

  num_layers: int = 1
  mode: str = "replace"
  layer_init: initializers.Initializer | None = None
  value_init: initializers.Initializer | None = None

  @nn.compact
  def __call__(self) -> Array:
    """Returns the prompts, `[layers, length, embed]`."""
    if self.mode not in PER_LAYER_MODES:
      raise ValueError(f"per-layer prompt mode {self.mode!r}: choose one of {PER_LAYER_MODES}")
    if isinstance(self.length, bool) or not isinstance(self.length, (int, np.integer)):
      raise ValueError(f"prompt length (PROMPT_LENGTH) is {self.length!r}; it must be >= 1")
    if self.length < 1:
      raise ValueError(f"a per-layer prompt's length (PROMPT_LENGTH) is {self.length}; use >= 1")
    shape = (self.num_layers, self.length, self.embed_dim)

    def make():
      rng = self.make_rng("params")
      if self.value_init is not None:
        value = jnp.asarray(self.value_init(rng, shape), jnp.float32)
      else:
        later = self.layer_init
        if later is None:
          later = self.prompt_init if self.mode == "replace" else nn.initializers.zeros
        keys = jax.random.split(rng, self.num_layers)
        value = jnp.stack(
          [jnp.asarray(self.prompt_init(keys[0], shape[1:]), jnp.float32)]
          + [jnp.asarray(later(k, shape[1:]), jnp.float32) for k in keys[1:]]
        )
      return nn.LogicallyPartitioned(
        jnp.asarray(value, self.param_dtype), names=(None, "prompt", "prompt_embed")
      )

    return self.variable(PROMPT_COLLECTION, "prompt", make).value

  def per_row(self, prompts: Array, batch_size: int) -> Array:
    """`[layers, P, E]` or `[batch, layers, P, E]` -> `[layers, batch, P, E]`."""
    if prompts.ndim == 3:
      prompts = jnp.broadcast_to(prompts[None], (batch_size,) + prompts.shape)
    if prompts.ndim != 4 or prompts.shape[0] != batch_size or prompts.shape[1] != self.num_layers:
      raise ValueError(
        f"per-layer prompts must be [{self.num_layers}, P, E] or [batch={batch_size}, "
        f"{self.num_layers}, P, E], got shape {prompts.shape}"
      )
    return jnp.swapaxes(prompts, 0, 1)


def broadcast_prompt(prompt: Array, batch_size: int) -> Array:
  """`[P, E]` (one prompt) or `[batch, P, E]` (one per example) -> `[batch, P, E]`."""
  if prompt.ndim == 2:
    return jnp.broadcast_to(prompt[None], (batch_size,) + prompt.shape)
  if prompt.ndim == 3 and prompt.shape[0] == batch_size:
    return prompt
  raise ValueError(
    f"prompts must be [P, E] or [batch={batch_size}, P, E], got shape {prompt.shape}"
  )


PREFIX_MLP = ("embedding", "hidden_kernel", "hidden_bias", "out_kernel", "out_bias")


def peft_key_rows(num_layers: int) -> list[int]:
  """The row of PEFT's (0.21) `[P, 2L, heads, head_dim]` prefix table that T5's decoder layer
  i reads its keys from, 4i mod 2L; its values are the next row."""
  return [(4 * i) % (2 * num_layers) for i in range(num_layers)]


PREFIX_PLACEMENTS = ("decoder", "encoder")


class Prefix(nn.Module):
  """Prefix tuning (Li & Liang, 2021): learned keys and values put before each layer's
  self-attention keys and values, in the decoder (`placement='decoder'`, where PEFT
  applies a prefix to T5) or in the encoder (`'encoder'`, P-tuning v2's deep prompts).

  Its variables are in the `prompt` collection, so they train as a prompt does
  and the model stays frozen. With `hidden_dim` 0 the variable is the prefix
  itself, `prefix: [layers, 2, length, heads, head_dim]` (keys, then values).
  With `hidden_dim` > 0 it is reparameterized as Li & Liang train it: an
  `embedding: [length, embed_dim]` through a two-layer MLP (tanh), whose output
  is the prefix; `fold_prefix` replaces the MLP by its output for inference.

  Attributes:
    length: P, the prefix's positions.
    num_layers, num_heads, head_dim: the stack's.
    embed_dim: the MLP's input width (the model's embedding width).
    hidden_dim: the MLP's hidden width; 0: no MLP.
    prefix_init: `(rng, shape) -> array` for the prefix or the MLP's embedding.
    layout: 'layers': each layer's keys and values are its own. 'peft': PEFT's
      (0.21) table of 2L rows, `[length, 2L, heads, head_dim]`, decoder layer i
      reading rows 4i mod 2L and 4i+1 mod 2L, so that with an even number of
      layers, layers i and i + L/2 share theirs and the prefix exports to a
      PEFT adapter exactly (`checkpoints.peft.prefix_to_peft`); decoder only.
    placement: 'decoder' (PEFT's) or 'encoder' (P-tuning v2).
  """

  length: int
  num_layers: int
  num_heads: int
  head_dim: int
  embed_dim: int = 0
  hidden_dim: int = 0
  prefix_init: initializers.Initializer = nn.initializers.normal(1.0)
  layout: str = "layers"
  placement: str = "decoder"
  param_dtype: layers.DType = jnp.float32

  @property
  def shape(self) -> tuple[int, ...]:
    return (self.num_layers, 2, self.length, self.num_heads, self.head_dim)

  def _variable(self, name: str, init, shape, axes):
    def make():
      value = init(self.make_rng("params"), shape)
      return nn.LogicallyPartitioned(jnp.asarray(value, self.param_dtype), names=axes)

    return self.variable(PROMPT_COLLECTION, name, make).value

  @nn.compact
  def __call__(self) -> Array:
    """The prefix, `[layers, 2, length, heads, head_dim]`."""
    if isinstance(self.length, bool) or not isinstance(self.length, (int, np.integer)):
      raise ValueError(f"prefix length is {self.length!r}; it must be an integer >= 1")
    if self.length < 1:
      raise ValueError(f"prefix length is {self.length}; it must be >= 1")
    if self.layout not in ("layers", "peft"):
      raise ValueError(f"prefix layout {self.layout!r}: choose 'layers' or 'peft'")
    if self.placement not in PREFIX_PLACEMENTS:
      raise ValueError(f"prefix placement {self.placement!r}: choose one of {PREFIX_PLACEMENTS}")
    if self.layout == "peft" and self.placement != "decoder":
      raise ValueError("PEFT's layout (layout='peft') is a decoder prefix's (placement='decoder')")
    if not self.hidden_dim:
      if self.layout == "layers":
        return self._variable(
          "prefix", self.prefix_init, self.shape, (None, None, "prompt", "heads", "kv")
        )
      rows = self._variable(
        "prefix",
        self.prefix_init,
        (self.length, 2 * self.num_layers, self.num_heads, self.head_dim),
        ("prompt", None, "heads", "kv"),
      )
      return self._from_peft_rows(rows)
    if self.embed_dim < 1:
      raise ValueError("a prefix with an MLP (hidden_dim > 0) needs embed_dim, its input width")
    width = int(np.prod(self.shape)) // self.length
    zeros = nn.initializers.zeros
    lecun = nn.initializers.lecun_normal()
    embedding = self._variable(
      "embedding", self.prefix_init, (self.length, self.embed_dim), ("prompt", "prompt_embed")
    )
    w1 = self._variable("hidden_kernel", lecun, (self.embed_dim, self.hidden_dim), (None, None))
    b1 = self._variable("hidden_bias", zeros, (self.hidden_dim,), (None,))
    w2 = self._variable("out_kernel", lecun, (self.hidden_dim, width), (None, None))
    b2 = self._variable("out_bias", zeros, (width,), (None,))
    flat = jnp.tanh(embedding @ w1 + b1) @ w2 + b2  # [P, layers * 2 * heads * head_dim]
    if self.layout == "peft":
      return self._from_peft_rows(
        flat.reshape(self.length, 2 * self.num_layers, self.num_heads, self.head_dim)
      )
    prefix = flat.reshape(self.length, self.num_layers, 2, self.num_heads, self.head_dim)
    return jnp.transpose(prefix, (1, 2, 0, 3, 4))

  def _from_peft_rows(self, rows: Array) -> Array:
    """`[P, 2L, heads, head_dim]` in PEFT's order -> `[L, 2, P, heads, head_dim]`."""
    keys = np.asarray(peft_key_rows(self.num_layers))
    per_layer = jnp.stack([rows[:, keys], rows[:, keys + 1]])  # [2, P, L, heads, head_dim]
    return jnp.transpose(per_layer, (2, 0, 1, 3, 4))


def fold_prefix(module: Prefix, variables: dict) -> dict:
  """A reparameterized prefix's variables (`embedding` and the MLP) replaced by the
  prefix they give, for a `Prefix` with `hidden_dim=0`."""
  value = module.apply({PROMPT_COLLECTION: variables})
  if module.layout == "peft":  # back to the table, each tied row once
    shape = (module.length, 2 * module.num_layers, module.num_heads, module.head_dim)
    rows = jnp.zeros(shape, value.dtype)
    for i, k in enumerate(peft_key_rows(module.num_layers)):
      rows = rows.at[:, k].set(value[i, 0]).at[:, k + 1].set(value[i, 1])
    return {"prefix": rows}
  return {"prefix": value}


MULTITASK_COMBINES = ("add", "concat", "concat_features", "project", "mpt")

# The `prompt` collection's variables of each way of combining (see `MultiTaskPrompt`).
MULTITASK_VARIABLES = {
  "add": ("shared", "tasks"),
  "concat": ("shared", "tasks"),
  "concat_features": ("shared", "tasks"),
  "project": ("shared", "kernel", "bias"),
  "mpt": ("shared", "cols", "rows"),
}


def multitask_prompts(combine: str, variables: dict) -> Array:
  """Every task's prompt, `[tasks, P_out, E]`, from a `MultiTaskPrompt`'s variables.

  * 'add': `shared [P, E] + tasks[t] [P, E]`;
  * 'concat': `[shared [P, E]; tasks[t] [P_t, E]]`, P + P_t vectors;
  * 'concat_features': `shared [P, E_s]` beside `tasks[t] [P, E - E_s]`, feature-wise;
  * 'project': `shared [P, E] @ kernel[t] [E, E] + bias[t] [E]`;
  * 'mpt' (PEFT's multitask prompt tuning): `shared [P, E] * (cols[t] [P, r] @ rows[t] [r, E])`.
  """
  if combine not in MULTITASK_COMBINES:
    raise ValueError(f"multi-task combine {combine!r}: choose one of {MULTITASK_COMBINES}")
  missing = [n for n in MULTITASK_VARIABLES[combine] if n not in variables]
  if missing:
    raise ValueError(
      f"a multi-task prompt combined by {combine!r} has variables "
      f"{list(MULTITASK_VARIABLES[combine])}; {missing} missing (have {sorted(variables)})"
    )
  shared = jnp.asarray(variables["shared"])
  exact = jax.lax.Precision.HIGHEST  # float32 products (not TF32 or bfloat16 passes on GPUs)
  if combine == "project":
    projected = jnp.einsum("pe,tef->tpf", shared, variables["kernel"], precision=exact)
    return projected + variables["bias"][:, None, :]
  if combine == "mpt":
    low_rank = jnp.einsum("tpr,tre->tpe", variables["cols"], variables["rows"], precision=exact)
    return shared[None] * low_rank
  tasks = jnp.asarray(variables["tasks"])
  shared = jnp.broadcast_to(shared[None], (tasks.shape[0],) + shared.shape)
  if combine == "add":
    return shared + tasks
  return jnp.concatenate([shared, tasks], axis=1 if combine == "concat" else 2)


class MultiTaskPrompt(Prompt):
  """A prompt shared by every task combined with each task's own (the original codebase's
  extended/multitask_prompts.py, and PEFT's MPT): `[tasks, P_out, E]` task prompts from
  variables in the `prompt` collection (see `multitask_prompts` for each combination).

  The task of each example is its input's first token, the sentinel `<extra_id_t>` of
  task t (`first_sentinel - t`), which the encoder reads and drops before the prompt
  joins the remaining tokens ('prefix').

  Attributes (besides `Prompt`'s: `length` is the shared prompt's P; `prompt_init`
  initializes it, `[P, E]`):
    tasks: the tasks' names, in task-id order (T = their number).
    combine_tasks: one of `MULTITASK_COMBINES`.
    first_sentinel: the id of `<extra_id_0>` (the vocabulary's size - 1).
    task_length: 'concat': each task's vectors, P_t (None: P).
    shared_features: 'concat_features': the shared prompt's width E_s (None: E // 2).
    rank: 'mpt': r.
    task_init: each task's `[P_t, E]` ('add', 'concat') or `[P, E - E_s]`
      ('concat_features'); None: zeros for 'add' (each task starts at the shared
      prompt), `prompt_init`'s vectors again for 'concat' (cycled to P_t), the features
      `prompt_init` gives past E_s for 'concat_features' (the tasks start at its prompt). 'project' starts at the identity kernel and a zero bias, 'mpt'
      at a product of ones (both: each task at the shared prompt) plus N(0, 0.02) noise
      in the ranks so that they part.
  """

  tasks: tuple[str, ...] = ()
  combine_tasks: str = "add"
  first_sentinel: int = 0
  task_length: int | None = None
  shared_features: int | None = None
  rank: int = 1
  task_init: initializers.Initializer | None = None

  @property
  def num_tasks(self) -> int:
    return len(self.tasks)

  def _check(self) -> None:
    if self.combine_tasks not in MULTITASK_COMBINES:
      raise ValueError(
        f"MULTITASK_COMBINE={self.combine_tasks!r}: choose one of {MULTITASK_COMBINES}"
      )
    if isinstance(self.length, bool) or not isinstance(self.length, (int, np.integer)):
      raise ValueError(f"prompt length (PROMPT_LENGTH) is {self.length!r}; it must be >= 1")
    if self.length < 1 or self.num_tasks < 1:
      raise ValueError(
        f"a multi-task prompt needs PROMPT_LENGTH >= 1 and one task or more; got "
        f"{self.length} and {self.num_tasks}"
      )
    if self.combiner() is not prefix_prompt:
      raise ValueError("a multi-task prompt sits in front of the inputs (combine='prefix')")
    if self.combine_tasks == "mpt" and (isinstance(self.rank, bool) or self.rank < 1):
      raise ValueError(f"MULTITASK_RANK={self.rank!r}: the rank of MPT's task matrices, >= 1")
    for macro, value, unset, combine in (
      ("MULTITASK_TASK_LENGTH", self.task_length, None, "concat"),
      ("MULTITASK_SHARED_FEATURES", self.shared_features, None, "concat_features"),
      ("MULTITASK_RANK", self.rank, 1, "mpt"),
    ):
      if (value != unset or isinstance(value, bool)) and self.combine_tasks != combine:
        raise ValueError(
          f"{macro}={value!r} is for MULTITASK_COMBINE={combine!r}, and this prompt combines "
          f"by {self.combine_tasks!r}: unset it (its default is {unset!r}) or combine by "
          f"{combine!r}"
        )
    if self.task_length is not None and (
      isinstance(self.task_length, bool) or self.task_length < 1
    ):
      raise ValueError(
        f"MULTITASK_TASK_LENGTH={self.task_length!r}: each task's vectors ('concat'), >= 1 "
        "(None: PROMPT_LENGTH)"
      )

  def _widths(self) -> tuple[int, int]:
    if self.combine_tasks != "concat_features":
      return self.embed_dim, self.embed_dim
    shared = self.embed_dim // 2 if self.shared_features is None else self.shared_features
    if not 0 < shared < self.embed_dim:
      raise ValueError(
        f"MULTITASK_SHARED_FEATURES={shared}: the shared prompt's width must be between "
        f"1 and {self.embed_dim - 1} (the model's {self.embed_dim} less the tasks')"
      )
    return shared, self.embed_dim - shared

  @nn.compact
  def __call__(self) -> Array:
    """Every task's prompt, `[tasks, P_out, E]`."""
    self._check()
    T, P, E = self.num_tasks, self.length, self.embed_dim
    shared_width, task_width = self._widths()
    cache = {}

    def start() -> Array:  # prompt_init's [P, E], drawn once for shared and tasks
      if "start" not in cache:
        cache["start"] = jnp.asarray(self.prompt_init(self.make_rng("params"), (P, E)))
      return cache["start"]

    def variable(name, make, axes):
      def init():
        return nn.LogicallyPartitioned(jnp.asarray(make(), self.param_dtype), names=axes)

      return self.variable(PROMPT_COLLECTION, name, init).value

    values = {"shared": variable("shared", lambda: start()[:, :shared_width], ("prompt", None))}
    noise = nn.initializers.normal(0.02)
    if self.combine_tasks == "project":
      values["kernel"] = variable(
        "kernel", lambda: jnp.broadcast_to(jnp.eye(E), (T, E, E)), (None, None, None)
      )
      values["bias"] = variable("bias", lambda: jnp.zeros((T, E)), (None, None))
    elif self.combine_tasks == "mpt":
      r = self.rank
      values["cols"] = variable(
        "cols", lambda: 1.0 + noise(self.make_rng("params"), (T, P, r)), (None, "prompt", None)
      )
      values["rows"] = variable(
        "rows", lambda: 1.0 / r + noise(self.make_rng("params"), (T, r, E)), (None, None, None)
      )
    else:
      length = P if self.combine_tasks != "concat" else (self.task_length or P)
      shape = (length, task_width)

      def tasks():
        if self.task_init is not None:
          keys = jax.random.split(self.make_rng("params"), T)
          return jnp.stack([jnp.asarray(self.task_init(k, shape)) for k in keys])
        if self.combine_tasks == "add":
          one = jnp.zeros(shape)
        elif self.combine_tasks == "concat_features":
          one = start()[:, shared_width:]
        else:  # 'concat': PROMPT_INIT's vectors again, cycled to the task's length
          one = jnp.resize(start(), shape)
        return jnp.broadcast_to(one[None], (T,) + shape)

      values["tasks"] = variable("tasks", tasks, (None, "prompt", None))
    return multitask_prompts(self.combine_tasks, values)

  def task_of(self, first_tokens: Array) -> Array:
    """Task ids from the inputs' first tokens (their sentinels), clipped into range (an
    all-padding row, whose loss weight is 0, reads the last task)."""
    return jnp.clip(self.first_sentinel - first_tokens, 0, self.num_tasks - 1)
