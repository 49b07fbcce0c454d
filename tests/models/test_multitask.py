"""Multi-task prompts (the original codebase's multitask_prompts.py, PEFT's MPT): each way
of combining the shared and task prompts against its formula in plain numpy, the task read
from each row's sentinel, and a batch mixing three tasks decoding each row as its task's
prompt alone on the plain model (what a run's bank serves)."""

import dataclasses
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prompt_tuning.checkpoints import prompt_files
from prompt_tuning.inference import decoding
from prompt_tuning.inference import predictor as predictor_lib
from prompt_tuning.models import prompt_init
from prompt_tuning.models import prompts
from prompt_tuning.models import t5
from tests.helpers import hf_reference
from tests.helpers import model_init

CFG = hf_reference.TINY
E = CFG.emb_dim
P = 4
TASKS = ("a", "b", "c")
SENTINEL = CFG.vocab_size - 1  # task t's first token: SENTINEL - t
RNGS = {"params": jax.random.key(0), "dropout": jax.random.key(1)}


def _numpy_combination(combine, v):
  """Each task's prompt by loops over tasks and positions."""
  out = []
  for t in range(len(v[next(n for n in v if n != "shared")])):
    shared = v["shared"]
    if combine == "add":
      out.append(shared + v["tasks"][t])
    elif combine == "concat":
      out.append(np.vstack([shared, v["tasks"][t]]))
    elif combine == "concat_features":
      out.append(np.hstack([shared, v["tasks"][t]]))
    elif combine == "project":
      out.append(np.stack([shared[p] @ v["kernel"][t] + v["bias"][t] for p in range(len(shared))]))
    else:  # mpt: the shared prompt times the task's low-rank matrix, elementwise
      low_rank = np.zeros_like(shared)
      for p in range(shared.shape[0]):
        for e in range(shared.shape[1]):
          low_rank[p, e] = sum(v["cols"][t, p, k] * v["rows"][t, k, e] for k in range(2))
      out.append(shared * low_rank)
  return np.stack(out)


def _random_variables(combine, seed=0):
  rng = np.random.default_rng(seed)
  n = lambda *shape: rng.normal(size=shape).astype(np.float32)
  shared_width = E // 2 if combine == "concat_features" else E
  v = {"shared": n(P, shared_width)}
  if combine == "project":
    v.update(kernel=n(3, E, E), bias=n(3, E))
  elif combine == "mpt":
    v.update(cols=n(3, P, 2), rows=n(3, 2, E))
  else:
    task_shape = {"add": (P, E), "concat": (2, E), "concat_features": (P, E - shared_width)}
    v["tasks"] = n(3, *task_shape[combine])
  return v


@pytest.mark.parametrize("combine", prompts.MULTITASK_COMBINES)
def test_each_combination_equals_its_formula(combine):
  v = _random_variables(combine)
  got = np.asarray(prompts.multitask_prompts(combine, v))
  np.testing.assert_allclose(got, _numpy_combination(combine, v), rtol=1e-5, atol=1e-5)
  # The module makes the same from its own variables, named as multitask_prompts reads them.
  module = _module(combine, **OPTIONS.get(combine, {}))
  variables = module.init(RNGS)["prompt"]
  assert sorted(variables) == sorted(prompts.MULTITASK_VARIABLES[combine])
  table = module.apply({"prompt": nn.meta.unbox(variables)})
  width = {"concat": P + 2}.get(combine, P)
  assert table.shape == (3, width, E)


# Each combination's own option (another combination's is refused).
OPTIONS = {"concat": {"task_length": 2}, "mpt": {"rank": 2}}


def _module(combine, **kw):
  init = prompt_init.fixed_array(np.random.default_rng(7).normal(size=(P, E)).astype(np.float32))
  return prompts.MultiTaskPrompt(
    P, E, init, tasks=TASKS, combine_tasks=combine, first_sentinel=SENTINEL, **kw
  )


def test_every_task_starts_at_the_shared_prompt():
  start = np.asarray(_module("add").prompt_init(None, (P, E)))
  for combine in ("add", "project", "concat_features"):
    module = _module(combine)
    table = np.asarray(module.apply(nn.meta.unbox(module.init(RNGS))))
    np.testing.assert_allclose(table, np.broadcast_to(start, table.shape), atol=1e-6)
  module = _module("concat", task_length=3)
  table = np.asarray(module.apply(nn.meta.unbox(module.init(RNGS))))
  np.testing.assert_array_equal(table[:, :P], np.broadcast_to(start, (3, P, E)))
  # MPT's product starts near ones, its ranks apart (equal ranks would train as one).
  module = _module("mpt", rank=2)
  variables = nn.meta.unbox(module.init(RNGS))
  np.testing.assert_allclose(module.apply(variables), np.broadcast_to(start, (3, P, E)), atol=0.3)
  cols = np.asarray(variables["prompt"]["cols"])
  assert np.abs(cols[..., 0] - cols[..., 1]).max() > 1e-3


