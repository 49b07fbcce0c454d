"""The sharded train step: same prompt on 1 device and on (data, model) meshes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prompt_tuning.checkpoints import checkpointer
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from prompt_tuning.training import optimizers
from prompt_tuning import partitioning
from prompt_tuning.training import train_state
from prompt_tuning.training import trainable
from tests.helpers import hf_reference

CFG = t5.T5Config(**{**hf_reference.TINY.__dict__, "dropout_rate": 0.1})


def _batches(n, batch=8, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(n):
    inputs = hf_reference.random_tokens(rng, batch, 10, CFG.vocab_size)
    targets = hf_reference.random_tokens(rng, batch, 4, CFG.vocab_size)
    dec = np.concatenate([np.zeros((batch, 1), np.int32), targets[:, :-1]], axis=1)
    out.append(
      {
        "encoder_input_tokens": inputs,
        "decoder_input_tokens": dec,
        "decoder_target_tokens": targets,
        "decoder_loss_weights": (targets > 0).astype(np.float32),
      }
    )
  return out


METHODS = {  # method -> what trains
  "prompt": ["prompt/encoder/prompt/prompt"],
  "per_layer": ["prompt/encoder/prompt/prompt"],
  "prefix": ["prompt/decoder/prefix/prefix"],
  "prefix_mlp": ["prompt/decoder/prefix/" + n for n in sorted(prompts.PREFIX_MLP)],
  "p_tuning_v2": ["prompt/encoder/prefix/prefix"],
  "multitask": ["prompt/encoder/prompt/shared", "prompt/encoder/prompt/tasks"],
}


# The other methods but the decoder prefix train without dropout: its random bits are two
# thirds of a train step's compile (some 5 s each here), and what it adds to a resume, the
# same masks after a restore, is the trainer's, not a method's (tests/test_train.py
# resumes a run with dropout exactly). The plain prompt keeps it (its step is the mesh
# tests', compiled once), and so does the decoder prefix: dropout on attention weights
# over the prefix's keys and the tokens'.
NO_DROPOUT = dataclasses.replace(CFG, dropout_rate=0.0)


def _model(method: str) -> t5.Transformer:
  """The tiny model with the prompt method `method` trains."""
  if method == "prompt":
    return t5.Transformer(CFG, prompts.Prompt(4, CFG.emb_dim))
  cfg = CFG if method == "prefix" else NO_DROPOUT
  if method == "per_layer":
    prompt = prompts.PerLayerPrompt(4, cfg.emb_dim, num_layers=cfg.num_encoder_layers, mode="add")
    return t5.Transformer(cfg, prompt)
  if method == "multitask":  # _run leads the batches' rows with tasks 0 to 2's sentinels
    tasks = ("a", "b", "c")
    prompt = prompts.MultiTaskPrompt(4, cfg.emb_dim, tasks=tasks, first_sentinel=cfg.vocab_size - 1)
    return t5.Transformer(cfg, prompt)
  encoder = method == "p_tuning_v2"
  prefix = prompts.Prefix(
    length=3,
    num_layers=cfg.num_encoder_layers if encoder else cfg.num_decoder_layers,
    num_heads=cfg.num_heads,
    head_dim=cfg.head_dim,
    embed_dim=cfg.emb_dim,
    hidden_dim=8 if method == "prefix_mlp" else 0,
    placement="encoder" if encoder else "decoder",
  )
  return t5.Transformer(cfg, prefix=prefix)


# The frozen model's params for each mesh, initialized once: every method's model has the
# same params (its own variables are in the `prompt` collection).
_PARAMS = {}


def _init(model, part, num_partitions, devices):
  """`part.sharded_init` of the model, its params made once per mesh and each method's own
  variables initialized alone (what init_variables does with a checkpoint: the params'
  random init, unused, drops out of that computation)."""
  init = lambda key: model.init(key, jnp.ones((1, 1), jnp.int32), jnp.ones((1, 1), jnp.int32))
  key = jax.random.key(0)
  mesh = (num_partitions, None if devices is None else tuple(d.id for d in devices))
  if mesh not in _PARAMS:
    _PARAMS[mesh] = part.sharded_init(lambda k: {"params": init(k)["params"]}, key)
  params, params_shardings = _PARAMS[mesh]
  own, own_shardings = part.sharded_init(
    lambda k: {c: v for c, v in init(k).items() if c != "params"}, key
  )
  return {**params, **own}, {**params_shardings, **own_shardings}


def _run(num_partitions, what="prompt", steps=3, devices=None, method="prompt", model_dir=None):
  """Trains a few steps on a (devices / num_partitions, num_partitions) mesh.

  With `model_dir`, the state after the first step is also saved there, restored once the
  run ends, and trained on through the remaining steps (a resumed run): returned last.
  """
  part = partitioning.Partitioner(num_partitions, devices=devices)
  model = _model(method)
  variables, shardings = _init(model, part, num_partitions, devices)
  # Host copies, taken before any step (the step donates its state).
  before = {k: np.array(v) for k, v in trainable.flatten(variables).items()}
  train, frozen = trainable.partition(variables, what)
  flat_shardings = trainable.flatten(shardings)
  frozen_shardings = {k: flat_shardings[k] for k in frozen}
  tx = optimizers.adafactor(0.3 if what == "prompt" else 1e-3)
  state = jax.jit(lambda t: train_state.create(t, tx, seed=1))(train)
  state_shardings = train_state.state_shardings(state, flat_shardings, part)
  state = jax.device_put(state, state_shardings)
  abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
  jitted = train_state.jit_train_step(
    train_state.make_train_step(model, tx), part, state_shardings, frozen_shardings
  )
  batches = _batches(steps)
  if method == "multitask":  # rows of every task: each task's part trains
    for batch in batches:
      batch["encoder_input_tokens"][:, 0] = CFG.vocab_size - 1 - np.arange(8) % 3
  step, memory = train_state.compile_train_step(jitted, part, state, frozen, batches[0])
  assert "temp=" in memory
  metrics = []
  saver = None if model_dir is None else checkpointer.Checkpointer(str(model_dir))
  for i, batch in enumerate(batches):
    state, m = step(state, frozen, batch)
    metrics.append(jax.device_get(m))
    if saver is not None and i == 0:
      saver.save(state, {})
  if saver is None:
    return state, frozen, before, metrics
  resumed, _ = saver.restore(1, abstract, state_shardings)
  for batch in batches[1:]:
    resumed, _ = step(resumed, frozen, batch)
  return state, frozen, before, metrics, resumed


@pytest.fixture(scope="module")
def one_device():
  return _run(1)  # 8 devices on the data axis: pure data parallelism.


@pytest.mark.parametrize("num_partitions", [2, 4])
def test_mesh_shapes_give_the_same_prompt(one_device, num_partitions):
  want, _, _, want_metrics = one_device
  state, _, _, metrics = _run(num_partitions)
  path = "prompt/encoder/prompt/prompt"
  np.testing.assert_allclose(
    np.asarray(state.trainable[path]), np.asarray(want.trainable[path]), rtol=0, atol=1e-5
  )
  np.testing.assert_allclose(
    [m["loss"] for m in metrics], [m["loss"] for m in want_metrics], rtol=1e-5
  )


def test_single_device_mesh_matches_data_parallel(one_device):
  want, _, _, _ = one_device
  state, _, _, _ = _run(1, devices=jax.devices()[:1])
  path = "prompt/encoder/prompt/prompt"
  np.testing.assert_allclose(
    np.asarray(state.trainable[path]), np.asarray(want.trainable[path]), rtol=0, atol=1e-5
  )


def test_step_trains_only_the_prompt_and_keeps_frozen_bitwise(one_device):
  state, frozen, before, metrics = one_device
  assert int(state.step) == 3
  assert list(state.trainable) == ["prompt/encoder/prompt/prompt"]
  # The variables the model runs with after 3 steps, against host copies from before.
  after = trainable.flatten(trainable.merge(state.trainable, frozen))
  assert set(after) == set(before)
  for path, value in before.items():
    if path != "prompt/encoder/prompt/prompt":
      np.testing.assert_array_equal(np.asarray(after[path]), value, err_msg=path)
  assert not np.array_equal(
    np.asarray(after["prompt/encoder/prompt/prompt"]), before["prompt/encoder/prompt/prompt"]
  )
  assert all(np.isfinite(m["loss"]) and m["prompt_norm"] > 0 for m in metrics)


def test_model_tuning_shards_optimizer_state_like_the_weights():
  state, _, _, metrics = _run(2, what="all", steps=1)
  kernel = "params/encoder/layers_0/mlp/wi_0/kernel"
  by_model = jax.sharding.PartitionSpec(None, "model")
  assert state.trainable[kernel].sharding.spec == by_model
  # The optimizer's statistics of that kernel (unfactored at this width: its shape).
  stats = [
    leaf
    for path, leaf in jax.tree_util.tree_leaves_with_path(state.opt_state)
    if kernel in jax.tree_util.keystr(path) and leaf.shape == state.trainable[kernel].shape
  ]
  assert stats and all(leaf.sharding.spec == by_model for leaf in stats)
  assert all(len(leaf.sharding.device_set) == 8 for leaf in stats)
  assert np.isfinite(metrics[0]["loss"])


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_prompt_method_trains_its_own_variables_keeps_the_model_bitwise_and_resumes(
  method, tmp_path
):
  state, frozen, before, metrics, resumed = _run(1, method=method, model_dir=tmp_path)
  trained = sorted(state.trainable)
  assert trained == METHODS[method]
  after = trainable.flatten(trainable.merge(state.trainable, frozen))
  assert set(after) == set(before)
  for path, value in before.items():
    if path in trained:
      assert not np.array_equal(np.asarray(after[path]), value), f"{path} did not train"
      if path.endswith("/tasks"):  # a multi-task prompt: every task's part
        for t in range(3):
          assert not np.array_equal(np.asarray(after[path])[t], value[t]), f"task {t}"
    else:
      np.testing.assert_array_equal(np.asarray(after[path]), value, err_msg=path)
  assert all(np.isfinite(m["loss"]) for m in metrics)
  # Stopped after the first step and resumed from its checkpoint: the same variables.
  assert int(resumed.step) == int(state.step) == 3
  for path in trained:
    np.testing.assert_array_equal(
      np.asarray(resumed.trainable[path]), np.asarray(state.trainable[path]), err_msg=path
    )
