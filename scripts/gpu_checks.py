r"""The GPU checks of `shared/GPU.md`, in one command: numerics, step speed and MFU, PEFT, XXL, decoding.

Run on a machine with one CUDA GPU (no TensorFlow, seqio or gin needed). This is the driver;
each check is a worker script of its own (`gpu_smoke.py`, `gpu_train.py`,
`benchmark_decoding.py`), built on `t5_shapes.py`:

    python scripts/gpu_checks.py --out /tmp/gpu       # everything, in the order below
    python scripts/gpu_checks.py --out /tmp/gpu --only smoke,train --sizes base

Each check runs in a process of its own (so one that fails or runs out of memory
leaves the others their GPU) under its own time limit, and appends one JSON line
per result to `OUT/results.jsonl` as it finishes; `OUT/log.txt` has the workers'
output. The checks:

1. `smoke`: T5.1.1 Small shapes (random weights, 8+8 layers, vocabulary 32128),
   a 20-token prompt, batch 8 x 64 inputs, 8 targets, no dropout. The same
   float32 weights (written by the CPU worker, read by the GPU one) run the
   model's forward and the trainer's prompt-tuning step (`train_state.setup_step`,
   Adafactor 0.3) on the CPU in float32 and on the GPU in float32 and in
   bfloat16 activations; the logits, the loss, the prompt's gradient and the
   prompt after one step are compared with the CPU's.
2. `train`: the trainer's step at T5.1.1 Base / Large / XL shapes (random weights
   stored in bfloat16, bfloat16 activations, scanned layers, dropout 0.1), batch
   32, 512 input tokens + a 100-token prompt, 16 targets: ms/step, tokens/s and
   MFU: `prompt_tuning.models.flops.prompt_step_flops` (model FLOPs by hand,
   recomputation not counted; tests/models/test_flops.py checks it against the
   step's jaxpr) over the step
   time and the GPU's dense bfloat16 peak. XLA's cost analysis is recorded too
   (`xla_flops`) but is no measure of the step: it counts a scanned layer once,
   and on the GPU it counted 2% (Base) to 0.2% (XXL) of the step. Then Hugging Face PEFT's
   prompt tuning of transformers' T5 at the same shapes (bfloat16 weights,
   Adafactor at 0.3, `loss.backward()`; transformers' default `use_cache=True`
   unless `--peft_use_cache=false`), in its own process after ours (the two do
   not fit on the GPU together at XL).
3. `xxl`: the step at T5.1.1 XXL shapes (11B, bfloat16 weights, scanned layers,
   rematerialized 'minimal' and 'full'): XLA's memory analysis of the compiled
   step, whether it fits 80 GB, and its step time.
4. `decode`: greedy decoding with a prompt, this project's Predictor against
   transformers' `generate()` on the same weights (T5.1.1 Base shapes, bfloat16,
   batch 32, 128 inputs + 100 prompt tokens, 32 new tokens).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(SCRIPTS)
sys.path.insert(0, SCRIPTS)

import gpu_smoke  # noqa: E402  pylint: disable=wrong-import-position
import gpu_train  # noqa: E402  pylint: disable=wrong-import-position

SCRATCH = os.path.join(os.environ.get("TMPDIR", "/tmp"), "gpu_checks")
_DEADLINE = float("inf")  # time.monotonic() by which the driver must be done


def _run_worker(out, log, name, script, argv, timeout, env=None):
  """Runs one worker script; records and returns its results (its stdout's `RESULT {...}`
  lines, or its JSON lines)."""
  timeout = min(timeout, _DEADLINE - time.monotonic())
  if timeout < 30:
    _record(out, [{"check": name, "error": "skipped: the --budget_s was spent"}])
    return []
  cmd = [sys.executable, os.path.join(SCRIPTS, script), *argv]
  full_env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
  full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
  start = time.perf_counter()
  with open(log, "a") as logf:
    logf.write(f"\n=== {name}: {' '.join(cmd)}\n")
    logf.flush()
    try:
      proc = subprocess.run(
        cmd, env=full_env, stdout=subprocess.PIPE, stderr=logf, text=True, timeout=timeout
      )
      rc, stdout = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as e:
      rc = "timeout"
      stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    logf.write(stdout)
  records = []
  for line in stdout.splitlines():
    line = line.removeprefix("RESULT ")
    if line.startswith("{"):
      records.append(json.loads(line))
  if rc != 0:
    records.append(
      {"check": name, "error": f"exit {rc} after {time.perf_counter() - start:.0f} s; see log.txt"}
    )
  _record(out, records)
  return records


def _record(out, records):
  with open(os.path.join(out, "results.jsonl"), "a") as f:
    for r in records:
      f.write(json.dumps(r) + "\n")
  for r in records:
    print(json.dumps(r), flush=True)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], parents=[gpu_train.parser()])
  parser.add_argument("--out", required=True)
  parser.add_argument("--scratch", default=SCRATCH, help="the smoke check's arrays")
  parser.add_argument("--only", default="smoke,train,xxl,decode")
  parser.add_argument("--sizes", default="base,large,xl")
  parser.add_argument("--smoke_size", default="small")
  parser.add_argument("--decode_size", default="base")
  parser.add_argument(
    "--worker",
    choices=("ours", "peft"),
    help="run one side of the train check here, in this process (gpu_train.py --side)",
  )
  parser.add_argument(
    "--budget_s",
    type=float,
    default=570,
    help="the driver's wall-clock budget: each check's limit is cut to "
    "what is left, and a check is skipped when under 30 s is left",
  )
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  if args.worker:
    args.side = args.worker
    _record(args.out, (gpu_train.ours if args.worker == "ours" else gpu_train.peft)(args))
    return
  shutil.rmtree(args.scratch, ignore_errors=True)  # no earlier run's arrays to compare
  os.makedirs(args.scratch)
  global _DEADLINE
  _DEADLINE = time.monotonic() + args.budget_s
  log = os.path.join(args.out, "log.txt")
  checks = args.only.split(",")
  jax_env = {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.92"}
  run = lambda name, script, argv, timeout, env=None: _run_worker(
    args.out, log, name, script, argv, timeout, env
  )
  if "smoke" in checks:
    smoke = ["--size", args.smoke_size, "--scratch", args.scratch]
    run(
      "smoke_cpu",
      "gpu_smoke.py",
      ["--platform", "cpu", "--dtype", "float32", *smoke],
      240,
      {"JAX_PLATFORMS": "cpu"},
    )
    for dtype in ("float32", "bfloat16"):
      run(
        f"smoke_cuda_{dtype}",
        "gpu_smoke.py",
        ["--platform", "cuda", "--dtype", dtype, *smoke],
        180,
        jax_env,
      )
    _record(args.out, gpu_smoke.compare(args.scratch))
  if "train" in checks:
    for size in args.sizes.split(","):
      run(f"train_ours_{size}", "gpu_train.py", ["--side", "ours", "--size", size], 300, jax_env)
      run(f"train_peft_{size}", "gpu_train.py", ["--side", "peft", "--size", size], 300)
  xxl = lambda remat: run(
    f"xxl_{remat}",
    "gpu_train.py",
    ["--side", "ours", "--size", "xxl", "--remat", remat, "--warmup", "2", "--steps", "5"],
    360,
    jax_env,
  )
  if "xxl" in checks:
    xxl("full")  # the least memory: the one most likely to fit 80 GB
  if "decode" in checks:
    run(
      "decode",
      "benchmark_decoding.py",
      [
        "--size",
        args.decode_size,
        "--dtype",
        "bfloat16",
        "--input_length",
        "128",
        "--new_tokens",
        "32",
        "--rounds",
        "5",
      ],
      300,
      {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
    )
  if "xxl" in checks:
    xxl("minimal")  # faster (no recomputed matmuls) if it fits


if __name__ == "__main__":
  sys.exit(main())
