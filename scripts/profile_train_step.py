r"""Times this trainer's step alone, with the kernel time and page faults of each step.

The standalone figures in BENCHMARKS.md (the allocator and device settings)
come from this: the same step as `scripts/benchmark_train.py` (same flags),
under whatever XLA_FLAGS and GLIBC_TUNABLES the command line gives it.

    python scripts/profile_train_step.py --steps 5
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python scripts/profile_train_step.py
    XLA_FLAGS=--xla_force_host_platform_device_count=1 python scripts/profile_train_step.py
"""

import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmark_train  # pylint: disable=g-import-not-at-top,wrong-import-position


def main() -> None:
  argv = sys.argv[1:]
  steps = 3
  if "--steps" in argv:
    i = argv.index("--steps")
    steps = int(argv[i + 1])
    del argv[i : i + 2]
  args = benchmark_train._parse(argv)  # pylint: disable=protected-access
  ours = benchmark_train._Ours(args)  # pylint: disable=protected-access
  ours.step()  # warm-up
  walls = []
  for _ in range(steps):
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    ours.step()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    walls.append(wall)
    print(
      f"step {wall:.2f} s  user {after.ru_utime - before.ru_utime:.2f} s  "
      f"sys {after.ru_stime - before.ru_stime:.2f} s  "
      f"page faults {after.ru_minflt - before.ru_minflt}"
    )
  print(
    f"devices={ours.devices} GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r} "
    f"median_step_s={statistics.median(walls):.3f} "
    f"peak_rss_mib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}"
  )


if __name__ == "__main__":
  main()
