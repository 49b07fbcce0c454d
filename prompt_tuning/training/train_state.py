"""The train state and the jitted, sharded train step.

The state holds only what changes: the trainable variables (a flat
`{path: array}` dict, see `trainable`), their optimizer state, the step and the
dropout RNG. The frozen variables are a separate argument, never donated and
never differentiated, so a prompt-tuning run keeps one copy of the frozen model.

`setup_step` turns the model's variables (`checkpoints.variables`) into a
state, frozen variables and the jitted step: what the trainer and the
benchmark both run.
"""

from typing import Any, Callable, NamedTuple, Optional

import flax
import jax
import jax.numpy as jnp
import optax

from prompt_tuning import partitioning
from prompt_tuning.checkpoints import layout
from prompt_tuning.models import t5
from prompt_tuning.training import losses
from prompt_tuning.training import trainable as trainable_lib

Array = jax.Array
Batch = dict[str, Array]
BATCH_FEATURES = (
  "encoder_input_tokens",
  "decoder_input_tokens",
  "decoder_target_tokens",
  "decoder_loss_weights",
)


@flax.struct.dataclass
class TrainState:
  """What a step changes.

  Attributes:
    step: int32 scalar, steps taken.
    trainable: flat `{path: array}` of the variables that train.
    opt_state: the optimizer's state for them.
    rng: uint32 `[2]` raw key; step t's dropout key is `fold_in(rng, t)`.
  """

  step: Array
  trainable: dict[str, Array]
  opt_state: optax.OptState
  rng: Array


def create(trainable: dict[str, Array], tx: optax.GradientTransformation, seed: int) -> TrainState:
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    trainable=trainable,
    opt_state=tx.init(trainable),
    rng=jax.random.key_data(jax.random.key(seed)).astype(jnp.uint32),
  )


def state_shardings(
  abstract_state: TrainState,
  variable_shardings: dict[str, Any],
  partitioner: partitioning.Partitioner,
) -> TrainState:
  """Shardings of a (possibly abstract) state, given each trainable variable's sharding.

  An optimizer-state leaf keyed by a variable's path and of that variable's shape
  (e.g. Adafactor's unfactored `v`) is sharded like the variable; the rest
  (counts, factored row/column statistics) is replicated.
  """
  replicated = partitioner.replicated()
  shapes = {k: tuple(v.shape) for k, v in abstract_state.trainable.items()}

  def opt_sharding(path, leaf):
    keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
    for key in reversed(keys):
      if shapes.get(key) == tuple(leaf.shape):
        return variable_shardings[key]
    return replicated

  return TrainState(
    step=replicated,
    trainable={k: variable_shardings[k] for k in shapes},
    opt_state=jax.tree_util.tree_map_with_path(opt_sharding, abstract_state.opt_state),
    rng=replicated,
  )


def make_train_step(
  model: t5.Transformer,
  tx: optax.GradientTransformation,
  *,
  z_loss: float = 1e-4,
  label_smoothing: float = 0.0,
  loss_normalizing_factor: losses.NormalizingFactor = "NUM_REAL_TARGET_TOKENS",
  regularizer: Optional[Callable[[dict[str, Array]], tuple[Array, dict]]] = None,
) -> Callable[[TrainState, dict[str, Array], Batch], tuple[TrainState, dict]]:
  """`train_step(state, frozen, batch) -> (state, metrics)`, pure, to be jitted.

  Args:
    model: the (prompted) model.
    tx: the optimizer over `state.trainable`.
    z_loss: z-loss coefficient.
    label_smoothing: label smoothing.
    loss_normalizing_factor: see `losses`.
    regularizer: `(trainable) -> (term, metrics)`: the term is added to the loss (which
      the `loss` metric includes), its metrics join the step's (e.g. `wayward.Wayward`).

  Returns:
    The step. `batch` has seqio's encoder-decoder features (`BATCH_FEATURES`);
    metrics are scalars: loss, z_loss, token accuracy, target tokens, the
    global norm of the trainable variables' update and of the prompt.
  """

  def train_step(state: TrainState, frozen: dict[str, Array], batch: Batch):
    dropout_rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

    def loss_fn(train):
      logits = model.apply(
        trainable_lib.merge(train, frozen),
        batch["encoder_input_tokens"],
        batch["decoder_input_tokens"],
        enable_dropout=True,
        rngs={"dropout": dropout_rng},
      )
      loss, z, weight_sum = losses.weighted_cross_entropy(
        logits,
        batch["decoder_target_tokens"],
        batch["decoder_loss_weights"],
        label_smoothing,
        z_loss,
        loss_normalizing_factor,
      )
      accuracy = losses.token_accuracy(
        logits, batch["decoder_target_tokens"], batch["decoder_loss_weights"]
      )
      aux = {"z_loss": z, "accuracy": accuracy, "target_tokens": weight_sum}
      if regularizer is not None:
        term, more = regularizer(train)
        loss = loss + term
        aux.update(more)
      return loss, aux

    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.trainable)
    updates, opt_state = tx.update(grads, state.opt_state, state.trainable)
    new_trainable = optax.apply_updates(state.trainable, updates)
    prompts = [v for k, v in new_trainable.items() if layout.is_prompt(k)]
    metrics = {
      "loss": loss,
      **aux,
      "update_norm": optax.global_norm(updates),
      "prompt_norm": optax.global_norm(prompts) if prompts else jnp.zeros(()),
    }
    return state.replace(step=state.step + 1, trainable=new_trainable, opt_state=opt_state), metrics

  return train_step


