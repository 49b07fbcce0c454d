r"""The GPU checks' step speed (`scripts/gpu_checks.py` runs it): one side's prompt-tuning
step at a T5.1.1 size, timed, with its MFU.

* `--side ours`: the trainer's step (`train_state.setup_step`, the paper's Adafactor at
  0.3 on the prompt, cross-entropy + z-loss), random weights stored in bfloat16, bfloat16
  activations, scanned layers, `--remat` as asked; XLA's memory analysis of the compiled
  step (does it fit an 80 GB card) and its cost analysis (`xla_flops`, no measure of the
  step: it counts a scanned layer once).
* `--side peft`: Hugging Face PEFT's prompt tuning of transformers' T5 at the same shapes
  (bfloat16 weights, transformers' Adafactor set as the paper's, `loss.backward()`;
  transformers' default `use_cache=True` unless `--peft_use_cache=false`).

MFU: `prompt_tuning.models.flops.prompt_step_flops` (model FLOPs by hand, recomputation
not counted) over the median step time and the GPU's dense bfloat16 peak.

    python scripts/gpu_train.py --side ours --size xl --dropout 0.0 --warmup 2 --steps 5
"""

import argparse
import json
import statistics
import time

import t5_shapes

PEAK_BF16_FLOPS = 989e12  # H100 / H200 SXM dense bf16 tensor-core peak (NVIDIA's datasheet).
GIB = 2**30
CARD_80GB_GIB = 81559 / 1024  # what an H100 80GB reports (MiB), before the CUDA context


def ours(args) -> list[dict]:
  """The trainer's step: compile, memory analysis, warm up, time."""
  import jax  # pylint: disable=g-import-not-at-top
  from prompt_tuning import partitioning  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import variables as variables_lib  # pylint: disable=g-import-not-at-top
  from prompt_tuning.training import optimizers, train_state  # pylint: disable=g-import-not-at-top

  model = t5_shapes.model(
    args.size,
    args.prompt_length,
    dropout_rate=args.dropout,
    dtype="bfloat16",
    param_dtype="bfloat16",
    scan_layers=True,
    remat_policy=args.remat,
  )
  part = partitioning.Partitioner(1)
  start = time.perf_counter()
  variables, shardings = variables_lib.init_variables(model, part, None, seed=0)
  params = sum(x.size for x in jax.tree_util.tree_leaves(variables["params"]))
  setup = train_state.setup_step(
    model, part, optimizers.adafactor(0.3), variables, shardings, "prompt", seed=0
  )
  del variables
  batch = t5_shapes.batch(args.batch_size, args.input_length, args.target_length)
  compiled, _ = train_state.compile_train_step(setup.jitted, part, setup.state, setup.frozen, batch)
  setup_s = time.perf_counter() - start
  mem = compiled.memory_analysis()
  memory = {}
  needed = None
  if mem:
    memory = {
      f: getattr(mem, f"{f}_size_in_bytes", 0) / GIB
      for f in ("argument", "output", "temp", "alias", "generated_code")
    }
    needed = memory["argument"] + memory["temp"] + memory["output"] - memory["alias"]
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  record = {
    "check": "train",
    "side": "ours",
    "size": args.size,
    "remat": args.remat,
    "params": int(params),
    "setup_s": round(setup_s, 1),
    "memory_gib": {k: round(v, 2) for k, v in memory.items()},
    "needed_gib": round(needed, 2) if needed is not None else None,
    "of_80gb_card": round(needed / CARD_80GB_GIB, 3) if needed is not None else None,
    "xla_flops": float(cost.get("flops", 0.0)),
  }
  compiled_record = {**record, "stage": "compiled"}
  print("RESULT " + json.dumps(compiled_record), flush=True)  # before a timing that may fail
  state = setup.state
  batch = jax.device_put(batch, part.batch_sharding())
  times = []
  for i in range(args.warmup + args.steps):
    t0 = time.perf_counter()
    state, metrics = compiled(state, setup.frozen, batch)
    jax.block_until_ready(metrics)
    if i >= args.warmup:
      times.append(time.perf_counter() - t0)
  stats = jax.devices()[0].memory_stats() or {}
  return [
    _timed(args, record, times, float(metrics["loss"]), stats.get("peak_bytes_in_use", 0) / GIB)
  ]


