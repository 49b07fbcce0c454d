"""The mesh, the logical rules and sharded init on 8 simulated CPU devices."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from prompt_tuning import partitioning
from tests.helpers import hf_reference

CFG = hf_reference.TINY


def test_mesh_takes_model_axis_from_num_partitions():
  assert len(jax.devices()) == 8
  for parts, shape in ((1, (8, 1)), (2, (4, 2)), (4, (2, 4)), (8, (1, 8))):
    mesh = partitioning.create_mesh(parts)
    assert (mesh.shape["data"], mesh.shape["model"]) == shape
  with pytest.raises(ValueError, match="NUM_PARTITIONS=3 must be a positive divisor of the 8"):
    partitioning.create_mesh(3)


@pytest.mark.parametrize("num_partitions", [2, 4])
def test_sharded_init_and_forward_equal_one_device(num_partitions):
  model = t5.Transformer(CFG, prompts.Prompt(4, CFG.emb_dim))
  rng = np.random.default_rng(0)
  inputs = hf_reference.random_tokens(rng, 8, 10, CFG.vocab_size)
  dec = rng.integers(0, CFG.vocab_size, (8, 5)).astype(np.int32)
  init = lambda key: model.init(key, jnp.ones((1, 1), jnp.int32), jnp.ones((1, 1), jnp.int32))
  # Jitted like sharded_init (eager init differs in the last bit: other fusion).
  one_device = jax.jit(lambda k: nn.meta.unbox(init(k)), device=jax.devices()[0])(jax.random.key(0))
  want = model.apply(one_device, inputs, dec)

  part = partitioning.Partitioner(num_partitions)
  variables, shardings = part.sharded_init(init, jax.random.key(0))
  p = variables["params"]
  assert p["encoder"]["layers_0"]["attention"]["query"]["kernel"].sharding.spec == P(None, "model")
  assert p["decoder"]["layers_0"]["mlp"]["wo"]["kernel"].sharding.spec == P("model", None)
  assert p["token_embedder"]["embedding"].sharding.spec == P("model", None)
  assert p["encoder"]["encoder_norm"]["scale"].sharding.spec == P(None)
  assert variables["prompt"]["encoder"]["prompt"]["prompt"].sharding.spec == P(None, None)
  # Each device holds only its slice of a model-parallel kernel.
  kernel = p["encoder"]["layers_0"]["mlp"]["wi_0"]["kernel"]
  assert {s.data.shape for s in kernel.addressable_shards} == {
    (CFG.emb_dim, CFG.mlp_dim // num_partitions)
  }
  # The seed gives the same weights whatever the mesh (a resumed run re-creates them).
  jax.tree_util.tree_map(np.testing.assert_array_equal, variables, one_device)

  with part.context():
    got = jax.jit(
      model.apply, in_shardings=(shardings, part.batch_sharding(), part.batch_sharding())
    )(variables, inputs, dec)
  assert got.sharding.spec[0] == "data"
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=0, atol=1e-5)
