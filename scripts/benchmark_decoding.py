r"""Greedy decoding throughput with a prompt: this project's Predictor vs transformers' generate().

Both sides decode the same randomly initialized T5.1.1 (Small by default) with
the same weights and the same 100-token prompt prepended to 64 input tokens,
batch 32, exactly 8 new tokens (EOS is never allowed to stop a sequence), on
this CPU, in one process, taking turns:

* ours: `prompt_tuning.inference.predictor.Predictor.predict_tokens` (the
  jitted encode + `lax.while_loop` over the decoder's KV cache, batches split
  over one CPU device per core, as `python -m prompt_tuning.infer` runs it);
* transformers: `T5ForConditionalGeneration.generate(inputs_embeds=...,
  max_new_tokens=8, min_new_tokens=8, do_sample=False)` with its KV cache.

After one untimed warm-up call each (ours compiles there), round r times one
call of each, alternating which goes first; medians are reported, and the
first round checks that both produce the same tokens.

    python scripts/benchmark_decoding.py
    python scripts/benchmark_decoding.py --size tiny --rounds 3

On a GPU (`scripts/gpu_checks.py` runs it so, at Base with `--dtype bfloat16`) both sides
run there, the weights and the prompt rounded to bfloat16 alike. The last lines are the
results as JSON and `decode_speedup_vs_hf=<x>` (HF time / ours).
"""

import argparse
import json
import statistics
import sys
import time

import t5_shapes

from prompt_tuning import host

NEVER = -1  # an EOS id no token has: every sequence runs to max length


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", choices=t5_shapes.NAMES, default="small")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--input_length", type=int, default=64)
  parser.add_argument("--new_tokens", type=int, default=8)
  parser.add_argument("--prompt_length", type=int, default=100)
  parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  parser.add_argument("--rounds", type=int, default=7)
  args = parser.parse_args(argv)

  devices = host.use_a_cpu_device_per_core(args.batch_size)
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  from prompt_tuning import partitioning  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import huggingface  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import predictor as predictor_lib  # pylint: disable=g-import-not-at-top

  device = "cuda" if torch.cuda.is_available() else "cpu"
  sync = torch.cuda.synchronize if torch.cuda.is_available() else lambda: None
  dtype = {"float32": (torch.float32, jnp.float32), "bfloat16": (torch.bfloat16, jnp.bfloat16)}
  torch_dtype, jax_dtype = dtype[args.dtype]
  hf = t5_shapes.hf_model(args.size, device=device).to(torch_dtype).eval()
  state = {k: v.detach().float().cpu().numpy() for k, v in hf.state_dict().items()}
  config = t5_shapes.t5_config(
    args.size, dropout_rate=0.0, dtype=args.dtype, param_dtype=args.dtype
  )
  params = huggingface.params_from_hf(state, config.num_encoder_layers, config.num_decoder_layers)
  params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jax_dtype), params)

  rng = np.random.default_rng(0)
  tokens = rng.integers(2, t5_shapes.VOCAB_SIZE, size=(args.batch_size, args.input_length)).astype(
    np.int32
  )
  tokens[:, -1] = 1
  prompt = rng.uniform(-0.5, 0.5, size=(args.prompt_length, config.emb_dim)).astype(np.float32)
  prompt = np.asarray(jnp.asarray(prompt, jax_dtype).astype(jnp.float32))  # alike on both sides

  part = partitioning.Partitioner(1)
  ours = predictor_lib.Predictor(
    t5_shapes.model(args.size, args.prompt_length, dropout_rate=0.0, dtype=args.dtype),
    jax.device_put(params, part.replicated()),
    None,
    task_feature_lengths={"inputs": args.input_length, "targets": args.new_tokens},
    prompts={"p": prompt},
    batch_size=args.batch_size,
    partitioner=part,
    eos_id=NEVER,
  )
  table = hf.shared.weight.detach()
  embeds = torch.cat(
    [
      torch.from_numpy(prompt).to(table).expand(args.batch_size, -1, -1),
      table[torch.from_numpy(tokens).long().to(device)],
    ],
    dim=1,
  )
  mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=device)

  def run_ours():
    return np.asarray(ours.predict_tokens(tokens).tokens[:, 0])

  def run_hf():
    with torch.no_grad():
      out = hf.generate(
        inputs_embeds=embeds,
        attention_mask=mask,
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
        do_sample=False,
        num_beams=1,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
      )
    sync()
    return out[:, 1:].cpu().numpy()

  run_ours(), run_hf()  # warm-up (compilation)
  times = {"ours": [], "hf": []}
  same = first_same = None
  for r in range(args.rounds):
    order = [("ours", run_ours), ("hf", run_hf)]
    outputs = {}
    for name, fn in order if r % 2 == 0 else order[::-1]:
      start = time.perf_counter()
      outputs[name] = fn()
      times[name].append(time.perf_counter() - start)
    if same is None:
      same = float(np.mean(np.all(outputs["ours"] == outputs["hf"], axis=1)))
      first_same = float(np.mean(outputs["ours"][:, 0] == outputs["hf"][:, 0]))
  new_tokens = args.batch_size * args.new_tokens
  ours_s, hf_s = statistics.median(times["ours"]), statistics.median(times["hf"])
  print(
    json.dumps(
      {
        "check": "decode",
        "size": args.size,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "input_length": args.input_length,
        "prompt_length": args.prompt_length,
        "new_tokens": args.new_tokens,
        "device": str(jax.devices()[0]),
        "cpu_devices": devices or len(jax.devices()),
        "torch_threads": torch.get_num_threads(),
        "ours_seconds_median": round(ours_s, 4),
        "hf_seconds_median": round(hf_s, 4),
        "ours_tokens_per_s": round(new_tokens / ours_s, 1),
        "hf_tokens_per_s": round(new_tokens / hf_s, 1),
        "speedup_vs_hf": round(hf_s / ours_s, 3),
        "rows_with_identical_tokens": same,
        "first_token_identical": first_same,
        "times": times,
      }
    )
  )
  print(f"decode_speedup_vs_hf={hf_s / ours_s:.3f}")


if __name__ == "__main__":
  sys.exit(main())
