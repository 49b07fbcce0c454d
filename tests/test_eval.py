"""`python -m prompt_tuning.eval`: seqio metrics that the written predictions reproduce."""

import collections
import json
import os
import shutil
import re
import subprocess
import sys

import numpy as np
import pytest

from tests import conftest


def _eval(tmp_path, out_dir, *extra, ok=True):
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=1",
    T5_VOCAB=str(conftest.VOCAB_PATH),
  )
  cmd = [
    sys.executable,
    "-m",
    "prompt_tuning.eval",
    "--gin_file=configs/test/tiny.gin",
    *[a for a in extra if a.startswith("--gin_file")],
    "--gin_file=configs/runs/prompt_eval.gin",
    "--gin.INITIAL_CHECKPOINT_PATH=None",
    f"--gin.SENTENCEPIECE_MODEL_FILE='{conftest.VOCAB_PATH}'",
    "--gin.MIXTURE_OR_TASK_MODULE='tests.helpers.eval_tasks'",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 4}",
    "--gin.BATCH_SIZE=4",
    f"--gin.EVAL_OUTPUT_DIR='{out_dir}'",
    *[a for a in extra if not a.startswith("--gin_file")],
  ]
  result = subprocess.run(
    cmd, cwd=conftest.REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
  )
  assert (result.returncode == 0) == ok, result.stderr[-3000:]
  return result


def _predictions(directory, task, step=0):
  with open(os.path.join(directory, f"{task}-{step:06d}.jsonl")) as f:
    return [json.loads(line) for line in f]


def _accuracy(rows):
  return 100.0 * np.mean([r["target"] == r["prediction"] for r in rows])


def _prompt_files(tmp_path, n, length=4):
  paths = []
  for i in range(n):
    path = tmp_path / f"prompt_{i}.npy"
    np.save(path, np.random.default_rng(i).uniform(-0.5, 0.5, (length, 16)).astype(np.float32))
    paths.append(str(path))
  return paths


@pytest.mark.integration
def test_rank_mode_metrics_are_recomputed_from_the_written_predictions(tmp_path):
  # 6 tokens where configs/test/tiny.gin says PROMPT_LENGTH=4: from_file.gin takes the file's.
  # The prompt of step 6 of a run (its MODEL_DIR as PROMPT_FILE): the metrics and the
  # predictions' file name carry that step (EVAL_STEP None).
  (prompt,) = _prompt_files(tmp_path, 1, length=6)
  step_dir = tmp_path / "run" / "numpy_checkpoints" / "checkpoint_6"
  step_dir.mkdir(parents=True)
  shutil.copy(prompt, step_dir / "encoder.prompt.prompt.npy")
  out = tmp_path / "eval"
  result = _eval(
    tmp_path,
    out,
    "--gin_file=configs/prompts/from_file.gin",
    f"--gin.PROMPT_FILE='{tmp_path / 'run'}'",
    "--gin.MIXTURE_OR_TASK_NAME='eval_sentiment'",
    "--gin.EVAL_MODE='rank'",
    "--gin.CLASS_LABELS=['positive', 'negative']",
  )
  written = json.loads((out / "metrics.json").read_text())
  assert written["step"] == 6
  assert "the full log, the libraries' INFO lines included: " + str(out / "eval.full.log") in (
    result.stderr
  )
  metrics = written["results"]["eval_sentiment"]["."]
  rows = _predictions(out / ".", "eval_sentiment", step=6)
  assert len(rows) == 13 and {r["prediction"] for r in rows} <= {"positive", "negative"}
  np.testing.assert_allclose(metrics["accuracy"], _accuracy(rows))
  assert "eval_sentiment" in result.stdout and "accuracy" in result.stdout  # the table
  assert any(f.startswith("events.out.tfevents") for _, _, files in os.walk(out) for f in files)


@pytest.mark.integration
def test_ensemble_reports_each_member_and_the_majority_vote(tmp_path):
  prompts = _prompt_files(tmp_path, 3)
  out = tmp_path / "eval"
  _eval(
    tmp_path, out, "--gin.MIXTURE_OR_TASK_NAME='eval_sentiment'", f"--gin.PROMPT_FILES={prompts}"
  )
  results = json.loads((out / "metrics.json").read_text())["results"]["eval_sentiment"]
  assert set(results) == {"ensemble", "0", "1", "2"}
  members = [_predictions(out / str(i), "eval_sentiment") for i in range(3)]
  ensemble = _predictions(out / "ensemble", "eval_sentiment")
  for i, rows in enumerate(members):
    np.testing.assert_allclose(results[str(i)]["accuracy"], _accuracy(rows))
  np.testing.assert_allclose(results["ensemble"]["accuracy"], _accuracy(ensemble))
  for k, row in enumerate(ensemble):
    votes = [m[k]["prediction"] for m in members]
    assert votes.count(row["prediction"]) == max(votes.count(v) for v in votes)
  assert len({tuple(r["prediction"] for r in m) for m in members}) > 1  # the prompts differ


