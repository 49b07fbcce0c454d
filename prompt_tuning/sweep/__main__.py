r"""Runs a sweep of training runs, or reports on one.

    python -m prompt_tuning.sweep --sweep_file=configs/sweeps/wordnet_mini.gin \
      --sweep_dir=/tmp/sweeps/mini [--executor=local|ray] [--max_parallel=N] [--dry_run] \
      [--gin.MACRO=VALUE ...] [--only=AXIS=LABEL[,LABEL...] ...] [--reuse_from=DIR,...]
    python -m prompt_tuning.sweep report --sweep_dir=/tmp/sweeps/mini \
      [--x=parameters,PROMPT_LENGTH] [--lines=init] [--panels=size] [--out_dir=DIR]
    python -m prompt_tuning.sweep archive --sweep_dir=/tmp/sweeps/mini \
      --archive_dir=results/mini [--merge=ARCHIVE,...]
    python -m prompt_tuning.sweep migrate --sweep_dir=results/mini [--dry_run] \
      [--from_commit=SHA]

Each point trains in its own MODEL_DIR under --sweep_dir, with its exact
`python -m prompt_tuning.train` command written beside it (command.sh).
Rerunning the same command skips the points that are done and resumes the
others from their checkpoints; `--reuse_from=DIR` copies the done points of
another sweep (or of an archive) that have a point's exact config instead of
running them again. `archive` writes a compact, portable copy of the results
(archive.py; docs/sweeps.md), which `report --out_dir=...` reads as it reads
the sweep directory. `migrate` carries the recorded config digests of a sweep
directory or an archive over to a change that renames what the configs bind,
checked point by point (migrate.py).
`--gin.MACRO=VALUE` sets the sweep file's own macros (the checkpoint paths of
the paper's grids). The sweep ends with
`report`, which writes results.csv, summary.md and plots/ into --sweep_dir; its
last line is `sweep: <done>/<total> points done results=<csv> plot=<png>`. Exit
status: 0, or 1 when a point is not done (a failed one's error line is in
summary.md), 130 when interrupted (rerun to resume).
"""

import sys
from typing import Sequence

from absl import flags

