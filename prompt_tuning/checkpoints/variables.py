"""A model's variables, created at random or read from INITIAL_CHECKPOINT_PATH, on their shards.

What the trainer and the Predictor both start from: `init_variables` places
every variable by the partitioner's logical-axis rules, reading the frozen
model's `params` from a checkpoint in any format `readers` knows (each device
reads only its shard) while the other collections (the prompt) come from their
initializers.
"""

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from prompt_tuning import partitioning
from prompt_tuning.checkpoints import readers
from prompt_tuning.checkpoints import tree
from prompt_tuning.models import t5


def init_variables(
  model: t5.Transformer,
  part: partitioning.Partitioner,
  initial_checkpoint_path: Optional[str],
  seed: int,
) -> tuple[Any, Any]:
  """The model's variables, each created (or read) onto its shards.

  Args:
    model: the model.
    part: the partitioner whose mesh and rules place the variables.
    initial_checkpoint_path: the frozen model's checkpoint; None means a random
      model from `seed`.
    seed: the random init's seed.

  Returns:
    `(variables, shardings)`: nested `{'params': ..., 'prompt': ...}` trees.
  """
  init = lambda key: model.init(key, jnp.ones((1, 1), jnp.int32), jnp.ones((1, 1), jnp.int32))
  key = jax.random.key(seed)
  if initial_checkpoint_path is None:
    return part.sharded_init(init, key)
  abstract = jax.eval_shape(init, key)
  shardings = part.shardings(abstract)
  abstract = nn.meta.unbox(abstract)
  flat_shardings = tree.flatten(shardings["params"])
  targets = {
    name: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=flat_shardings[name])
    for name, leaf in tree.flatten(abstract["params"]).items()
  }
  params = readers.load_params(initial_checkpoint_path, targets)
  # The other collections (the prompt) from the seed; XLA drops the unused
  # random init of `params` from this computation.
  others = {c: s for c, s in shardings.items() if c != "params"}
  with part.context():
    variables = jax.jit(
      lambda k: {c: v for c, v in nn.meta.unbox(init(k)).items() if c != "params"},
      out_shardings=others,
    )(key)
  variables["params"] = tree.unflatten(params)
  return variables, shardings