@pytest.mark.integration
@pytest.mark.slow
def test_a_mixture_gives_each_task_its_own_prompt(tmp_path):
  a, b = _prompt_files(tmp_path, 2)
  out = tmp_path / "mixed"
  _eval(
    tmp_path,
    out,
    "--gin.MIXTURE_OR_TASK_NAME='eval_sentiment_mixture'",
    f"--gin.PROMPT_FILES={{'eval_sentiment': '{a}', 'eval_sentiment_copy': '{b}'}}",
  )
  single = tmp_path / "single"
  _eval(
    tmp_path, single, "--gin.MIXTURE_OR_TASK_NAME='eval_sentiment'", f"--gin.PROMPT_FILES=['{b}']"
  )
  # The copy task (same data) under prompt b predicts what the single run with b does.
  assert [r["prediction"] for r in _predictions(out / ".", "eval_sentiment_copy")] == [
    r["prediction"] for r in _predictions(single / ".", "eval_sentiment")
  ]
  assert [r["prediction"] for r in _predictions(out / ".", "eval_sentiment")] != [
    r["prediction"] for r in _predictions(single / ".", "eval_sentiment")
  ]


@pytest.mark.integration
def test_training_evaluation_decodes_and_reports_the_tasks_metrics(tmp_path):
  model_dir = tmp_path / "run"
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=1",
    T5_VOCAB=str(conftest.VOCAB_PATH),
  )
  cmd = [
    sys.executable,
    "-m",
    "prompt_tuning.train",
    "--gin_file=configs/test/tiny.gin",
    "--gin_file=configs/runs/prompt_finetune.gin",
    f"--gin.MODEL_DIR='{model_dir}'",
    "--gin.MIXTURE_OR_TASK_NAME='eval_sentiment'",
    "--gin.MIXTURE_OR_TASK_MODULE='tests.helpers.eval_tasks'",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 4}",
    "--gin.TRAIN_STEPS=2",
    "--gin.INITIAL_CHECKPOINT_PATH=None",
    "--gin.EVAL_PERIOD=2",
    "--gin.BATCH_SIZE=4",
    f"--gin.SENTENCEPIECE_MODEL_FILE='{conftest.VOCAB_PATH}'",
    "--gin.TEST_SPLIT=['test', 'train']",
  ]
  result = subprocess.run(
    cmd, cwd=conftest.REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "eval_sentiment/accuracy=" in result.stderr
  out = model_dir / "inference_eval"
  summaries = [json.loads(line) for line in (model_dir / "metrics.jsonl").open()]
  (recorded,) = [r for r in summaries if "eval/eval_sentiment/accuracy" in r]
  # The validation split, and each of TEST_SPLIT's at the same step.
  for where, split, examples in (
    (out, "validation", eval_tasks_examples()),
    (out / "test", "test", eval_tasks_examples("test")),
    (out / "train", "train", eval_tasks_examples("train")),
  ):
    rows = [json.loads(line) for line in (where / "eval_sentiment-000002.jsonl").open()]
    assert [r["target"] for r in rows] == [e["targets"] for e in examples], split
    logged = json.loads((where / "eval_sentiment-metrics.jsonl").read_text().splitlines()[-1])
    assert logged["step"] == 2
    np.testing.assert_allclose(logged["accuracy"], _accuracy(rows))
    prefix = "eval/eval_sentiment/" + ("" if split == "validation" else f"{split}/")
    np.testing.assert_allclose(recorded[prefix + "accuracy"], _accuracy(rows))
    # What the predictions show: the most common one's share (no label set is known for
    # this task, so no share outside it).
    counts = collections.Counter(r["prediction"] for r in rows)
    assert recorded[prefix + "predictions/most_common_share"] == max(counts.values()) / len(rows)
    assert prefix + "predictions/outside_labels_share" not in recorded


def test_prediction_shares_count_the_most_common_answer_and_answers_outside_the_labels():
  from prompt_tuning.data import wordnet  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import evaluation  # pylint: disable=g-import-not-at-top

  vocab = wordnet.VOCABULARY
  outputs = [
    vocab.encode(text)
    for text in ["animal", "animal", "plant", "an anim", "animal", "food", "ed with the"]
  ]
  labels = evaluation._label_set("wordnet_supersense")  # pylint: disable=protected-access
  assert labels == set(wordnet.LABELS)
  assert evaluation._label_set("eval_sentiment") is None  # pylint: disable=protected-access
  assert evaluation.prediction_shares(outputs, vocab, labels) == {
    "predictions/most_common_share": 3 / 7,
    "predictions/outside_labels_share": 2 / 7,
  }
  assert evaluation.prediction_shares(outputs, vocab, None) == {
    "predictions/most_common_share": 3 / 7
  }


def eval_tasks_examples(split="validation"):
  """tests/helpers/eval_tasks.py's examples of `split` (it reads T5_VOCAB when imported)."""
  os.environ.setdefault("T5_VOCAB", str(conftest.VOCAB_PATH))
  from tests.helpers import eval_tasks  # pylint: disable=g-import-not-at-top

  return eval_tasks.TEST_EXAMPLES if split == "test" else eval_tasks.EXAMPLES


def _one_error_line(result):
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  return errors[0]


@pytest.mark.integration
def test_prompt_sources_that_disagree_are_one_line_errors(tmp_path):
  (prompt,) = _prompt_files(tmp_path, 1, length=6)
  common = (
    "--gin_file=configs/prompts/from_file.gin",
    f"--gin.PROMPT_FILE='{prompt}'",
    "--gin.MIXTURE_OR_TASK_NAME='eval_sentiment'",
  )
  length = _eval(tmp_path, tmp_path / "a", *common, "--gin.PROMPT_LENGTH=4", ok=False)
  assert _one_error_line(length) == (
    f"error: prompt file {prompt} has shape (6, 16); the config says PROMPT_LENGTH=4, EMBED_DIM=16"
  )
  both = _eval(tmp_path, tmp_path / "b", *common, f"--gin.PROMPT_FILES=['{prompt}']", ok=False)
  assert _one_error_line(both).startswith(
    "error: PROMPT_FILES replaces the model's own prompt, which configs/prompts/from_file.gin "
    "reads from PROMPT_FILE; remove --gin_file=configs/prompts/from_file.gin"
  )
  assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_test_split_the_task_lacks_is_a_clear_error():
  from prompt_tuning.inference import evaluation  # pylint: disable=g-import-not-at-top

  eval_tasks_examples()  # registers the tasks
  make = evaluation.infer_eval(
    model=None,
    data=evaluation.SplitConfig("eval_sentiment"),
    task_feature_lengths={"inputs": 16, "targets": 4},
    test_split="tset",
  )
  with pytest.raises(
    ValueError,
    match=re.escape(
      "TEST_SPLIT='tset': task eval_sentiment has no split 'tset' (it has train, validation, "
      "test); set TEST_SPLIT to splits it has, or None"
    ),
  ):
    make(None, None)


@pytest.mark.parametrize("test_split", [[], ["test", "test"], ["test", 3]])
def test_a_test_split_list_that_names_no_split_or_one_twice_is_a_clear_error(test_split):
  from prompt_tuning.inference import evaluation  # pylint: disable=g-import-not-at-top

  eval_tasks_examples()  # registers the tasks
  make = evaluation.infer_eval(
    model=None,
    data=evaluation.SplitConfig("eval_sentiment"),
    task_feature_lengths={"inputs": 16, "targets": 4},
    test_split=test_split,
  )
  with pytest.raises(
    ValueError,
    match=re.escape(
      f"TEST_SPLIT={test_split!r}; give a split's name (e.g. 'test'), a list of different names "
      "(e.g. ['test', 'ood']) or None"
    ),
  ):
    make(None, None)


def test_a_bank_in_one_directory_gives_its_step_as_eval_step(tmp_path):
  """PROMPT_FILES naming one directory (a multi-task prompt's run) records its numpy
  checkpoint's step, as a PROMPT_FILE does (before: read letter by letter, an error)."""
  import gin  # pylint: disable=g-import-not-at-top

  from prompt_tuning import eval as eval_lib  # pylint: disable=g-import-not-at-top

  step = tmp_path / "run" / "numpy_checkpoints" / "checkpoint_7"
  os.makedirs(step)
  np.save(step / "encoder.prompt.shared.npy", np.zeros((2, 4), np.float32))
  np.save(step / "encoder.prompt.tasks.npy", np.zeros((3, 2, 4), np.float32))
  gin.clear_config()
  try:
    gin.parse_config(f"PROMPT_FILES = '{tmp_path / 'run'}'\nEVAL_STEP = None")
    eval_lib._infer_eval_step()
    assert gin.query_parameter("%EVAL_STEP") == 7
  finally:
    gin.clear_config()
