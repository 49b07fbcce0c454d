"""seqio tasks and mixtures as deterministic, resumable batches for the trainer.

Inputs are converted for an encoder-decoder without packing. Lengths are those
of TASK_FEATURE_LENGTHS; the prompt adds P encoder positions on top of
`inputs`. The order of batches is a function of the seed alone, so a resumed
run skips the batches it already consumed and sees the same stream.
"""

from typing import Iterator, Mapping

import numpy as np
import seqio
import tensorflow as tf

from prompt_tuning.data import registry


def batches(
  name: str,
  task_feature_lengths: Mapping[str, int],
  batch_size: int,
  *,
  split: str = "train",
  seed: int = 0,
  start: int = 0,
  shard: seqio.ShardInfo = seqio.ShardInfo(0, 1),
  use_cached: bool = False,
  one_pass: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
  """Yields this host's batches of `batch_size // shard.num_shards` examples, from batch `start`.

  Args:
    name: task or mixture.
    task_feature_lengths: e.g. `{'inputs': 128, 'targets': 8}` (without the prompt).
    batch_size: the global batch size.
    split: dataset split.
    seed: shuffle seed; the stream is a function of it.
    start: number of batches already consumed (resume).
    shard: this host's shard of the data.
    use_cached: read the task's offline cache.
    one_pass: an evaluation's pass: the split once, in order, a last partial batch
      padded with all-zero examples (zero loss weight) to the full size; otherwise
      training's stream: shuffled, repeated forever.
  """
  num_shards = shard.num_shards
  if batch_size % num_shards:
    raise ValueError(f"BATCH_SIZE={batch_size} is not divisible by the {num_shards} data shards")
  registry.get_task_or_mixture(name)
  ds = seqio.get_dataset(
    name,
    dict(task_feature_lengths),
    seqio.EncDecFeatureConverter(pack=False),
    dataset_split=split,
    use_cached=use_cached,
    shuffle=not one_pass,
    num_epochs=1 if one_pass else None,
    shard_info=shard,
    seed=seed,
    # seqio batches with drop_remainder: an evaluation's last partial batch would be lost.
    batch_size=None if one_pass else batch_size // num_shards,
    verbose=False,
  )
  if one_pass:
    ds = ds.batch(batch_size // num_shards, drop_remainder=False)
  if start:
    ds = ds.skip(start)
  # Without tf.data's autotuning: its optimization thread can hold up the
  # iterator's deletion (the end of training) in a process pinned to one core
  # (a sweep's point); these pipelines are light anyway.
  options = tf.data.Options()
  options.autotune.enabled = False
  ds = ds.with_options(options)
  size = batch_size // num_shards
  for batch in ds.as_numpy_iterator():
    batch = {k: np.asarray(v) for k, v in batch.items()}
    if one_pass:
      batch = {
        k: np.pad(v, [(0, size - len(v))] + [(0, 0)] * (v.ndim - 1)) for k, v in batch.items()
      }
    yield batch
