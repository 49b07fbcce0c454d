"""T5's relative-position buckets equal transformers' for every offset in -5000..5000."""

import numpy as np
import pytest
import torch
from transformers.models.t5 import modeling_t5

from prompt_tuning.models import attention

OFFSETS = np.arange(-5000, 5001, dtype=np.int32)


@pytest.mark.parametrize("num_buckets,max_distance", [(32, 128), (8, 20)])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["encoder", "decoder"])
def test_buckets_equal_transformers(num_buckets, max_distance, bidirectional):
  ours = np.asarray(
    attention.relative_position_bucket(
      OFFSETS, bidirectional=bidirectional, num_buckets=num_buckets, max_distance=max_distance
    )
  )
  theirs = modeling_t5.T5Attention._relative_position_bucket(  # pylint: disable=protected-access
    torch.from_numpy(OFFSETS.astype(np.int64)),
    bidirectional=bidirectional,
    num_buckets=num_buckets,
    max_distance=max_distance,
  ).numpy()
  np.testing.assert_array_equal(ours, theirs)
  # The offsets reach past max_distance and use every bucket (bidirectional: all but
  # the one for "0 positions after", which offset 0 takes on the other side).
  assert len(np.unique(theirs)) == (num_buckets - 1 if bidirectional else num_buckets)
