r"""The GPU checks of `shared/GPU.md`, in one command: numerics, step speed and MFU, PEFT, XXL, decoding.

Run on a machine with one CUDA GPU (no TensorFlow, seqio or gin needed):

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
   MFU: `prompt_step_flops` (model FLOPs by hand, recomputation not counted;
   tests/test_gpu_checks.py checks it against the step's jaxpr) over the step
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
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# emb_dim, num_heads, layers per stack, head_dim, mlp_dim (T5.1.1's).
SIZES = {
  "tiny": (64, 4, 2, 16, 128),  # for trying the script on a CPU
  "small": (512, 6, 8, 64, 1024),
  "base": (768, 12, 12, 64, 2048),
  "large": (1024, 16, 24, 64, 2816),
  "xl": (2048, 32, 24, 64, 5120),
  "xxl": (4096, 64, 24, 64, 10240),
}
VOCAB_SIZE = 32128
PEAK_BF16_FLOPS = 989e12  # H100 / H200 SXM dense bf16 tensor-core peak (NVIDIA's datasheet).
GIB = 2**30
CARD_80GB_GIB = 81559 / 1024  # what an H100 80GB reports (MiB), before the CUDA context
SCRATCH = os.path.join(os.environ.get("TMPDIR", "/tmp"), "gpu_checks")


_RESULTS_FILE = None  # the driver's results.jsonl (workers print, the driver collects)


def _emit(record):
  print("RESULT " + json.dumps(record), flush=True)
  if _RESULTS_FILE:
    with open(_RESULTS_FILE, "a") as f:
      f.write(json.dumps(record) + "\n")


def _batch(batch_size, input_length, target_length, seed=0):
  import numpy as np  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  inputs = rng.integers(2, VOCAB_SIZE, (batch_size, input_length), dtype=np.int32)
  targets = rng.integers(2, VOCAB_SIZE, (batch_size, target_length), dtype=np.int32)
  decoder_inputs = np.concatenate([np.zeros_like(targets[:, :1]), targets[:, :-1]], axis=1)
  return {
    "encoder_input_tokens": inputs,
    "decoder_input_tokens": decoder_inputs,
    "decoder_target_tokens": targets,
    "decoder_loss_weights": np.ones_like(targets, np.float32),
  }


def matmul_flops(size, batch_size, input_length, prompt_length, target_length):
  """The forward's matmul FLOPs by hand: `(weights, attention)`.

  `weights` are the products with a weight matrix (projections, MLP, logits),
  `attention` those of two activations (scores and the weighted sum).
  """
  d, h, n, dk, ff = SIZES[size]
  hd = h * dk
  enc_len = input_length + prompt_length
  te, td = batch_size * enc_len, batch_size * target_length
  weights = (
    n * (2 * te * d * 4 * hd + 2 * te * 3 * d * ff)  # encoder
    + n
    * (
      2 * td * d * 4 * hd + 2 * td * d * 2 * hd + 2 * te * d * 2 * hd + 2 * td * 3 * d * ff
    )  # decoder: self, cross (K, V of the encoder), MLP
    + 2 * td * d * VOCAB_SIZE
  )  # logits
  attention = (
    2
    * 2
    * batch_size
    * h
    * dk
    * (n * enc_len**2 + n * target_length**2 + n * target_length * enc_len)
  )
  return weights, attention


def prompt_step_flops(size, batch_size, input_length, prompt_length, target_length):
  """Model FLOPs of one prompt-tuning step: the forward and the backward to the prompt.

  The backward of a product with a frozen weight needs one product (the input's
  gradient, no weight gradient); that of two activations needs two (both
  inputs' gradients). So a step is 2x the weight products plus 3x the
  attention products. Rematerialized recomputation is not counted (MFU, not HFU).
  """
  weights, attention = matmul_flops(size, batch_size, input_length, prompt_length, target_length)
  return 2 * weights + 3 * attention


# Workers.


def _model(size, *, dtype, param_dtype, dropout, prompt_length, scan=False, remat="none"):
  from prompt_tuning.models import prompt_init, prompts, t5  # pylint: disable=g-import-not-at-top

  d, h, n, dk, ff = SIZES[size]
  cfg = t5.T5Config(
    vocab_size=VOCAB_SIZE,
    emb_dim=d,
    num_heads=h,
    num_encoder_layers=n,
    num_decoder_layers=n,
    head_dim=dk,
    mlp_dim=ff,
    dropout_rate=dropout,
    dtype=dtype,
    param_dtype=param_dtype,
    scan_layers=scan,
    remat_policy=remat,
  )
  return t5.Transformer(cfg, prompts.Prompt(prompt_length, d, prompt_init.random_uniform(0.5)))


def worker_smoke(args):
  """One platform's logits, loss, prompt gradient and stepped prompt, on shared weights."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from prompt_tuning import partitioning  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import variables as variables_lib  # pylint: disable=g-import-not-at-top
  from prompt_tuning.training import losses, optimizers, train_state, trainable  # pylint: disable=g-import-not-at-top

  model = _model(args.size, dtype=args.dtype, param_dtype="float32", dropout=0.0, prompt_length=20)
  part = partitioning.Partitioner(1)
  variables, shardings = variables_lib.init_variables(model, part, None, seed=0)
  weights = os.path.join(args.scratch, "smoke_weights.npz")
  flat = {"/".join(k): v for k, v in traverse_util.flatten_dict(variables).items()}
  if args.platform == "cpu":
    np.savez(weights, **{k: np.asarray(v) for k, v in flat.items()})
  else:  # the CPU's weights, exactly
    saved = np.load(weights)
    flat = {k: jax.device_put(saved[k], v.sharding) for k, v in flat.items()}
    variables = traverse_util.unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})
  batch = _batch(8, 64, 8)
  logits = jax.jit(
    lambda v: model.apply(v, batch["encoder_input_tokens"], batch["decoder_input_tokens"])
  )(variables)

  setup = train_state.setup_step(
    model, part, optimizers.adafactor(0.3), variables, shardings, "prompt", seed=0
  )

  def loss_of(train):
    out = model.apply(
      trainable.merge(train, setup.frozen),
      batch["encoder_input_tokens"],
      batch["decoder_input_tokens"],
    )
    return losses.weighted_cross_entropy(
      out,
      batch["decoder_target_tokens"],
      batch["decoder_loss_weights"],
      0.0,
      1e-4,
      "NUM_REAL_TARGET_TOKENS",
    )[0]

  grads = jax.jit(jax.grad(loss_of))(setup.state.trainable)
  (prompt_key,) = [k for k in setup.state.trainable]
  before = np.asarray(setup.state.trainable[prompt_key], np.float32)
  with part.context():
    state, metrics = setup.jitted(setup.state, setup.frozen, batch)
  np.savez(
    os.path.join(args.scratch, f"smoke_{args.platform}_{args.dtype}.npz"),
    logits=np.asarray(logits.astype(jnp.float32)),
    grad=np.asarray(grads[prompt_key], np.float32),
    prompt_before=before,
    prompt_after=np.asarray(state.trainable[prompt_key], np.float32),
    loss=np.float32(metrics["loss"]),
  )
  _emit(
    {
      "check": "smoke_run",
      "platform": args.platform,
      "dtype": args.dtype,
      "device": str(jax.devices()[0]),
      "loss": float(metrics["loss"]),
    }
  )


