"""A (data, model) device mesh, t5x's logical axis rules, and sharded initialization.

Model code names logical axes (`embed`, `mlp`, `heads`, ...); this module alone
maps them onto the mesh. The data axis splits the batch; the model axis splits
the wide dimensions (vocab, mlp, heads, joined_kv); embed and the prompt are
replicated. Parameters are created already sharded: `jax.eval_shape` gives the
abstract tree with its axis names, the names give shardings, and a jitted init
with those `out_shardings` materializes each shard only on its devices.
"""

import contextlib
from typing import Any, Callable, Optional, Sequence

import flax.linen as nn
import jax
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
import numpy as np

DATA_AXIS = "data"
MODEL_AXIS = "model"
LogicalRules = Sequence[tuple[str, Optional[str]]]


def standard_logical_axis_rules() -> tuple[tuple[str, Optional[str]], ...]:
  """t5x's standard rules (1-D model parallelism), with the prompt replicated."""
  return (
    ("batch", DATA_AXIS),
    ("vocab", MODEL_AXIS),
    ("mlp", MODEL_AXIS),
    ("heads", MODEL_AXIS),
    ("joined_kv", MODEL_AXIS),
    ("kv", None),
    ("embed", None),
    ("length", None),
    ("relpos_buckets", None),
    ("layers", None),
    ("prompt", None),
    ("prompt_embed", None),
  )


def create_mesh(num_partitions: int = 1, devices: Optional[Sequence[Any]] = None) -> Mesh:
  """A `(data, model)` mesh: `model` has NUM_PARTITIONS devices, `data` the rest.

  Args:
    num_partitions: size of the model axis.
    devices: devices to use (all of `jax.devices()` by default).

  Raises:
    ValueError: if `num_partitions` does not divide the number of devices.
  """
  devices = list(jax.devices() if devices is None else devices)
  if num_partitions < 1 or len(devices) % num_partitions:
    raise ValueError(
      f"NUM_PARTITIONS={num_partitions} must be a positive divisor of the {len(devices)} devices"
    )
  shape = (len(devices) // num_partitions, num_partitions)
  try:
    grid = mesh_utils.create_device_mesh(shape, devices)
  except (AssertionError, NotImplementedError, ValueError):
    grid = np.asarray(devices).reshape(shape)  # No topology-aware layout for this platform.
  return Mesh(grid, (DATA_AXIS, MODEL_AXIS))


class Partitioner:
  """Owns the mesh and the rules; turns logical names into shardings.

  Attributes:
    mesh: the `(data, model)` mesh.
    rules: logical axis name -> mesh axis (or None: replicated).
  """

  def __init__(
    self,
    num_partitions: int = 1,
    rules: Optional[LogicalRules] = None,
    devices: Optional[Sequence[Any]] = None,
  ):
    self.mesh = create_mesh(num_partitions, devices)
    self.rules = tuple(rules) if rules is not None else standard_logical_axis_rules()

  @property
  def data_size(self) -> int:
    return self.mesh.shape[DATA_AXIS]

  @contextlib.contextmanager
  def context(self):
    """Mesh and rules for tracing: activations' logical constraints resolve here."""
    with jax.set_mesh(self.mesh), nn.logical_axis_rules(self.rules):
      yield

  def shardings(self, boxed_tree: Any) -> Any:
    """NamedShardings for a tree whose leaves carry logical names (`nn.Partitioned`)."""
    specs = nn.get_partition_spec(boxed_tree)
    return nn.logical_to_mesh_sharding(specs, self.mesh, self.rules)

  def sharding(self, *logical_axes: Optional[str]) -> NamedSharding:
    """The sharding of one array with the given logical axis names."""
    spec = nn.logical_to_mesh_axes(logical_axes, self.rules)
    return NamedSharding(self.mesh, spec)

  def batch_sharding(self, ndim: int = 2) -> NamedSharding:
    """`[batch, ...]` arrays: the batch split over the data axis."""
    return NamedSharding(self.mesh, PartitionSpec(DATA_AXIS, *([None] * (ndim - 1))))

  def global_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """This host's rows of the batch (its seqio shard) as global arrays split over `data`."""
    return {
      name: jax.make_array_from_process_local_data(self.batch_sharding(value.ndim), value)
      for name, value in local_batch.items()
    }

  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  def sharded_init(self, init_fn: Callable[..., Any], *args) -> tuple[Any, Any]:
    """Runs `init_fn(*args)` so that each variable is born on its shards.

    Args:
      init_fn: returns a variable tree boxed with logical names (a flax `init`).
      *args: its arguments (e.g. an RNG key).

    Returns:
      `(variables, shardings)`, both unboxed trees of the same structure.
    """
    abstract = jax.eval_shape(init_fn, *args)
    shardings = self.shardings(abstract)
    with self.context():
      variables = jax.jit(lambda *a: nn.meta.unbox(init_fn(*a)), out_shardings=shardings)(*args)
    return variables, shardings
