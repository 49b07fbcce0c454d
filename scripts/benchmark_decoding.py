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

The last line is `decode_speedup_vs_hf=<x>` (HF time / ours).
"""

import argparse
import json
import statistics
import sys
import time

from prompt_tuning import host

SIZES = {  # emb_dim, num_heads, layers per stack, head_dim, mlp_dim
  "tiny": (64, 4, 2, 16, 128),
  "small": (512, 6, 8, 64, 1024),
  "base": (768, 12, 12, 64, 2048),
}
VOCAB_SIZE = 32128
NEVER = -1  # an EOS id no token has: every sequence runs to max length


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", choices=sorted(SIZES), default="small")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--input_length", type=int, default=64)
  parser.add_argument("--new_tokens", type=int, default=8)
  parser.add_argument("--prompt_length", type=int, default=100)
  parser.add_argument("--rounds", type=int, default=7)
  args = parser.parse_args(argv)

  devices = host.use_a_cpu_device_per_core(args.batch_size)
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  from prompt_tuning.checkpoints import huggingface  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  from prompt_tuning.models import prompts  # pylint: disable=g-import-not-at-top
  from prompt_tuning.models import t5  # pylint: disable=g-import-not-at-top
  from prompt_tuning import partitioning  # pylint: disable=g-import-not-at-top

  emb, heads, layers, head_dim, mlp = SIZES[args.size]
  cfg = t5.T5Config(
    vocab_size=VOCAB_SIZE,
    emb_dim=emb,
    num_heads=heads,
    num_encoder_layers=layers,
    num_decoder_layers=layers,
    head_dim=head_dim,
    mlp_dim=mlp,
    dropout_rate=0.0,
    dtype="float32",
  )
  torch.manual_seed(0)
  hf = transformers.T5ForConditionalGeneration(
    transformers.T5Config(
      vocab_size=VOCAB_SIZE,
      d_model=emb,
      d_kv=head_dim,
      d_ff=mlp,
      num_layers=layers,
      num_decoder_layers=layers,
      num_heads=heads,
      dropout_rate=0.0,
      feed_forward_proj="gated-gelu",
      tie_word_embeddings=False,
      is_encoder_decoder=True,
      pad_token_id=0,
      eos_token_id=1,
      decoder_start_token_id=0,
    )
  ).eval()
  with torch.no_grad():
    hf.lm_head.weight.normal_(0.0, emb**-0.5)
  state = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
  params = huggingface.params_from_hf(state, layers, layers)

  rng = np.random.default_rng(0)
  tokens = rng.integers(2, VOCAB_SIZE, size=(args.batch_size, args.input_length)).astype(np.int32)
  tokens[:, -1] = 1
  prompt = rng.uniform(-0.5, 0.5, size=(args.prompt_length, emb)).astype(np.float32)

  part = partitioning.Partitioner(1)
  model = t5.Transformer(cfg, prompts.Prompt(args.prompt_length, emb))
  params = jax.device_put(params, part.replicated())
  ours = predictor_lib.Predictor(
    model,
    params,
    None,
    task_feature_lengths={"inputs": args.input_length, "targets": args.new_tokens},
    prompts={"p": prompt},
    batch_size=args.batch_size,
    partitioner=part,
    eos_id=NEVER,
  )

  table = state["shared.weight"]
  embeds = torch.from_numpy(
    np.concatenate(
      [np.broadcast_to(prompt, (args.batch_size,) + prompt.shape), table[tokens]], axis=1
    )
  )
  mask = torch.ones(embeds.shape[:2], dtype=torch.long)

  def run_ours():
    return ours.predict_tokens(tokens).tokens[:, 0]

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
    return out[:, 1:].numpy()

  run_ours(), run_hf()  # warm-up (compilation)
  times = {"ours": [], "hf": []}
  same = None
  for r in range(args.rounds):
    order = [("ours", run_ours), ("hf", run_hf)]
    outputs = {}
    for name, fn in order if r % 2 == 0 else order[::-1]:
      start = time.perf_counter()
      outputs[name] = fn()
      times[name].append(time.perf_counter() - start)
    if same is None:
      same = float(np.mean(np.all(outputs["ours"] == outputs["hf"], axis=1)))
  new_tokens = args.batch_size * args.new_tokens
  ours_s, hf_s = statistics.median(times["ours"]), statistics.median(times["hf"])
  print(
    json.dumps(
      {
        "size": args.size,
        "batch_size": args.batch_size,
        "input_length": args.input_length,
        "prompt_length": args.prompt_length,
        "new_tokens": args.new_tokens,
        "cpu_devices": devices or len(jax.devices()),
        "torch_threads": torch.get_num_threads(),
        "ours_seconds_median": round(ours_s, 4),
        "hf_seconds_median": round(hf_s, 4),
        "ours_tokens_per_s": round(new_tokens / ours_s, 1),
        "hf_tokens_per_s": round(new_tokens / hf_s, 1),
        "rows_with_identical_tokens": same,
        "times": times,
      }
    )
  )
  print(f"decode_speedup_vs_hf={hf_s / ours_s:.3f}")


if __name__ == "__main__":
  sys.exit(main())