def compare_smoke(scratch):
  """The GPU runs against the CPU float32 one: stated tolerances, measured errors."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  if not os.path.exists(os.path.join(scratch, "smoke_cpu_float32.npz")):
    _emit({"check": "smoke", "error": "the CPU run left no results; see log.txt"})
    return
  ref = np.load(os.path.join(scratch, "smoke_cpu_float32.npz"))
  # bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%); errors compound over
  # 16 layers, so the bf16 bounds are a few times that, float32's (TF32 matmuls
  # allowed on the GPU by XLA's default precision) ten times tighter.
  tolerances = {
    "float32": {"logits_rel": 1e-2, "loss_rel": 1e-3, "grad_cos": 0.9999},
    "bfloat16": {"logits_rel": 5e-2, "loss_rel": 1e-2, "grad_cos": 0.99},
  }
  for dtype, tol in tolerances.items():
    path = os.path.join(scratch, f"smoke_cuda_{dtype}.npz")
    if not os.path.exists(path):
      continue
    run = np.load(path)
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
    g, gr = run["grad"].ravel(), ref["grad"].ravel()
    step, step_ref = (
      (run["prompt_after"] - run["prompt_before"]).ravel(),
      (ref["prompt_after"] - ref["prompt_before"]).ravel(),
    )
    measured = {
      "logits_rel": rel(run["logits"], ref["logits"]),
      "logits_max_abs": float(np.max(np.abs(run["logits"] - ref["logits"]))),
      "argmax_agree": float(np.mean(run["logits"].argmax(-1) == ref["logits"].argmax(-1))),
      "loss_gpu": float(run["loss"]),
      "loss_cpu": float(ref["loss"]),
      "loss_rel": abs(float(run["loss"]) - float(ref["loss"])) / abs(float(ref["loss"])),
      "grad_cos": float(g @ gr / np.linalg.norm(g) / np.linalg.norm(gr)),
      "grad_rel": rel(g, gr),
      "step_cos": float(step @ step_ref / np.linalg.norm(step) / np.linalg.norm(step_ref)),
      "same_prompt_before": bool(np.array_equal(run["prompt_before"], ref["prompt_before"])),
    }
    ok = (
      measured["logits_rel"] <= tol["logits_rel"]
      and measured["loss_rel"] <= tol["loss_rel"]
      and measured["grad_cos"] >= tol["grad_cos"]
      and measured["same_prompt_before"]
    )
    _emit({"check": "smoke", "gpu_dtype": dtype, "tolerance": tol, **measured, "pass": ok})


def worker_ours(args):
  """The trainer's prompt-tuning step: compile, memory analysis, warm up, time."""
  import jax  # pylint: disable=g-import-not-at-top
  from prompt_tuning import partitioning  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import variables as variables_lib  # pylint: disable=g-import-not-at-top
  from prompt_tuning.training import optimizers, train_state  # pylint: disable=g-import-not-at-top

  model = _model(
    args.size,
    dtype="bfloat16",
    param_dtype="bfloat16",
    dropout=args.dropout,
    prompt_length=args.prompt_length,
    scan=True,
    remat=args.remat,
  )
  part = partitioning.Partitioner(1)
  start = time.perf_counter()
  variables, shardings = variables_lib.init_variables(model, part, None, seed=0)
  params = sum(x.size for x in jax.tree_util.tree_leaves(variables["params"]))
  setup = train_state.setup_step(
    model, part, optimizers.adafactor(0.3), variables, shardings, "prompt", seed=0
  )
  del variables
  batch = _batch(args.batch_size, args.input_length, args.target_length)
  compiled, _ = train_state.compile_train_step(setup.jitted, part, setup.state, setup.frozen, batch)
  setup_s = time.perf_counter() - start
  mem = compiled.memory_analysis()
  memory = (
    {
      f: getattr(mem, f"{f}_size_in_bytes", 0) / GIB
      for f in ("argument", "output", "temp", "alias", "generated_code")
    }
    if mem
    else {}
  )
  needed = (
    memory.get("argument", 0)
    + memory.get("temp", 0)
    + memory.get("output", 0)
    - memory.get("alias", 0)
    if mem
    else None
  )
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla_flops = float(cost.get("flops", 0.0))
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
    "xla_flops": xla_flops,
  }
  _emit({**record, "stage": "compiled"})
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
  _finish_train(
    args, record, times, float(metrics["loss"]), stats.get("peak_bytes_in_use", 0) / GIB
  )


