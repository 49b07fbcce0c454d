r"""Times this trainer's prompt-tuning step against Hugging Face PEFT on this CPU.

Both sides train a 100-token prompt on a randomly initialized T5.1.1 of the
same shape (Small by default: batch 32, 128 input tokens, 8 target tokens,
float32, dropout 0.1) with everything else frozen:

* ours: the step `prompt_tuning.training.trainer` runs (`train_state`'s jitted,
  donated step over the `prompt` collection, the paper's optax Adafactor,
  token cross-entropy with z-loss);
* PEFT: `T5ForConditionalGeneration` + `PromptTuningConfig(
  num_transformer_submodules=1)`, transformers' Adafactor at lr 0.3 (decay
  0.8, no parameter scaling, weight decay 1e-5), `loss.backward()`.

Each side runs in its own process (so each has its own peak RSS) and the two
take turns: round r runs `--steps_per_round` steps of one, then of the other,
alternating which goes first, after `--warmup` untimed steps each. Medians
over all timed steps are reported. The matmul peak is the best FLOP/s of a
square float32 matmul measured by both libraries in the same run; the step's
FLOPs are XLA's cost analysis of our compiled step (the same arithmetic on
both sides).

    python scripts/benchmark_train.py                 # the defaults above
    python scripts/benchmark_train.py --rounds 3 --batch_size 8 --size tiny

The last line is `speedup_vs_peft=<x> peak_rss_ratio_vs_peft=<y>` (ours / PEFT
for RSS; time ratio PEFT / ours for speed).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import t5_shapes

from prompt_tuning import host


def _parse(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", choices=t5_shapes.NAMES, default="small")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--input_length", type=int, default=128)
  parser.add_argument("--target_length", type=int, default=8)
  parser.add_argument("--prompt_length", type=int, default=100)
  parser.add_argument("--dtype", default="float32", help="activation dtype of both sides")
  parser.add_argument("--dropout", type=float, default=0.1)
  parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps_per_round", type=int, default=2)
  parser.add_argument(
    "--peft_huge_pages",
    action="store_true",
    help="give PEFT's process the glibc huge-page tunable that "
    "python -m prompt_tuning.train sets for itself (ours always has it)",
  )
  parser.add_argument("--worker", choices=("ours", "peft"), help=argparse.SUPPRESS)
  return parser.parse_args(argv)


def _peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _matmul_flops_per_s(matmul, n=2048, repeats=5) -> float:
  matmul()  # warm up
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    matmul()
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 / best


class _Ours:
  """This trainer's step, set up as `trainer.train` sets it up."""

  def __init__(self, args):
    host.use_a_cpu_device_per_core(args.batch_size)  # as python -m prompt_tuning.train does
    import jax  # pylint: disable=g-import-not-at-top
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from prompt_tuning import partitioning  # pylint: disable=g-import-not-at-top
    from prompt_tuning.checkpoints import variables as variables_lib  # pylint: disable=g-import-not-at-top
    from prompt_tuning.training import optimizers, train_state  # pylint: disable=g-import-not-at-top

    model = t5_shapes.model(
      args.size, args.prompt_length, dropout_rate=args.dropout, dtype=args.dtype
    )
    part = partitioning.Partitioner(1)
    optimizer = optimizers.adafactor(0.3)
    variables, shardings = variables_lib.init_variables(model, part, None, seed=0)
    setup = train_state.setup_step(model, part, optimizer, variables, shardings, "prompt", seed=0)
    self.state, self.frozen, jitted = setup.state, setup.frozen, setup.jitted
    self.batch = t5_shapes.batch(args.batch_size, args.input_length, args.target_length)
    self.step_fn, _ = train_state.compile_train_step(
      jitted, part, self.state, self.frozen, self.batch
    )
    # XLA's count is per device (each runs the same program on its batch shard).
    self.flops = float(self.step_fn.cost_analysis().get("flops", 0.0)) * part.mesh.devices.size
    self.devices = part.mesh.devices.size
    self._jax = jax
    a = jnp.ones((2048, 2048), jnp.float32)
    mm = jax.jit(lambda x: x @ x)
    self.matmul_peak = _matmul_flops_per_s(lambda: mm(a).block_until_ready())

  def step(self):
    self.state, metrics = self.step_fn(self.state, self.frozen, self.batch)
    self._jax.block_until_ready(metrics)