def _models(combine="concat"):
  multi = t5.Transformer(CFG, prompt=_module(combine, **OPTIONS.get(combine, {})))
  plain = t5.Transformer(CFG, prompt=prompts.Prompt(P, E))
  variables = model_init.init_variables(multi)
  # Tasks apart from the start: random values in each variable.
  rng = np.random.default_rng(3)
  variables["prompt"] = jax.tree_util.tree_map(
    lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), variables["prompt"]
  )
  return multi, plain, variables


def _rows(seed=4):
  """Inputs led by their task's sentinel, the tasks mixed: (tokens, task ids)."""
  task = np.array([0, 1, 2, 2, 1, 0], np.int32)
  body = hf_reference.random_tokens(np.random.default_rng(seed), len(task), 6, SENTINEL - 3)
  return np.concatenate([(SENTINEL - task)[:, None], body], axis=1).astype(np.int32), task


def test_the_first_token_names_the_task_and_is_dropped():
  multi, plain, variables = _models()
  tokens, task = _rows()
  table = multi.apply(variables, method=t5.Transformer.method_values)
  assert table.shape == (3, P + 2, E)
  encode = jax.jit(
    lambda model, *a, **k: model.apply(*a, **k, method=model.encode), static_argnums=0
  )
  encoded, mask = encode(multi, variables, jnp.asarray(tokens))
  # The plain prompt model, each row given its task's prompt, on the tokens without sentinel.
  params = {"params": variables["params"]}
  want, want_mask = encode(plain, params, jnp.asarray(tokens[:, 1:]), prompts=table[task])
  np.testing.assert_array_equal(np.asarray(mask), np.asarray(want_mask))
  np.testing.assert_allclose(np.asarray(encoded), np.asarray(want), atol=1e-5, rtol=1e-5)
  # The check can tell: rows read as each other's task differ.
  wrong, _ = encode(plain, params, jnp.asarray(tokens[:, 1:]), prompts=table[2 - task])
  assert np.abs(np.asarray(wrong) - np.asarray(want))[task != 1].max() > 1e-3


def test_a_multitask_model_is_for_training_only():
  """Its inputs lead with a sentinel: infer, eval and serve take the run's bank instead."""
  from prompt_tuning.inference import engine  # pylint: disable=g-import-not-at-top

  multi, _, _ = _models()
  # Refused before the checkpoint is read (there is none at this path).
  config = predictor_lib.PredictorConfig(multi, None, "/no/checkpoint", {"inputs": 8, "targets": 4})
  for build in (predictor_lib.build, lambda c: engine.build(c, max_prompts=2, max_prompt_length=P)):
    with pytest.raises(ValueError, match="multitask.gin is for training") as error:
      build(config)
    assert "\n" not in str(error.value) and "as PROMPT_FILES on the plain prompt model" in str(
      error.value
    )


def test_a_batch_mixing_three_tasks_decodes_each_row_as_its_task_alone():
  multi, plain, variables = _models()
  tokens, task = _rows(5)
  decode = jax.jit(lambda v, x: decoding.decode(multi, v, x, max_length=5).tokens)
  mixed = decode(variables, jnp.asarray(tokens))
  own = predictor_lib.own_prompt(multi, variables)  # the run's bank: a prompt per task
  assert list(own) == list(TASKS)
  lengths = {"inputs": tokens.shape[1] - 1, "targets": 5}
  bank = predictor_lib.Predictor(
    plain, variables["params"], None, task_feature_lengths=lengths, prompts=own, batch_size=2
  )
  outputs = set()
  for t in range(len(TASKS)):  # each task's rows alone, its prompt only, on the plain model
    want = bank.predict_tokens(tokens[task == t, 1:], np.full(2, t, np.int32)).tokens
    np.testing.assert_array_equal(np.asarray(mixed)[task == t], want)
    outputs.add(want.tobytes())
  assert len(outputs) == 3  # the tasks' prompts matter


