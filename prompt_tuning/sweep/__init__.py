"""Sweeps: grids of gin-configured training runs, run locally or on Ray, summarized.

    python -m prompt_tuning.sweep --sweep_file=configs/sweeps/wordnet_mini.gin \
        --sweep_dir=/tmp/sweeps/mini [--executor=local|ray] [--max_parallel=N] [--dry_run]
    python -m prompt_tuning.sweep report --sweep_dir=/tmp/sweeps/mini
    python -m prompt_tuning.sweep archive --sweep_dir=/tmp/sweeps/mini --archive_dir=results/mini

The sweep file format is in `spec`; the directory layout in `points`; what
`report` writes in `report`; the compact, portable copy committed under results/
in `archive`.
"""

from prompt_tuning.sweep.spec import Sweep  # what sweep files bind: `sweep.Sweep`

__all__ = ["Sweep"]
