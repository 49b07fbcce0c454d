"""What the sweep tests share: a sweep file over the bundled tiny model, running it, and
reading what it wrote."""

import csv
import json
import os
import subprocess
import sys
import textwrap


from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import report as report_lib
from tests import conftest


REPO = str(conftest.REPO_ROOT)


HEADER = textwrap.dedent("""\
    from __gin__ import dynamic_registration
    from prompt_tuning import sweep
    from prompt_tuning.data import wordnet
    """)


BASE = textwrap.dedent("""\
    sweep.Sweep.gin_files = ['configs/models/wordnet_tiny_prompt.gin',
                             'configs/runs/prompt_finetune.gin',
                             'configs/prompts/from_class_labels.gin']
    sweep.Sweep.bindings = {
        'INITIAL_CHECKPOINT_PATH': @wordnet.bundled_checkpoint(),
        'MIXTURE_OR_TASK_MODULE': 'prompt_tuning.data.tasks',
        'MIXTURE_OR_TASK_NAME': 'wordnet_supersense',
        'TASK_FEATURE_LENGTHS': {'inputs': 48, 'targets': 4},
        'CLASS_LABELS': @wordnet.labels(),
        'PROMPT_LENGTH': 4,
        'DROPOUT_RATE': 0.0,
        'BATCH_SIZE': 8,
        'TRAIN_STEPS': 20,
        'EVAL_PERIOD': 10,
        'CHECKPOINT_PERIOD': 10,
        'evaluation.SplitConfig.num_examples': 64,
    }
    """)


LEARNING_RATES = "sweep.Sweep.axes = {'LEARNING_RATE': [0.3, 1.0, -1.0]}\n"


GOOD_POINTS = ("LEARNING_RATE=0.3", "LEARNING_RATE=1.0")


BAD_POINT = "LEARNING_RATE=-1.0"


def write_sweep_file(tmp_path, text, name="sweep.gin"):
  path = tmp_path / name
  path.write_text(HEADER + text)
  return str(path)


def run_sweep(sweep_file, sweep_dir, *flags, wait=True, env=None):
  cmd = [
    sys.executable,
    "-m",
    "prompt_tuning.sweep",
    f"--sweep_file={sweep_file}",
    f"--sweep_dir={sweep_dir}",
    *flags,
  ]
  process = subprocess.Popen(
    cmd,
    cwd=REPO,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env={**os.environ, **(env or {})},
    start_new_session=True,
  )
  if not wait:
    return process
  out, err = process.communicate(timeout=300)
  return process.returncode, out, err


def csv_rows(path):
  with open(path, newline="") as f:
    return {row["name"]: row for row in csv.DictReader(f)}


def reproducible(rows):
  """Every column but the measured ones (wall time, tokens/s)."""
  return {
    name: {k: v for k, v in row.items() if k not in report_lib.MEASURED}
    for name, row in rows.items()
  }


def mtimes(directory):
  return {
    os.path.join(root, f): os.stat(os.path.join(root, f)).st_mtime_ns
    for root, _, files in os.walk(directory)
    for f in files
  }


def fake_point(
  sweep_dir, name, axes, evals, status="done", params=(1000, 10), task="t", tests=None
):
  model_dir = os.path.join(sweep_dir, name)
  os.makedirs(model_dir)
  points_lib.write_json(
    os.path.join(model_dir, points_lib.POINT_FILE),
    {
      "sweep": "fake",
      "name": name,
      "index": len(os.listdir(sweep_dir)),
      "axes": [[a, str(v), v] for a, v in axes],
      "seed_axes": ["RANDOM_SEED"],
      "metric": None,
      "metric_mode": "max",
    },
  )
  points_lib.write_json(
    os.path.join(model_dir, points_lib.STATUS_FILE), {"status": status, "wall_s": 1.0}
  )
  with open(os.path.join(model_dir, "metrics.jsonl"), "w") as f:
    f.write(
      json.dumps(
        {
          "event": "start",
          "step": 0,
          "parameters_total": sum(params),
          "parameters_model": params[0],
          "parameters_trainable": params[1],
          "train_steps": 30,
        }
      )
      + "\n"
    )
    for i, (step, value) in enumerate(evals):
      f.write(json.dumps({"step": step, "train/loss": 1.0 / step}) + "\n")
      test = {} if tests is None else {f"eval/{task}/test/accuracy": tests[i]}
      f.write(
        json.dumps({"step": step, f"eval/{task}/accuracy": value, "eval/loss": 2.0, **test}) + "\n"
      )
    f.write('{"step": 30, "eval/t/acc')  # a line cut by a kill is skipped
