r"""Pretrains the WordNet family: four T5.1.1-shaped models, XS to L, made alike.

The miniature of T5.1.1 Small -> XXL for the scaling study (docs/scaling.md):
width, depth, heads and MLP width grow together (configs/models/wordnet_family/).

    size  d_model  d_ff  heads x d_kv  layers (enc = dec)  parameters
    xs       24      48     2 x 12            2              0.23M
    s        48     128     3 x 16            3              0.60M
    m        96     256     4 x 24            4              1.85M
    l       192     576     6 x 32            4              6.05M

As T5 did, every size gets the same recipe and token budget, the bundled tiny
model's (scripts/build_wordnet_tiny_model.py, whose docstring has the
measurements behind it), on the bundled WordNet corpus at 64 input / 16 target
tokens and batch 32:

1. span corruption from scratch, parameter-scaled Adafactor at 0.03, 4000 steps;
2. span corruption at 0.01 (a constant 0.03 makes the token embedding grow
   until a prompt can hardly steer the model), 6000 steps: the
   span-corruption-only checkpoint (the paper's Figure 3c);
3. LM adaptation (prefix LM) at 0.01, 1000 steps: the LM-adapted checkpoint.

Both checkpoints of each size are written as Hugging Face directories in
bfloat16 (how T5's checkpoints ship; 4 bytes a parameter for the pair) under
prompt_tuning/data/wordnet_family/<size>/{span_corruption,lm_adapted}/, with
`family.json` beside them: each size's shape, parameter count, final training
loss of each stage and the token embedding's norms.

    python scripts/build_wordnet_family.py [--sizes=xs,s,m,l] [--work_dir=build/wordnet_family]

Rerunning resumes: each stage is a trainer run in <work_dir>/<size>/<stage>
that continues from its last checkpoint (every 500 steps) or, when done, only
reloads it. Sizes run side by side, largest first, one per core
(--parallel, default all cores); each run is pinned to one core
(PROMPT_TUNING_CPU_CORES=1), because XLA's CPU numbers depend on the number
of cores a process uses: pinned, a rebuild writes the same bytes (on another
CPU, XLA may compile other kernels). A work_dir holds one recipe: the script
refuses to resume one made with other steps or rates.

On this project's 2-core machine the defaults took 95 minutes (2026-11-25; L
alone on one core; M, S and XS in turn on the other; tests ran beside it for
part of the time). Checked on that machine: two builds of XS from nothing at
reduced steps (`--sizes=xs --span_corruption_steps=100 --anneal_steps=60
--lm_adapt_steps=40`) wrote identical files (sha256 of both checkpoints and
family.json), and so did a third whose first stage was stopped by SIGTERM at
step 60 and resumed by rerunning the command. Rerunning the finished default
build only reloaded each stage and wrote the same family.json.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys

import numpy as np

from prompt_tuning.checkpoints import convert

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(REPO, "prompt_tuning", "data", "wordnet_family")
SIZES = ("xs", "s", "m", "l")  # smallest first
LENGTHS = {"inputs": 64, "targets": 16}
REAL_ROWS = 4100  # the vocabulary's 4000 pieces + 100 sentinels; the rest is padding


def model_file(size: str) -> str:
  return f"configs/models/wordnet_family/{size}.gin"


def stages(args) -> list[dict]:
  """The recipe: each stage's name, run file, task, steps, rate and the stage it continues."""
  return [
    {
      "name": "span_corruption_1",
      "run": "configs/runs/pretrain.gin",
      "task": "wordnet_span_corruption",
      "steps": args.span_corruption_steps,
      "learning_rate": args.learning_rate,
      "from": None,
    },
    {
      "name": "span_corruption_2",
      "run": "configs/runs/pretrain.gin",
      "task": "wordnet_span_corruption",
      "steps": args.anneal_steps,
      "learning_rate": args.anneal_learning_rate,
      "from": "span_corruption_1",
    },
    {
      "name": "lm_adapt",
      "run": "configs/runs/lm_adapt.gin",
      "task": "wordnet_prefix_lm",
      "steps": args.lm_adapt_steps,
      "learning_rate": args.anneal_learning_rate,
      "from": "span_corruption_2",
    },
  ]


