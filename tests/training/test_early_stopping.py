"""The trainer keeps its best evaluation's prompt, picked as the sweep report picks, and a
resumed run takes up its checkpoint's best, whatever was written after it."""

import json
import os
import random

import jax.numpy as jnp
import numpy as np

from prompt_tuning.checkpoints import checkpointer
from prompt_tuning.checkpoints import layout
from prompt_tuning.sweep import report as report_lib
from prompt_tuning.training import early_stopping

PROMPT = layout.PROMPT_PREFIX + "encoder/prompt/prompt"


def _report_best_step(history):
  """The best step `report` picks from the same evaluations (its own code, from eval/ lines)."""
  evals = {step: {f"eval/{k}": v for k, v in metrics.items()} for step, metrics in history}
  report_lib._add_score(evals)  # pylint: disable=protected-access
  metric = report_lib.main_metric(None, evals)
  sign = 1 if metric != "eval/loss" else -1
  scored = [(step, v[metric]) for step, v in sorted(evals.items())]
  return max(scored, key=lambda sv: (sign * sv[1], -sv[0]))[0]


def _trainer_best_step(tmp_path, history):
  best = early_stopping.BestEvaluation(str(tmp_path), write=True)
  best.restore(None, None)
  for step, metrics in history:
    best.update(step, metrics, {PROMPT: np.full((2, 3), step, np.float32)})
  return best.record["step"]


def test_the_best_step_is_the_one_the_sweep_report_picks(tmp_path):
  rng = random.Random(0)
  shapes = [  # one decoded metric; two tasks (a mean); teacher-forced only (the lowest loss)
    ["a/accuracy"],
    ["a/accuracy", "b/accuracy"],
    ["a/accuracy", "a/f1", "b/accuracy"],
    [],
  ]
  for trial in range(40):
    names = shapes[trial % len(shapes)]
    history = []
    for step in range(10, 90, 10):
      values = rng.choice([[10.0, 20.0, 30.0], [1.0, 2.0]])  # few values: ties happen
      metrics = {"loss": rng.choice(values), "accuracy": rng.choice(values)}
      for name in names:
        task = name.split("/")[0]
        metrics[name] = rng.choice(values)
        # Other splits and the predictions' shares: never scored, by either.
        metrics[f"{task}/test/accuracy"] = rng.random()
        metrics[f"{task}/ood/accuracy"] = rng.random()
        metrics[f"{task}/predictions/most_common_share"] = rng.random()
      if trial % 3 == 0:  # a wayward prompt's report: about the prompt, not a task
        metrics["wayward/nearest_match"] = rng.choice(values)
      history.append((step, metrics))
    assert _trainer_best_step(tmp_path / str(trial), history) == _report_best_step(history), (
      names,
      history,
    )


def test_a_wayward_prompts_report_is_not_a_task():
  """`wayward/nearest_match` is about the prompt: the task's metric alone picks the best."""
  metrics = {"loss": 2.0, "wordnet_supersense/accuracy": 30.0, "wayward/nearest_match": 1.0}
  assert early_stopping.score(metrics) == ("wordnet_supersense/accuracy", "max", 30.0)
  assert early_stopping.score({"loss": 2.0, "wayward/nearest_match": 1.0}) == ("loss", "min", 2.0)
  evals = {10: {f"eval/{k}": v for k, v in metrics.items()}}
  assert report_lib.main_metric(None, evals) == "eval/wordnet_supersense/accuracy"


def test_best_holds_the_prompt_of_the_best_evaluation(tmp_path):
  best = early_stopping.BestEvaluation(str(tmp_path), write=True)
  best.restore(None, None)
  prompts = {
    step: np.random.default_rng(step).normal(size=(4, 8)).astype(np.float32)
    for step in (250, 500, 750)
  }
  for step, accuracy in ((250, 30.0), (500, 40.0), (750, 35.0)):
    best.update(step, {"t/accuracy": accuracy, "loss": 1.0}, {PROMPT: prompts[step]})
  record = json.loads((tmp_path / "best" / "best.json").read_text())
  assert record == {"step": 500, "metric": "t/accuracy", "mode": "max", "value": 40.0}
  np.testing.assert_array_equal(np.load(tmp_path / "best" / layout.PROMPT_FILE_NAME), prompts[500])
  assert sorted(os.listdir(tmp_path)) == ["best"]  # no temporary directory left


def test_a_resumed_run_takes_up_its_checkpoints_best_not_what_was_written_after(tmp_path):
  model_dir = str(tmp_path)
  a, b, c = (np.full((2, 3), v, np.float32) for v in (1.0, 2.0, 3.0))
  best = early_stopping.BestEvaluation(model_dir, write=True)
  best.restore(None, None)
  best.update(250, {"t/accuracy": 50.0}, {PROMPT: a})
  ckpt = checkpointer.Checkpointer(model_dir)
  state = {"step": jnp.asarray(500, jnp.int32), "trainable": {PROMPT: jnp.asarray(b)}}
  ckpt.save(state, {"best": best.record}, best.checkpoint_arrays())
  saved_record = dict(best.record)
  best.update(750, {"t/accuracy": 60.0}, {PROMPT: c})  # after the checkpoint, then a kill
  assert json.loads((tmp_path / "best" / "best.json").read_text())["step"] == 750

  resumed = early_stopping.BestEvaluation(model_dir, write=True)
  _, record = ckpt.restore(500, state)
  resumed.restore(record["best"], layout.numpy_step_dir(model_dir, 500))
  assert resumed.record == saved_record
  assert json.loads((tmp_path / "best" / "best.json").read_text())["step"] == 250
  np.testing.assert_array_equal(np.load(tmp_path / "best" / layout.PROMPT_FILE_NAME), a)
  # The replayed evaluation at 750 is a new best again; a worse one at 1000 is not.
  assert resumed.update(750, {"t/accuracy": 60.0}, {PROMPT: c})
  assert not resumed.update(1000, {"t/accuracy": 55.0}, {PROMPT: b})
  np.testing.assert_array_equal(np.load(tmp_path / "best" / layout.PROMPT_FILE_NAME), c)
  # The checkpoint's own prompt is unchanged by the copy beside it (PROMPT_FILE reads it).
  np.testing.assert_array_equal(
    np.load(os.path.join(layout.numpy_step_dir(model_dir, 500), layout.PROMPT_FILE_NAME)), b
  )


def test_a_fresh_run_removes_a_stale_best_and_model_tuning_keeps_only_the_record(tmp_path):
  (tmp_path / "best").mkdir()
  (tmp_path / "best" / "best.json").write_text("{}")
  best = early_stopping.BestEvaluation(str(tmp_path), write=True)
  best.restore(None, None)
  assert not (tmp_path / "best").exists()
  best.update(10, {"loss": 2.0}, {"params/decoder/logits_dense/kernel": np.ones((2, 2))})
  assert os.listdir(tmp_path / "best") == ["best.json"]
  assert best.checkpoint_arrays() == {}
  assert not best.update(20, {"loss": 2.5}, {})  # the loss: lower is better
  assert best.update(30, {"loss": 1.5}, {})
