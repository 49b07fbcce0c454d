"""Random variables for a test's model, the frozen params made once per config and seed.

Every model of one config has the same params from one seed: a prompt method's variables
are in their own collection (`prompt`), and flax draws each module's randomness from its
own path. So the params are made once per (config, seed) and each model's own variables
are initialized alone: the params' random init, unused there, drops out of that program.
A jitted `model.init` of the whole model compiles every weight's random init again (some
8 s on this machine), once per model.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

_PARAMS = {}  # (config, seed) -> params


def init_variables(model, inputs=None, decoder_inputs=None, seed: int = 0) -> dict:
  """`jax.jit(model.init)(jax.random.key(seed), inputs, decoder_inputs)`, unboxed, with
  the params shared by every model of `model.config` (inputs: [1, 3] and [1, 2] ones)."""
  inputs = jnp.ones((1, 3), jnp.int32) if inputs is None else inputs
  decoder_inputs = jnp.ones((1, 2), jnp.int32) if decoder_inputs is None else decoder_inputs
  init = lambda k: model.init(k, inputs, decoder_inputs)
  key = jax.random.key(seed)
  which = (repr(model.config), seed)
  if which not in _PARAMS:
    _PARAMS[which] = nn.meta.unbox(jax.jit(lambda k: init(k)["params"])(key))
  others = jax.jit(lambda k: {c: v for c, v in init(k).items() if c != "params"})(key)
  return {"params": _PARAMS[which], **nn.meta.unbox(others)}