def peft(args) -> list[dict]:
  """PEFT prompt tuning of transformers' T5 at the same shapes, bfloat16."""
  import peft as peft_lib  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  device = "cuda" if torch.cuda.is_available() else "cpu"
  sync = torch.cuda.synchronize if torch.cuda.is_available() else lambda: None
  start = time.perf_counter()
  base = t5_shapes.hf_model(args.size, args.dropout, device, torch.bfloat16)
  model, optimizer = t5_shapes.peft_prompt_tuning(base, args.size, args.prompt_length)
  model = model.to(device)
  batch = t5_shapes.batch(args.batch_size, args.input_length, args.target_length)
  inputs = torch.from_numpy(batch["encoder_input_tokens"]).long().to(device)
  mask = torch.ones_like(inputs)
  labels = torch.from_numpy(batch["decoder_target_tokens"]).long().to(device)
  setup_s = time.perf_counter() - start
  times = []
  for i in range(args.warmup + args.steps):
    sync()
    t0 = time.perf_counter()
    loss = model(
      input_ids=inputs, attention_mask=mask, labels=labels, use_cache=args.peft_use_cache == "true"
    ).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sync()
    if i >= args.warmup:
      times.append(time.perf_counter() - t0)
  record = {
    "check": "train",
    "side": "peft",
    "size": args.size,
    "use_cache": args.peft_use_cache,
    "attn_implementation": getattr(base.config, "_attn_implementation", None),
    "setup_s": round(setup_s, 1),
    "torch": torch.__version__,
    "transformers": transformers.__version__,
    "peft": peft_lib.__version__,
  }
  peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
  return [_timed(args, record, times, float(loss), peak / GIB)]


def _timed(args, record, times, loss, peak_gib) -> dict:
  from prompt_tuning.models import flops  # pylint: disable=g-import-not-at-top

  median = statistics.median(times)
  tokens = args.batch_size * (args.input_length + args.prompt_length + args.target_length)
  hand = flops.prompt_step_flops(
    t5_shapes.t5_config(args.size),
    args.batch_size,
    args.input_length,
    args.prompt_length,
    args.target_length,
  )
  return {
    **record,
    "ms_per_step": round(median * 1e3, 2),
    "ms_min": round(min(times) * 1e3, 2),
    "ms_max": round(max(times) * 1e3, 2),
    "tokens_per_s": round(tokens / median),
    "model_flops": hand,
    "mfu": round(hand / median / PEAK_BF16_FLOPS, 4),
    "loss": loss,
    "peak_gpu_gib": round(peak_gib, 2),
    "steps_timed": len(times),
  }


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0], add_help=False)
  p.add_argument("--side", choices=("ours", "peft"), default="ours")
  p.add_argument("--size", default="base", choices=t5_shapes.NAMES)
  p.add_argument("--remat", default="none", help="ours: 'none', 'minimal' or 'full'")
  p.add_argument("--batch_size", type=int, default=32)
  p.add_argument("--input_length", type=int, default=512)
  p.add_argument("--prompt_length", type=int, default=100)
  p.add_argument("--target_length", type=int, default=16)
  p.add_argument("--dropout", type=float, default=0.1)
  p.add_argument(
    "--peft_use_cache",
    choices=("true", "false"),
    default="true",
    help="PEFT's decoder KV cache in training (transformers' default: on)",
  )
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--steps", type=int, default=10)
  return p


def main(argv=None) -> None:
  args = argparse.ArgumentParser(parents=[parser()]).parse_args(argv)
  for record in (ours if args.side == "ours" else peft)(args):
    print("RESULT " + json.dumps(record), flush=True)


if __name__ == "__main__":
  main()
