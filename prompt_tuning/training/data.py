"""seqio tasks and mixtures as deterministic, resumable batches for the trainer.

Inputs are converted for an encoder-decoder without packing. Lengths are those
of TASK_FEATURE_LENGTHS; the prompt adds P encoder positions on top of
`inputs`. The order of batches is a function of the seed alone, so a resumed
run skips the batches it already consumed and sees the same stream.
"""

import difflib
import importlib
from typing import Iterator, Mapping, Optional

import numpy as np
import seqio


def import_task_module(module: Optional[str]) -> None:
  """Imports MIXTURE_OR_TASK_MODULE so that its tasks register."""
  if not module:
    return
  try:
    importlib.import_module(module)
  except ImportError as e:
    raise ImportError(f"MIXTURE_OR_TASK_MODULE={module!r} does not import ({e}); pass a module "
                      "on the Python path that registers your seqio tasks") from None


def get_task_or_mixture(name: str):
  """The registered task or mixture, or an error listing close names."""
  if name in seqio.MixtureRegistry.names():
    return seqio.get_mixture_or_task(name)
  if name in seqio.TaskRegistry.names():
    return seqio.get_mixture_or_task(name)
  known = list(seqio.TaskRegistry.names()) + list(seqio.MixtureRegistry.names())
  close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
  hint = f"close names: {close}" if close else "set MIXTURE_OR_TASK_MODULE to the module that registers it"
  raise ValueError(f"no seqio task or mixture named {name!r}; {hint}")


def batches(name: str,
            task_feature_lengths: Mapping[str, int],
            batch_size: int,
            *,
            split: str = "train",
            seed: int = 0,
            shuffle: bool = True,
            num_epochs: Optional[int] = None,
            start: int = 0,
            shard_index: int = 0,
            num_shards: int = 1,
            use_cached: bool = False) -> Iterator[dict[str, np.ndarray]]:
  """Yields this host's batches of `batch_size // num_shards` examples, from batch `start`.

  Args:
    name: task or mixture.
    task_feature_lengths: e.g. `{'inputs': 128, 'targets': 8}` (without the prompt).
    batch_size: the global batch size.
    split: dataset split.
    seed: shuffle seed; the stream is a function of it.
    shuffle: shuffle examples.
    num_epochs: None repeats forever (training).
    start: number of batches already consumed (resume).
    shard_index, num_shards: this host's shard (seqio ShardInfo).
    use_cached: read the task's offline cache.
  """
  if batch_size % num_shards:
    raise ValueError(f"BATCH_SIZE={batch_size} is not divisible by the {num_shards} data shards")
  get_task_or_mixture(name)
  ds = seqio.get_dataset(
      name, dict(task_feature_lengths), seqio.EncDecFeatureConverter(pack=False),
      dataset_split=split, use_cached=use_cached, shuffle=shuffle, num_epochs=num_epochs,
      shard_info=seqio.ShardInfo(shard_index, num_shards), seed=seed,
      batch_size=batch_size // num_shards, verbose=False)
  if start:
    ds = ds.skip(start)
  for batch in ds.as_numpy_iterator():
    yield {k: np.asarray(v) for k, v in batch.items()}