def make_eval_step(
  model: t5.Transformer, *, z_loss: float = 1e-4, label_smoothing: float = 0.0
) -> Callable[..., dict[str, Array]]:
  """`eval_step(trainable, frozen, batch) -> sums`, teacher-forced, without dropout.

  Returns sums over the batch's real target tokens (`loss`, `z_loss`,
  `correct`, `tokens`), so a split's metrics are sums over its batches divided
  by its token count, whatever the batch padding.
  """

  def eval_step(trainable: dict[str, Array], frozen: dict[str, Array], batch: Batch):
    logits = model.apply(
      trainable_lib.merge(trainable, frozen),
      batch["encoder_input_tokens"],
      batch["decoder_input_tokens"],
    )
    weights = batch["decoder_loss_weights"].astype(jnp.float32)
    loss, z, tokens = losses.weighted_cross_entropy(
      logits, batch["decoder_target_tokens"], weights, label_smoothing, z_loss, None
    )
    correct = jnp.sum((jnp.argmax(logits, -1) == batch["decoder_target_tokens"]) * weights)
    return {"loss": loss, "z_loss": z, "correct": correct, "tokens": tokens}

  return eval_step


def jit_eval_step(
  eval_step: Callable,
  partitioner: partitioning.Partitioner,
  shardings_of_state: TrainState,
  frozen_shardings: dict[str, Any],
) -> Any:
  """Jits `make_eval_step`'s step with the train step's shardings."""
  batch = {name: partitioner.batch_sharding() for name in BATCH_FEATURES}
  return jax.jit(
    eval_step,
    in_shardings=(shardings_of_state.trainable, frozen_shardings, batch),
    out_shardings=partitioner.replicated(),
  )


def jit_train_step(
  train_step: Callable,
  partitioner: partitioning.Partitioner,
  shardings_of_state: TrainState,
  frozen_shardings: dict[str, Any],
) -> Any:
  """Jits the step with explicit in/out shardings; the state is donated.

  Returns:
    The jitted step; call it (or `.lower(...)` it) inside `partitioner.context()`.
  """
  batch = {name: partitioner.batch_sharding() for name in BATCH_FEATURES}
  return jax.jit(
    train_step,
    in_shardings=(shardings_of_state, frozen_shardings, batch),
    out_shardings=(shardings_of_state, partitioner.replicated()),
    donate_argnums=(0,),
  )


def compile_train_step(
  jitted: Any,
  partitioner: partitioning.Partitioner,
  state: TrainState,
  frozen: dict[str, Array],
  batch: Batch,
) -> tuple[Callable, str]:
  """Compiles the step once for these shapes; returns it and its memory analysis as text."""
  with partitioner.context():
    compiled = jitted.lower(state, frozen, batch).compile()
  analysis = compiled.memory_analysis()
  if analysis is None:
    return compiled, "memory analysis unavailable on this backend"
  fields = (
    "argument_size_in_bytes",
    "output_size_in_bytes",
    "temp_size_in_bytes",
    "alias_size_in_bytes",
    "generated_code_size_in_bytes",
  )
  text = ", ".join(
    f"{f.replace('_size_in_bytes', '')}={getattr(analysis, f, 0) / 2**20:.1f} MiB" for f in fields
  )
  return compiled, text


class StepSetup(NamedTuple):
  """What `setup_step` returns: the state, the frozen variables and the jitted step."""

  state: TrainState
  frozen: dict[str, Any]
  state_shardings: TrainState
  jitted: Any


def setup_step(
  model: t5.Transformer,
  part: partitioning.Partitioner,
  optimizer: optax.GradientTransformation,
  variables: Any,
  shardings: Any,
  what_trains: trainable_lib.WhatTrains,
  seed: int,
  **loss_options,
) -> StepSetup:
  """Splits the variables by what trains and builds the state and the sharded step.

  Args:
    model: the model.
    part: the partitioner.
    optimizer: over the trainable variables.
    variables, shardings: from `checkpoints.variables.init_variables`.
    what_trains: 'prompt', 'all', or regexes over variable paths.
    seed: seeds the dropout RNG of the state.
    **loss_options: z_loss, label_smoothing, loss_normalizing_factor.

  Returns:
    The fresh state (on its shardings), the frozen variables, the state's
    shardings (to restore a checkpoint onto) and the jitted, donated step.
  """
  train_vars, frozen = trainable_lib.partition(variables, what_trains)
  flat_shardings = trainable_lib.flatten(shardings)
  state = jax.jit(lambda t: create(t, optimizer, seed))(train_vars)
  shardings_of_state = state_shardings(state, flat_shardings, part)
  state = jax.device_put(state, shardings_of_state)
  jitted = jit_train_step(
    make_train_step(model, optimizer, **loss_options),
    part,
    shardings_of_state,
    {k: flat_shardings[k] for k in frozen},
  )
  return StepSetup(state, frozen, shardings_of_state, jitted)