from prompt_tuning import cli  # pylint: disable=g-import-not-at-top
from prompt_tuning.sweep import archive as archive_lib  # pylint: disable=g-import-not-at-top
from prompt_tuning.sweep import driver  # pylint: disable=g-import-not-at-top
from prompt_tuning.sweep import migrate as migrate_lib  # pylint: disable=g-import-not-at-top
from prompt_tuning.sweep import report as report_lib  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep_file", None, "The sweep file (configs/sweeps/*.gin).")
flags.DEFINE_string(
  "sweep_dir",
  None,
  "Where the points' MODEL_DIRs and the results go "
  "(for --executor=ray: a path every node sees); report and archive: a "
  "sweep directory or an archive.",
)
flags.DEFINE_enum(
  "executor",
  "local",
  list(driver.EXECUTORS),
  "local: subprocesses of this host; ray: Ray tasks on RAY_ADDRESS's cluster "
  "(or a local Ray instance).",
)
flags.DEFINE_integer(
  "max_parallel",
  None,
  "Points running at once (local default: this "
  "host's cores / the sweep's cores per point; ray default: all, as Ray's "
  "resources allow).",
)
flags.DEFINE_bool(
  "dry_run",
  False,
  "Print the points and their commands; run nothing (migrate: check every point, write nothing).",
)
flags.DEFINE_multi_string(
  "only",
  [],
  "Run a slice of the grid: the points whose AXIS has "
  "one of the LABELs (AXIS=LABEL[,LABEL...]; repeat for more axes), "
  "e.g. --only=RANDOM_SEED=0. The sweep directory then holds that "
  "slice (a later run without --only adds the rest).",
)
flags.DEFINE_list(
  "reuse_from",
  [],
  "Sweep directories or archives whose done points this "
  "sweep copies instead of running again, where a point's config (the gin "
  "config the trainer parses, MODEL_DIR aside) and environment are the same: a "
  "figure's baseline points shared with another sweep.",
)
flags.DEFINE_list(
  "x",
  None,
  "report: the plots' x axes: 'parameters' and/or numeric axes "
  "(default: parameters when they vary, and each numeric axis).",
)
flags.DEFINE_list(
  "lines", None, "report: axes whose values make the lines (default: the other non-seed axes)."
)
flags.DEFINE_string("panels", None, "report: an axis whose values make side-by-side panels.")
flags.DEFINE_string(
  "out_dir",
  None,
  "report: where results.csv, summary.md and plots/ go "
  "(default: --sweep_dir for a sweep directory; required for an archive, "
  "which report never writes into).",
)
flags.DEFINE_string(
  "archive_dir",
  None,
  "archive: the archive to write or update (e.g. "
  "results/<name>; outside the sweep directory). An archive of the same "
  "sweep already there is updated: its points are kept, each with its "
  "done run.",
)
flags.DEFINE_list(
  "merge",
  [],
  "archive: archives (or sweep directories) of one sweep, e.g. "
  "of slices run with --only, merged into --archive_dir with --sweep_dir's; "
  "a point done in two with other evaluation values stops the merge.",
)

flags.DEFINE_string(
  "from_commit",
  None,
  "migrate: the commit whose code computed the recorded digests (default: each point's "
  "own, as its status.json or provenance.json records it).",
)


def main(argv: Sequence[str]) -> None:
  command = argv[1:]
  if command not in ([], ["report"], ["archive"], ["migrate"]):
    raise ValueError(
      f"unexpected arguments {command}; the commands are `report`, `archive` and `migrate`"
    )
  if FLAGS.gin_file:
    raise ValueError(
      "--gin_file is for training runs; a sweep's gin files are in its sweep file (--sweep_file)"
    )
  if command == ["archive"]:
    result = archive_lib.archive(
      [FLAGS.sweep_dir] * bool(FLAGS.sweep_dir) + FLAGS.merge, FLAGS.archive_dir
    )
    print(
      f"archive: {result['done']}/{result['points']} points done in "
      f"{result['archive_dir']} ({result['bytes'] / 1024:.0f} KiB)"
    )
    return
  if command == ["migrate"]:
    if not FLAGS.sweep_dir:
      raise ValueError(
        "--sweep_dir is required: the sweep directory or archive whose digests to migrate"
      )
    result = migrate_lib.migrate(
      FLAGS.sweep_dir, dry_run=FLAGS.dry_run, from_commit=FLAGS.from_commit
    )
    print(
      f"migrate: {result['points'] + result['no_digest']} points in {FLAGS.sweep_dir}: "
      f"{result['migrated']} digests {'would be ' if FLAGS.dry_run else ''}carried over, "
      f"{result['unchanged']} already the current code's, {result['no_digest']} without a "
      "digest (left as they are)"
      + (
        "; run again without --dry_run to write them"
        if FLAGS.dry_run and result["migrated"]
        else ""
      )
    )
    return
  if not FLAGS.sweep_dir:
    raise ValueError("--sweep_dir is required: where the points' runs and the results go")
  options = {"x": FLAGS.x, "lines": FLAGS.lines, "panels": FLAGS.panels}
  if command == ["report"]:
    result = report_lib.report(FLAGS.sweep_dir, out_dir=FLAGS.out_dir, **options)
    plot = result["plots"][0] if result["plots"] else "none"
    print(
      f"sweep: {result['done']}/{result['total']} points done results={result['results']} "
      f"plot={plot}"
    )
    return
  if not FLAGS.sweep_file:
    raise ValueError("--sweep_file is required (e.g. configs/sweeps/wordnet_mini.gin)")
  status = driver.run(
    FLAGS.sweep_file,
    FLAGS.sweep_dir,
    overrides=FLAGS.gin_bindings,
    executor=FLAGS.executor,
    max_parallel=FLAGS.max_parallel,
    is_dry_run=FLAGS.dry_run,
    report_options=options,
    only=FLAGS.only,
    reuse_from=FLAGS.reuse_from,
  )
  sys.stdout.flush()
  sys.exit(status)


if __name__ == "__main__":
  cli.run(main)
