r"""The GPU checks' numerics (`scripts/gpu_checks.py` runs it): one platform's forward and
prompt-tuning step on weights shared with the CPU's run, and the comparison.

T5.1.1 Small shapes by default (random weights, vocabulary 32128), a 20-token prompt,
batch 8 x 64 inputs, 8 targets, no dropout. The CPU run (float32) writes its weights to
`--scratch`; a GPU run reads them, so every run starts from the same bits. Each run saves
its logits, loss, the prompt's gradient and the prompt after one step of the trainer's
step (`train_state.setup_step`, Adafactor 0.3); `compare` measures the GPU runs against
the CPU's under stated bounds.

    JAX_PLATFORMS=cpu python scripts/gpu_smoke.py --platform cpu --dtype float32 --scratch S
    python scripts/gpu_smoke.py --platform cuda --dtype bfloat16 --scratch S
"""

import argparse
import json
import os

import t5_shapes

# bf16 keeps 8 mantissa bits (relative step 2^-8 = 0.4%); errors compound over 16 layers,
# so the bf16 bounds are a few times that, float32's (TF32 matmuls allowed on the GPU by
# XLA's default precision) ten times tighter.
TOLERANCES = {
  "float32": {"logits_rel": 1e-2, "loss_rel": 1e-3, "grad_cos": 0.9999},
  "bfloat16": {"logits_rel": 5e-2, "loss_rel": 1e-2, "grad_cos": 0.99},
}


def run(args) -> dict:
  """One platform's run; its arrays go to `--scratch`, its summary is returned."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  from prompt_tuning import partitioning  # pylint: disable=g-import-not-at-top
  from prompt_tuning.checkpoints import variables as variables_lib  # pylint: disable=g-import-not-at-top
  from prompt_tuning.training import losses, optimizers, train_state, trainable  # pylint: disable=g-import-not-at-top

  model = t5_shapes.model(args.size, 20, dropout_rate=0.0, dtype=args.dtype, param_dtype="float32")
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
  batch = t5_shapes.batch(8, 64, 8)
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
  (prompt_key,) = list(setup.state.trainable)
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
  return {
    "check": "smoke_run",
    "platform": args.platform,
    "dtype": args.dtype,
    "device": str(jax.devices()[0]),
    "loss": float(metrics["loss"]),
  }


def compare(scratch: str) -> list[dict]:
  """The GPU runs against the CPU's float32 one: the measured errors, and whether each
  run is within `TOLERANCES`."""
  import numpy as np  # pylint: disable=g-import-not-at-top

  if not os.path.exists(os.path.join(scratch, "smoke_cpu_float32.npz")):
    return [{"check": "smoke", "error": "the CPU run left no results; see log.txt"}]
  ref = np.load(os.path.join(scratch, "smoke_cpu_float32.npz"))
  rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))
  cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
  records = []
  for dtype, tol in TOLERANCES.items():
    path = os.path.join(scratch, f"smoke_cuda_{dtype}.npz")
    if not os.path.exists(path):
      continue
    run_ = np.load(path)
    g, gr = run_["grad"].ravel(), ref["grad"].ravel()
    step = (run_["prompt_after"] - run_["prompt_before"]).ravel()
    step_ref = (ref["prompt_after"] - ref["prompt_before"]).ravel()
    measured = {
      "logits_rel": rel(run_["logits"], ref["logits"]),
      "logits_max_abs": float(np.max(np.abs(run_["logits"] - ref["logits"]))),
      "argmax_agree": float(np.mean(run_["logits"].argmax(-1) == ref["logits"].argmax(-1))),
      "loss_gpu": float(run_["loss"]),
      "loss_cpu": float(ref["loss"]),
      "loss_rel": abs(float(run_["loss"]) - float(ref["loss"])) / abs(float(ref["loss"])),
      "grad_cos": cos(g, gr),
      "grad_rel": rel(g, gr),
      "step_cos": cos(step, step_ref),
      "same_prompt_before": bool(np.array_equal(run_["prompt_before"], ref["prompt_before"])),
    }
    ok = (
      measured["logits_rel"] <= tol["logits_rel"]
      and measured["loss_rel"] <= tol["loss_rel"]
      and measured["grad_cos"] >= tol["grad_cos"]
      and measured["same_prompt_before"]
    )
    records.append({"check": "smoke", "gpu_dtype": dtype, "tolerance": tol, **measured, "pass": ok})
  return records


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--platform", default="cuda", help="cpu: the reference run")
  parser.add_argument("--dtype", default="float32", help="activations: float32 or bfloat16")
  parser.add_argument("--size", default="small", choices=t5_shapes.NAMES)
  parser.add_argument("--scratch", required=True, help="the runs' shared arrays")
  args = parser.parse_args(argv)
  print("RESULT " + json.dumps(run(args)), flush=True)


if __name__ == "__main__":
  main()
