r"""The paper's Table 3 in miniature: a sweep's seeds as prompt ensembles, or redrawn.

    python scripts/ensemble_table.py --sweep_dir=build/scaling/table3 \
      --json=results/table3/ensembles.json
    python scripts/ensemble_table.py --json=results/table3/ensembles.json

With --sweep_dir (a sweep directory or an archive of one, e.g. of
configs/sweeps/wordnet_scaling_table3.gin), each setting and task's seeds'
best-step prompts are evaluated as one ensemble, in one pass over the frozen
model per split of the points' TEST_SPLIT, with the points' own config
(prompt_tuning/sweep/ensembles.py); the results go to --json, the passes'
predictions and metrics to --eval_dir. Without --sweep_dir, --json is read and
nothing is evaluated. Both print the tables (markdown) and write the plot
(--plot; default: --json's path with .png).
"""

import argparse
import os
import sys

from prompt_tuning import host

if __name__ == "__main__":
  host.set_up_process()  # before JAX starts: this host's cores, as the entry points take them

from prompt_tuning.sweep import ensembles  # pylint: disable=g-import-not-at-top


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
    "--sweep_dir",
    help="the sweep directory or archive to evaluate (none: read --json, evaluate nothing)",
  )
  parser.add_argument(
    "--json", required=True, help="the results file, written with --sweep_dir, read without"
  )
  parser.add_argument("--plot", help="the PNG to write (default: --json's path with .png)")
  parser.add_argument(
    "--eval_dir",
    help="with --sweep_dir: where the passes write their "
    "predictions (default: build/ensembles/<the sweep directory's name>)",
  )
  args = parser.parse_args(argv)
  plot_path = args.plot or os.path.splitext(args.json)[0] + ".png"
  try:
    if args.sweep_dir:
      eval_dir = args.eval_dir or os.path.join(
        "build", "ensembles", os.path.basename(os.path.normpath(args.sweep_dir))
      )
      results = ensembles.evaluate(args.sweep_dir, eval_dir)
      ensembles.write_json(results, args.json)
    else:
      results = ensembles.read_json(args.json)
    sys.stdout.write(ensembles.markdown(results))
    sys.stdout.flush()
    plotted = ensembles.plot(results, plot_path)
  except (ValueError, FileNotFoundError) as e:  # a bad input: one line
    print(f"error: {e}", file=sys.stderr, flush=True)
    return 1
  print(
    f"ensembles: json={args.json} plot={plotted or 'none (no parameter counts)'}",
    file=sys.stderr,
    flush=True,
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