def _finish_train(args, record, times, loss, peak_gib):
  median = statistics.median(times)
  tokens = args.batch_size * (args.input_length + args.prompt_length + args.target_length)
  hand = prompt_step_flops(
    args.size, args.batch_size, args.input_length, args.prompt_length, args.target_length
  )
  out = {
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
  _emit(out)


def _torch_device():
  import torch  # pylint: disable=g-import-not-at-top

  return "cuda" if torch.cuda.is_available() else "cpu"


def _sync():
  import torch  # pylint: disable=g-import-not-at-top

  if torch.cuda.is_available():
    torch.cuda.synchronize()


def worker_peft(args):
  """PEFT prompt tuning of transformers' T5 at the same shapes, bfloat16, on the GPU."""
  import peft  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from transformers.optimization import Adafactor  # pylint: disable=g-import-not-at-top

  d, h, n, dk, ff = SIZES[args.size]
  config = transformers.T5Config(
    vocab_size=VOCAB_SIZE,
    d_model=d,
    d_kv=dk,
    d_ff=ff,
    num_layers=n,
    num_decoder_layers=n,
    num_heads=h,
    dropout_rate=args.dropout,
    feed_forward_proj="gated-gelu",
    tie_word_embeddings=False,
    is_encoder_decoder=True,
    pad_token_id=0,
    eos_token_id=1,
    decoder_start_token_id=0,
  )
  torch.manual_seed(0)
  start = time.perf_counter()
  torch.set_default_dtype(torch.bfloat16)
  with torch.device(_torch_device()):
    base = transformers.T5ForConditionalGeneration(config)
  torch.set_default_dtype(torch.float32)
  model = peft.get_peft_model(
    base,
    peft.PromptTuningConfig(
      task_type=peft.TaskType.SEQ_2_SEQ_LM,
      num_virtual_tokens=args.prompt_length,
      token_dim=d,
      num_transformer_submodules=1,
      num_attention_heads=h,
      num_layers=n,
    ),
  ).to(_torch_device())
  model.train()
  optimizer = Adafactor(
    [p for p in model.parameters() if p.requires_grad],
    lr=0.3,
    eps=(1e-30, 1e-3),
    clip_threshold=1.0,
    decay_rate=-0.8,
    weight_decay=1e-5,
    scale_parameter=False,
    relative_step=False,
    warmup_init=False,
  )
  batch = _batch(args.batch_size, args.input_length, args.target_length)
  inputs = torch.from_numpy(batch["encoder_input_tokens"]).long().to(_torch_device())
  mask = torch.ones_like(inputs)
  labels = torch.from_numpy(batch["decoder_target_tokens"]).long().to(_torch_device())
  setup_s = time.perf_counter() - start
  times = []
  for i in range(args.warmup + args.steps):
    _sync()
    t0 = time.perf_counter()
    loss = model(
      input_ids=inputs, attention_mask=mask, labels=labels, use_cache=args.peft_use_cache == "true"
    ).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    _sync()
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
    "peft": peft.__version__,
  }
  peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
  _finish_train(args, record, times, float(loss), peak / GIB)