# What each shipped checkpoint is: the stage whose result it holds.
EXPORTS = {"span_corruption": "span_corruption_2", "lm_adapted": "lm_adapt"}


def train_command(model: str, model_dir: str, stage: dict, initial, batch_size: int) -> list[str]:
  return [
    sys.executable,
    "-m",
    "prompt_tuning.train",
    f"--gin_file={model}",
    f"--gin_file={stage['run']}",
    f"--gin.MODEL_DIR='{model_dir}'",
    f"--gin.MIXTURE_OR_TASK_NAME='{stage['task']}'",
    "--gin.MIXTURE_OR_TASK_MODULE='prompt_tuning.data.tasks'",
    f"--gin.TASK_FEATURE_LENGTHS={LENGTHS}",
    f"--gin.TRAIN_STEPS={stage['steps']}",
    f"--gin.INITIAL_CHECKPOINT_PATH={initial!r}",
    f"--gin.BATCH_SIZE={batch_size}",
    f"--gin.LEARNING_RATE={stage['learning_rate']}",
  ]


def _run(cmd: list[str], log: str) -> None:
  env = dict(os.environ, PROMPT_TUNING_CPU_CORES="1")
  with open(log, "a") as f:
    f.write(" ".join(cmd) + "\n")
    f.flush()
    done = subprocess.run(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
  if done.returncode:
    raise RuntimeError(f"{' '.join(cmd[:4])} ... exited {done.returncode}; see {log}")


def build(size: str, model: str, args, output: str) -> None:
  """Runs (or resumes) the recipe's stages for one size, then writes its checkpoints."""
  work = os.path.join(args.work_dir, size)
  os.makedirs(work, exist_ok=True)
  for stage in stages(args):
    initial = os.path.join(work, stage["from"]) if stage["from"] else None
    model_dir = os.path.join(work, stage["name"])
    _run(
      train_command(model, model_dir, stage, initial, args.batch_size),
      os.path.join(work, stage["name"] + ".log"),
    )
    print(f"build_wordnet_family: {size} {stage['name']} done", flush=True)
  for name, stage in EXPORTS.items():
    _run(
      [
        sys.executable,
        "scripts/convert_checkpoint.py",
        f"--input={os.path.join(work, stage)}",
        f"--output={os.path.join(output, name)}",
        "--to=huggingface",
        "--dtype=bfloat16",
      ],
      os.path.join(work, "export.log"),
    )


def final_loss(model_dir: str, last: int = 10) -> float:
  """The mean training loss over the stage's last `last` logged steps (metrics.jsonl)."""
  losses = []
  with open(os.path.join(model_dir, "metrics.jsonl")) as f:
    for line in f:
      record = json.loads(line)
      if "train/loss" in record:
        losses.append(record["train/loss"])
  if not losses:
    raise ValueError(f"{model_dir}/metrics.jsonl has no training loss")
  return float(np.mean(losses[-last:]))


def embedding_norms(checkpoint_dir: str) -> dict[str, float]:
  """The input embedding's and logits layer's norms over the vocabulary's real rows."""
  weights = convert.read_all(checkpoint_dir)
  out = {"parameters": int(sum(w.size for w in weights.values()))}
  for table, name in (
    (weights["token_embedder/embedding"], "embedding"),
    (weights["decoder/logits_dense/kernel"].T, "logits"),
  ):
    rows = table[:REAL_ROWS].astype(np.float32)
    out[f"{name}_rms"] = float(np.sqrt(np.mean(rows**2)))
    out[f"{name}_mean_row_norm"] = float(np.mean(np.linalg.norm(rows, axis=1)))
  return out


def summarize(sizes, recipe, args) -> dict:
  """family.json: per size its architecture and, per shipped checkpoint, losses and norms."""
  family = {"recipe": recipe, "sizes": {}}
  for size in sizes:
    out = os.path.join(args.output, size)
    with open(os.path.join(out, "lm_adapted", "config.json")) as f:
      config = json.load(f)
    entry = {
      "architecture": {
        k: config[k]
        for k in ("d_model", "d_ff", "num_heads", "d_kv", "num_layers", "num_decoder_layers")
      }
    }
    for name, stage in EXPORTS.items():
      entry[name] = {
        "final_train_loss": final_loss(os.path.join(args.work_dir, size, stage)),
        **embedding_norms(os.path.join(out, name)),
      }
    entry["span_corruption_1_final_train_loss"] = final_loss(
      os.path.join(args.work_dir, size, "span_corruption_1")
    )
    entry["parameters"] = entry["lm_adapted"].pop("parameters")
    entry["span_corruption"].pop("parameters")
    family["sizes"][size] = entry
  return family


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default=",".join(SIZES))
  parser.add_argument("--work_dir", default=os.path.join(REPO, "build", "wordnet_family"))
  parser.add_argument("--output", default=OUTPUT)
  parser.add_argument("--span_corruption_steps", type=int, default=4000)
  parser.add_argument("--anneal_steps", type=int, default=6000)
  parser.add_argument("--lm_adapt_steps", type=int, default=1000)
  parser.add_argument("--learning_rate", type=float, default=0.03)
  parser.add_argument("--anneal_learning_rate", type=float, default=0.01)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument(
    "--parallel",
    type=int,
    default=len(os.sched_getaffinity(0)),
    help="sizes built at once, one core each",
  )
  args = parser.parse_args(argv)
  args.work_dir, args.output = os.path.abspath(args.work_dir), os.path.abspath(args.output)
  sizes = list(dict.fromkeys(s for s in args.sizes.split(",") if s))
  if not sizes or set(sizes) - set(SIZES):
    parser.error(f"--sizes={args.sizes!r}: give sizes of the family, {','.join(SIZES)}")
  if args.parallel < 1:
    parser.error(f"--parallel={args.parallel}: give a number of cores, 1 or more")
  # A resumed stage continues its run; a stage done is only reloaded. So a work_dir
  # holds one recipe: another one (other steps or rates) needs its own work_dir.
  # (as JSON reads it back, so that it compares equal to a recipe.json or family.json)
  recipe = json.loads(
    json.dumps(
      {"stages": stages(args), "batch_size": args.batch_size, "task_feature_lengths": LENGTHS}
    )
  )
  recipe_file = os.path.join(args.work_dir, "recipe.json")
  if os.path.exists(recipe_file):
    with open(recipe_file) as f:
      if json.load(f) != recipe:
        parser.error(
          f"{args.work_dir} holds runs of another recipe ({recipe_file}); give "
          "this one a new --work_dir"
        )
  os.makedirs(args.work_dir, exist_ok=True)
  with open(recipe_file, "w") as f:
    json.dump(recipe, f, indent=2, sort_keys=True)
  with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool:
    jobs = {
      pool.submit(build, size, model_file(size), args, os.path.join(args.output, size)): size
      for size in sorted(sizes, key=SIZES.index, reverse=True)
    }
    failed = []
    for job in concurrent.futures.as_completed(jobs):
      if job.exception() is not None:
        failed.append(jobs[job])
        print(f"build_wordnet_family: {jobs[job]} failed: {job.exception()}", file=sys.stderr)
  # family.json describes the checkpoints written, those of failed sizes excepted.
  built = [s for s in SIZES if s in sizes and s not in failed]
  if not built:
    return 1
  family = summarize(built, recipe, args)
  path = os.path.join(args.output, "family.json")
  if os.path.exists(path):  # keep the sizes not built this time
    with open(path) as f:
      before = json.load(f)
    if before["recipe"] == family["recipe"]:
      family["sizes"] = {**before["sizes"], **family["sizes"]}
  with open(path, "w") as f:
    json.dump(family, f, indent=2, sort_keys=True)
    f.write("\n")
  print(json.dumps({s: e["parameters"] for s, e in family["sizes"].items()}))
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