class _Peft:
  """PEFT prompt tuning of transformers' T5, the way its docs train it."""

  def __init__(self, args):
    import torch  # pylint: disable=g-import-not-at-top

    torch.set_num_threads(os.cpu_count())
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    base = t5_shapes.hf_model(args.size, args.dropout, dtype=dtype)
    self.model, self.optimizer = t5_shapes.peft_prompt_tuning(base, args.size, args.prompt_length)
    batch = t5_shapes.batch(args.batch_size, args.input_length, args.target_length)
    self.inputs = torch.from_numpy(batch["encoder_input_tokens"]).long()
    self.mask = torch.ones_like(self.inputs)
    self.labels = torch.from_numpy(batch["decoder_target_tokens"]).long()
    a = torch.ones((2048, 2048), dtype=torch.float32)
    self.matmul_peak = _matmul_flops_per_s(lambda: a @ a)

  def step(self):
    loss = self.model(input_ids=self.inputs, attention_mask=self.mask, labels=self.labels).loss
    loss.backward()
    self.optimizer.step()
    self.optimizer.zero_grad(set_to_none=True)


def _worker(args) -> None:
  """Answers `run N` with per-step seconds, `quit` with the peak RSS."""
  side = (_Ours if args.worker == "ours" else _Peft)(args)
  for _ in range(args.warmup):
    side.step()
  print(
    json.dumps(
      {
        "ready": True,
        "matmul_peak": side.matmul_peak,
        "flops": getattr(side, "flops", None),
        "devices": getattr(side, "devices", None),
      }
    ),
    flush=True,
  )
  for line in sys.stdin:
    command = line.split()
    if command[0] == "run":
      times = []
      for _ in range(int(command[1])):
        start = time.perf_counter()
        side.step()
        times.append(time.perf_counter() - start)
      print(json.dumps({"times": times}), flush=True)
    elif command[0] == "quit":
      print(json.dumps({"peak_rss_mib": _peak_rss_mib()}), flush=True)
      return


def _start(side, argv, huge_pages):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # the trainer's own CPU device setting
  if huge_pages:  # what python -m prompt_tuning.train does for itself
    env = host.huge_pages_environment(env) or env
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
  return subprocess.Popen(
    [sys.executable, os.path.abspath(__file__), "--worker", side, *argv],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    text=True,
    env=env,
  )


def _ask(proc, command=None):
  if command is not None:
    proc.stdin.write(command + "\n")
    proc.stdin.flush()
  line = proc.stdout.readline()
  if not line:
    raise RuntimeError(f"a benchmark worker exited with code {proc.wait()}; see its stderr")
  return json.loads(line)


def main(argv=None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  args = _parse(argv)
  if args.worker:
    _worker(args)
    return
  sides = {}
  for side in ("ours", "peft"):  # started one at a time, so set-up does not overlap
    proc = _start(side, argv, huge_pages=side == "ours" or args.peft_huge_pages)
    sides[side] = (proc, _ask(proc))
  times = {"ours": [], "peft": []}
  for r in range(args.rounds):
    for side in ("ours", "peft") if r % 2 == 0 else ("peft", "ours"):
      times[side] += _ask(sides[side][0], f"run {args.steps_per_round}")["times"]
  rss = {side: _ask(proc, "quit")["peak_rss_mib"] for side, (proc, _) in sides.items()}
  for proc, _ in sides.values():
    proc.wait()

  flops = sides["ours"][1]["flops"]
  peak = max(info["matmul_peak"] for _, info in sides.values())
  tokens = args.batch_size * (args.input_length + args.prompt_length + args.target_length)
  print(
    f"T5.1.1 {args.size}, batch {args.batch_size}, inputs {args.input_length} + prompt "
    f"{args.prompt_length}, targets {args.target_length}, {args.dtype}, dropout "
    f"{args.dropout}; {os.cpu_count()} cores (ours: {sides['ours'][1]['devices']} CPU "
    f"devices, data parallel); {len(times['ours'])} timed steps each; glibc huge pages: "
    f"ours{', PEFT' if args.peft_huge_pages else ''}"
  )
  print(
    f"matmul peak (2048^3 float32, best of jax and torch): {peak / 1e9:.1f} GFLOP/s; "
    f"step: {flops / 1e9:.1f} GFLOP (XLA cost analysis)"
  )
  print(f"{'':6} {'ms/step':>9} {'tokens/s':>9} {'peak RSS MiB':>13} {'GFLOP/s':>8} {'of peak':>8}")
  medians = {}
  for side in ("ours", "peft"):
    medians[side] = statistics.median(times[side])
    achieved = flops / medians[side]
    print(
      f"{side:6} {medians[side] * 1e3:9.1f} {tokens / medians[side]:9.0f} "
      f"{rss[side]:13.0f} {achieved / 1e9:8.1f} {achieved / peak:8.2f}"
    )
  print(
    f"speedup_vs_peft={medians['peft'] / medians['ours']:.3f} "
    f"peak_rss_ratio_vs_peft={rss['ours'] / rss['peft']:.3f}"
  )


if __name__ == "__main__":
  main()