def test_a_runs_bank_is_named_by_task_and_combined_as_it_trained(tmp_path):
  v = _random_variables("concat_features")
  step = tmp_path / "run" / "numpy_checkpoints" / "checkpoint_7"
  os.makedirs(step)
  for name, value in v.items():
    np.save(step / f"encoder.prompt.{name}.npy", value)
  (tmp_path / "run" / "config.gin").write_text("MULTITASK_COMBINE = 'concat_features'\n")
  run = str(tmp_path / "run")
  assert prompt_files.is_multitask(run) and not prompt_files.is_multitask(str(tmp_path))
  assert prompt_files.step_of(run) == 7  # what eval records as EVAL_STEP
  bank = predictor_lib.prompt_bank(run)
  assert list(bank) == ["0", "1", "2"]  # the run names no mixture: task ids
  want = _numpy_combination("concat_features", v)
  np.testing.assert_allclose(np.stack(list(bank.values())), want, rtol=1e-6)
  # A path object is the same bank, and eval reads it as one prompt per task.
  from prompt_tuning.inference import evaluation  # pylint: disable=g-import-not-at-top

  by_path = predictor_lib.prompt_bank(tmp_path / "run")
  assert list(by_path) == list(bank) and evaluation.bank_kind(tmp_path / "run") == "tasks"
  # Read as another combination, the files are refused by what is missing.
  (tmp_path / "run" / "config.gin").write_text("MULTITASK_COMBINE = 'project'\n")
  with pytest.raises(ValueError, match=r"combined by 'project'.*encoder.prompt.kernel.npy"):
    predictor_lib.prompt_bank(run)
  # Without its config.gin: refused where 'add' would read the files too (two halves of
  # the width here), told by the files where they tell (tasks longer than the shared prompt).
  os.remove(tmp_path / "run" / "config.gin")
  with pytest.raises(ValueError, match="does not say how it combined its tasks"):
    predictor_lib.prompt_bank(run)
  concat = _random_variables("concat", seed=1)
  for name, value in concat.items():
    np.save(step / f"encoder.prompt.{name}.npy", value)
  got = np.stack(list(predictor_lib.prompt_bank(run).values()))
  np.testing.assert_allclose(got, _numpy_combination("concat", concat), rtol=1e-6)
  # As one prompt (a PROMPT_FILE, an ensemble's member) it is refused by what it is.
  with pytest.raises(FileNotFoundError, match="is a multi-task prompt's run, a prompt per task"):
    prompt_files.load_prompt_file(run)


def test_multitask_prompt_refusals():
  for kw, message in (
    ({"combine_tasks": "sum"}, "MULTITASK_COMBINE='sum': choose one of"),
    ({"combine_tasks": "concat_features", "shared_features": E}, "MULTITASK_SHARED_FEATURES"),
    ({"tasks": ()}, "one task or more"),
    ({"combine_tasks": "mpt", "rank": 0}, "MULTITASK_RANK=0"),
    ({"combine_tasks": "concat", "task_length": 0}, "MULTITASK_TASK_LENGTH=0"),
    # An option of another combination is refused, not ignored.
    ({"task_length": 5}, "MULTITASK_TASK_LENGTH=5 is for MULTITASK_COMBINE='concat'"),
    ({"combine_tasks": "mpt", "shared_features": 8}, r"MULTITASK_SHARED_FEATURES=8 is for"),
    (
      {"combine_tasks": "project", "rank": 2},
      r"^MULTITASK_RANK=2 is for MULTITASK_COMBINE='mpt', and this prompt combines by "
      r"'project': unset it \(its default is 1\) or combine by 'mpt'",
    ),
    ({"combine_tasks": "project", "rank": True}, "MULTITASK_RANK=True is for"),
  ):
    module = dataclasses.replace(_module("add"), **kw)
    with pytest.raises(ValueError, match=message) as error:
      module.init(RNGS)
    assert "\n" not in error.value.args[0]  # (JAX appends a note about its frames to str())


def test_a_multitask_runs_own_evaluations_give_each_task_its_prompt(monkeypatch):
  """The routing of the trainer's decoding evaluation of a multi-task model: each of the
  mixture's tagged tasks is evaluated with that task's prompt alone (the bank member named
  by the task), not the bank's ensemble of every task; that a member alone decodes as its
  prompt is test_a_batch_mixing_three_tasks_decodes_each_row_as_its_task_alone's."""
  from prompt_tuning.data import multitask  # pylint: disable=g-import-not-at-top
  from prompt_tuning.data import tasks  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import evaluation  # pylint: disable=g-import-not-at-top

  names = multitask.task_names("wordnet_multitask", tasks.__name__)
  assert names == ("wordnet_supersense", "wordnet_hypernym")
  multi, _, variables = _models("add")
  multi = dataclasses.replace(multi, prompt=dataclasses.replace(multi.prompt, tasks=names))
  variables["prompt"]["encoder"]["prompt"]["tasks"] = variables["prompt"]["encoder"]["prompt"][
    "tasks"
  ][:2]
  want = np.asarray(multi.apply(variables, method=t5.Transformer.method_values))
  seen = []

  def evaluate(self, pred, members, *, step=0, **kw):
    del kw
    bank = dict(zip(pred.prompt_names, np.asarray(pred._bank)))  # pylint: disable=protected-access
    seen.append((self.task_name, members, step, bank))
    return {".": {"accuracy": float(len(seen))}}

  monkeypatch.setattr(evaluation.TaskSplitEvaluation, "evaluate", evaluate)
  evaluate_run = evaluation.DecodedEvaluation(
    multi,
    None,
    evaluation.SplitConfig("wordnet_multitask"),
    {"inputs": 48, "targets": 4},
    output_dir=None,
  )
  metrics = evaluate_run(250, variables)
  assert sorted((task, members, step) for task, members, step, _ in seen) == sorted(
    (f"wordnet_multitask.{name}", [name], 250) for name in names
  )
  for _, _, _, bank in seen:  # the bank is the run's tasks' prompts, by name
    assert list(bank) == list(names)
    for t, name in enumerate(names):
      np.testing.assert_array_equal(bank[name], want[t])
  assert metrics == {f"{task}/accuracy": i + 1.0 for i, (task, *_) in enumerate(seen)}