def worker_decode(args):
  """Greedy decoding with a prompt: Predictor vs transformers' generate(), same weights."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from prompt_tuning import partitioning  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import huggingface  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import predictor as predictor_lib  # pylint: disable=g-import-not-at-top
  from prompt_tuning.models import prompts, t5  # pylint: disable=g-import-not-at-top

  d, h, n, dk, ff = SIZES[args.size]
  torch.manual_seed(0)
  with torch.device(_torch_device()):
    hf = transformers.T5ForConditionalGeneration(
      transformers.T5Config(
        vocab_size=VOCAB_SIZE,
        d_model=d,
        d_kv=dk,
        d_ff=ff,
        num_layers=n,
        num_decoder_layers=n,
        num_heads=h,
        dropout_rate=0.0,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        is_encoder_decoder=True,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
      )
    )
  with torch.no_grad():
    hf.lm_head.weight.normal_(0.0, d**-0.5)
  hf = hf.to(torch.bfloat16).eval()
  state = {k: v.detach().float().cpu().numpy() for k, v in hf.state_dict().items()}
  params = huggingface.params_from_hf(state, n, n)
  params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.bfloat16), params)
  rng = np.random.default_rng(0)
  tokens = rng.integers(2, VOCAB_SIZE, size=(args.batch_size, args.input_length)).astype(np.int32)
  tokens[:, -1] = 1
  prompt = rng.uniform(-0.5, 0.5, size=(args.prompt_length, d)).astype(np.float32)
  prompt = np.asarray(jnp.asarray(prompt, jnp.bfloat16).astype(jnp.float32))  # same on both sides

  cfg = t5.T5Config(
    vocab_size=VOCAB_SIZE,
    emb_dim=d,
    num_heads=h,
    num_encoder_layers=n,
    num_decoder_layers=n,
    head_dim=dk,
    mlp_dim=ff,
    dropout_rate=0.0,
    dtype="bfloat16",
    param_dtype="bfloat16",
  )
  part = partitioning.Partitioner(1)
  ours = predictor_lib.Predictor(
    t5.Transformer(cfg, prompts.Prompt(args.prompt_length, d)),
    jax.device_put(params, part.replicated()),
    None,
    task_feature_lengths={"inputs": args.input_length, "targets": args.new_tokens},
    prompts={"p": prompt},
    batch_size=args.batch_size,
    partitioner=part,
    eos_id=-1,
  )
  table = hf.shared.weight.detach()
  embeds = torch.cat(
    [
      torch.from_numpy(prompt).to(table).expand(args.batch_size, -1, -1),
      table[torch.from_numpy(tokens).long().to(_torch_device())],
    ],
    dim=1,
  )
  mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=_torch_device())

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
    _sync()
    return out[:, 1:].cpu().numpy()

  run_ours(), run_hf()
  times, same = {"ours": [], "hf": []}, None
  for r in range(args.steps):
    order = [("ours", run_ours), ("hf", run_hf)]
    outputs = {}
    for name, fn in order if r % 2 == 0 else order[::-1]:
      t0 = time.perf_counter()
      outputs[name] = fn()
      times[name].append(time.perf_counter() - t0)
    if same is None:
      same = float(np.mean(np.all(outputs["ours"] == outputs["hf"], axis=1)))
      first_token_same = float(np.mean(outputs["ours"][:, 0] == outputs["hf"][:, 0]))
  new = args.batch_size * args.new_tokens
  ours_s, hf_s = statistics.median(times["ours"]), statistics.median(times["hf"])
  _emit(
    {
      "check": "decode",
      "size": args.size,
      "batch_size": args.batch_size,
      "input_length": args.input_length,
      "prompt_length": args.prompt_length,
      "new_tokens": args.new_tokens,
      "ours_s": round(ours_s, 4),
      "hf_s": round(hf_s, 4),
      "ours_tokens_per_s": round(new / ours_s),
      "hf_tokens_per_s": round(new / hf_s),
      "speedup_vs_hf": round(hf_s / ours_s, 3),
      "rows_identical": same,
      "first_token_identical": first_token_same,
    }
  )


# The driver.

_DEADLINE = float("inf")  # time.monotonic() by which the driver must be done


def _run_worker(out, log, name, argv, timeout, env=None):
  """Runs one worker; returns its RESULT records (appended to results.jsonl)."""
  timeout = min(timeout, _DEADLINE - time.monotonic())
  if timeout < 30:
    _record(out, [{"check": name, "error": "skipped: the --budget_s was spent"}])
    return []
  cmd = [
    sys.executable,
    os.path.abspath(__file__),
    "--out",
    out,
    "--scratch",
    SCRATCH,
    "--worker",
    *argv,
  ]
  full_env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
  full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
  start = time.perf_counter()
  records = []
  with open(log, "a") as logf:
    logf.write(f"\n=== {name}: {' '.join(cmd)}\n")
    logf.flush()
    try:
      proc = subprocess.run(
        cmd, env=full_env, stdout=subprocess.PIPE, stderr=logf, text=True, timeout=timeout
      )
      rc, stdout = proc.returncode, proc.stdout
    except subprocess.TimeoutExpired as e:
      rc, stdout = (
        "timeout",
        (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or ""),
      )
    logf.write(stdout)
  for line in stdout.splitlines():
    if line.startswith("RESULT "):
      records.append(json.loads(line[len("RESULT ") :]))
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
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", required=True)
  parser.add_argument("--scratch", default=SCRATCH, help="the smoke check's arrays")
  parser.add_argument("--only", default="smoke,train,xxl,decode")
  parser.add_argument("--sizes", default="base,large,xl")
  parser.add_argument("--worker", choices=("smoke", "ours", "peft", "decode"))
  parser.add_argument("--platform", default="cuda")
  parser.add_argument("--dtype", default="bfloat16")
  parser.add_argument("--size", default="base")
  parser.add_argument("--smoke_size", default="small")
  parser.add_argument("--decode_size", default="base")
  parser.add_argument("--remat", default="none")
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--input_length", type=int, default=512)
  parser.add_argument("--prompt_length", type=int, default=100)
  parser.add_argument("--target_length", type=int, default=16)
  parser.add_argument("--new_tokens", type=int, default=32)
  parser.add_argument("--dropout", type=float, default=0.1)
  parser.add_argument(
    "--peft_use_cache",
    choices=("true", "false"),
    default="true",
    help="PEFT's decoder KV cache in training (transformers' default: on)",
  )
  parser.add_argument(
    "--budget_s",
    type=float,
    default=570,
    help="the driver's wall-clock budget: each check's limit is cut to "
    "what is left, and a check is skipped when under 30 s is left",
  )
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10)
  args = parser.parse_args(argv)
  if args.worker:
    {"smoke": worker_smoke, "ours": worker_ours, "peft": worker_peft, "decode": worker_decode}[
      args.worker
    ](args)
    return
  os.makedirs(args.out, exist_ok=True)
  shutil.rmtree(args.scratch, ignore_errors=True)  # no earlier run's arrays to compare
  os.makedirs(args.scratch)
  global _RESULTS_FILE, _DEADLINE
  _DEADLINE = time.monotonic() + args.budget_s
  _RESULTS_FILE = os.path.join(args.out, "results.jsonl")
  log = os.path.join(args.out, "log.txt")
  checks = args.only.split(",")
  jax_env = {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.92"}
  if "smoke" in checks:
    _run_worker(
      args.out,
      log,
      "smoke_cpu",
      ["smoke", "--platform", "cpu", "--dtype", "float32", "--size", args.smoke_size],
      240,
      {"JAX_PLATFORMS": "cpu"},
    )
    for dtype in ("float32", "bfloat16"):
      _run_worker(
        args.out,
        log,
        f"smoke_cuda_{dtype}",
        ["smoke", "--platform", "cuda", "--dtype", dtype, "--size", args.smoke_size],
        180,
        jax_env,
      )
    compare_smoke(args.scratch)
  if "train" in checks:
    for size in args.sizes.split(","):
      _run_worker(args.out, log, f"train_ours_{size}", ["ours", "--size", size], 300, jax_env)
      _run_worker(args.out, log, f"train_peft_{size}", ["peft", "--size", size], 300)
  xxl = lambda remat: _run_worker(
    args.out,
    log,
    f"xxl_{remat}",
    ["ours", "--size", "xxl", "--remat", remat, "--warmup", "2", "--steps", "5"],
    360,
    jax_env,
  )
  if "xxl" in checks:
    xxl("full")  # the least memory: the one most likely to fit 80 GB
  if "decode" in checks:
    _run_worker(
      args.out,
      log,
      "decode",
      ["decode", "--size", args.decode_size, "--input_length", "128", "--steps", "5"],
      300,
      {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"},
    )
  if "xxl" in checks:
    xxl("minimal")  # faster (no recomputed matmuls) if it fits


if __name__ == "__main__":
  sys.exit(main())
