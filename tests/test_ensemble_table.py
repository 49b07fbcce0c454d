"""scripts/ensemble_table.py: a sweep's seeds as prompt ensembles (the paper's Table 3).

The sweep here is made by hand: one size of the tiny test model (random, from
the lowest seed), two tasks, three seeds, each point's best prompt a numpy
array (a seed's prompt is the same for both tasks, and every split holds the
same inputs, so one first pass gives every split's predictions). The targets
are then chosen from the members' own predictions (on task a's test split
member 0 is right on half the examples, 1 on a third, 2 on a sixth, at least),
so that the members' scores differ and the ensemble's is not zero; their
best.json values rank them otherwise on validation.
"""

import collections
import importlib.util
import json
import os
import statistics
import sys
import textwrap

import numpy as np
import pytest

from tests import conftest

SCRIPT = conftest.REPO_ROOT / "scripts" / "ensemble_table.py"
TASKS_MODULE = "ensemble_table_tasks"
TARGETS_VARIABLE = "ENSEMBLE_TABLE_TARGETS"
SPLITS = {"a": ["test", "ood"], "b": ["test"]}
# Example k's target is member PATTERN[k % 6]'s prediction: member 0 is the best on test
# but for task a's ood split.
PATTERNS = {
  ("a", "test"): (0, 0, 0, 1, 1, 2),
  ("a", "ood"): (2, 2, 2, 1, 1, 0),
  ("b", "test"): (0, 0, 0, 2, 2, 1),
}
SEEDS = (0, 1, 2)
# best.json's validation values: task a's best is seed 1 (tied with 2: the lowest seed
# wins), task b's is seed 2; by the targets below, seed 0 is the best on test.
VALIDATION = {"a": {0: 40.0, 1: 60.0, 2: 60.0}, "b": {0: 10.0, 1: 20.0, 2: 30.0}}
BEST_ON_VALIDATION = {"a": 1, "b": 2}
PARAMETERS = 12345

TASKS_SOURCE = textwrap.dedent(f"""\
    import json
    import os

    import seqio
    import tensorflow as tf

    VOCAB = seqio.SentencePieceVocabulary({str(conftest.VOCAB_PATH)!r})
    WORDS = ["great", "awful", "lovely", "boring", "superb", "dreadful", "fine", "bad",
             "moving", "dull", "charming", "tedious"]
    INPUTS = [f"review {{i}}: the film was {{w}}" for i, w in enumerate(WORDS)]  # every split's


    def accuracy(targets, predictions):
      return {{"accuracy": 100.0 * sum(t == p for t, p in zip(targets, predictions)) /
                          len(targets)}}


    def dataset(task):
      def fn(split, shuffle_files, seed=None):
        del shuffle_files, seed
        path = os.environ.get({TARGETS_VARIABLE!r})
        if path:
          with open(path) as f:
            targets = json.load(f)[task][split]
        else:  # the first pass: no example is right
          targets = ["positive"] * len(INPUTS)
        return tf.data.Dataset.from_tensor_slices({{"inputs": INPUTS, "targets": targets}})
      return fn


    for task, splits in (("ensemble_table_a", ["validation", "test", "ood"]),
                         ("ensemble_table_b", ["validation", "test"])):
      if task not in seqio.TaskRegistry.names():
        seqio.TaskRegistry.add(
            task, source=seqio.FunctionDataSource(dataset(task), splits=splits),
            preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
            output_features={{"inputs": seqio.Feature(VOCAB, add_eos=True),
                              "targets": seqio.Feature(VOCAB, add_eos=True)}},
            metric_fns=[accuracy])
    """)


def _script():
  spec = importlib.util.spec_from_file_location("ensemble_table", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def tasks_module(tmp_path_factory):
  """The tasks' module on the path (MIXTURE_OR_TASK_MODULE), as a user's would be."""
  directory = tmp_path_factory.mktemp("tasks")
  (directory / f"{TASKS_MODULE}.py").write_text(TASKS_SOURCE)
  sys.path.insert(0, str(directory))
  yield TASKS_MODULE
  sys.path.remove(str(directory))


def _name(task, seed):
  return f"size=tiny,task={task},RANDOM_SEED={seed}"


def _write_json(path, value):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(value, f, indent=1)


def _make_sweep(sweep_dir, recorded=None, splits_of=None):
  """The sweep directory, written here without the sweep's code (a reader's test should
  not share its writer). `recorded`: {(task, seed): test score} for metrics.jsonl;
  `splits_of`: {task: TEST_SPLIT} (default SPLITS)."""
  splits_of = splits_of or SPLITS
  names = [_name(task, seed) for task in splits_of for seed in SEEDS]
  _write_json(
    os.path.join(sweep_dir, "sweep.json"),
    {
      "name": "table3_by_hand",
      "axes": ["size", "task", "RANDOM_SEED"],
      "seed_axes": ["RANDOM_SEED"],
      "average_axes": ["task"],
      "metric": None,
      "metric_mode": "max",
      "resources": {"CPU": 1},
      "points": names,
    },
  )
  index = 0
  for task, splits in splits_of.items():
    for seed in SEEDS:
      point = os.path.join(sweep_dir, _name(task, seed))
      argv = [
        "-m",
        "prompt_tuning.train",
        "--gin_file=configs/test/tiny.gin",
        "--gin_file=configs/runs/prompt_finetune.gin",
        "--gin.INITIAL_CHECKPOINT_PATH=None",
        f"--gin.SENTENCEPIECE_MODEL_FILE='{conftest.VOCAB_PATH}'",
        f"--gin.MIXTURE_OR_TASK_MODULE='{TASKS_MODULE}'",
        f"--gin.MIXTURE_OR_TASK_NAME='ensemble_table_{task}'",
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 4}",
        "--gin.BATCH_SIZE=4",
        "--gin.TRAIN_STEPS=2",
        f"--gin.TEST_SPLIT={splits}",
        f"--gin.RANDOM_SEED={seed}",
        f"--gin.MODEL_DIR='{point}'",
      ]
      _write_json(
        os.path.join(point, "point.json"),
        {
          "sweep": "table3_by_hand",
          "name": _name(task, seed),
          "index": index,
          "axes": [
            ["size", "tiny", "tiny"],
            ["task", task, task],
            ["RANDOM_SEED", str(seed), seed],
          ],
          "seed_axes": ["RANDOM_SEED"],
          "average_axes": ["task"],
          "metric": None,
          "metric_mode": "max",
          "resources": {"CPU": 1},
          "model_dir": point,
          "argv": argv,
          "env": {},
        },
      )
      index += 1
      _write_json(os.path.join(point, "status.json"), {"status": "done", "wall_s": 1.0})
      lines = [
        {
          "event": "start",
          "step": 0,
          "parameters_total": PARAMETERS + 64,
          "parameters_model": PARAMETERS,
          "parameters_trainable": 64,
          "train_steps": 2,
        }
      ]
      if recorded:  # the best step's line, and a later step's that must not be read
        key = f"eval/ensemble_table_{task}/test/accuracy"
        lines += [{"step": 2, key: recorded[task, seed]}, {"step": 3, key: -1.0}]
      with open(os.path.join(point, "metrics.jsonl"), "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)
      _write_json(
        os.path.join(point, "best", "best.json"),
        {
          "step": 2,
          "metric": f"ensemble_table_{task}/accuracy",
          "mode": "max",
          "value": VALIDATION[task][seed],
        },
      )
      prompt = np.random.default_rng(seed).uniform(-0.5, 0.5, (4, 16))
      np.save(os.path.join(point, "best", "encoder.prompt.prompt.npy"), prompt.astype(np.float32))


def _predictions(eval_dir, task, split, view):
  path = os.path.join(
    eval_dir, f"size=tiny,task={task}", split, view, f"ensemble_table_{task}-000000.jsonl"
  )
  with open(path) as f:
    return [json.loads(line) for line in f]


def _accuracy(predictions, targets):
  return 100.0 * sum(p == t for p, t in zip(predictions, targets)) / len(targets)


@pytest.mark.integration
@pytest.mark.slow
def test_the_table_is_one_pass_per_split_with_the_vote_and_the_best_member_on_validation(
  tmp_path, tasks_module, capsys, monkeypatch
):
  del tasks_module
  script = _script()
  monkeypatch.delenv(TARGETS_VARIABLE, raising=False)
  first = str(tmp_path / "first")  # task a's test split alone: every split's predictions
  _make_sweep(str(tmp_path / "first_sweep"), splits_of={"a": ["test"]})
  assert (
    script.main(
      [
        f"--sweep_dir={tmp_path / 'first_sweep'}",
        f"--json={tmp_path / 'first.json'}",
        f"--eval_dir={first}",
      ]
    )
    == 0
  )
  capsys.readouterr()
  predicted = [
    [r["prediction"] for r in _predictions(first, "a", "test", str(i))] for i in range(len(SEEDS))
  ]
  assert len(set(map(tuple, predicted))) == len(SEEDS)  # the prompts differ
  # Targets from the members' own predictions of the first pass.
  members = {(task, split): predicted for task, splits in SPLITS.items() for split in splits}
  targets = {
    f"ensemble_table_{task}": {"validation": ["positive"] * len(predicted[0])} for task in SPLITS
  }
  for (task, split), pattern in PATTERNS.items():
    targets[f"ensemble_table_{task}"][split] = [
      predicted[pattern[k % len(pattern)]][k] for k in range(len(predicted[0]))
    ]
  (tmp_path / "targets.json").write_text(json.dumps(targets))
  monkeypatch.setenv(TARGETS_VARIABLE, str(tmp_path / "targets.json"))
  # What each run "recorded" at its best step: its score on these targets.
  recorded = {
    (task, seed): _accuracy(members[task, "test"][i], targets[f"ensemble_table_{task}"]["test"])
    for task in SPLITS
    for i, seed in enumerate(SEEDS)
  }
  sweep_dir = str(tmp_path / "sweep")
  _make_sweep(sweep_dir, recorded)

  out, eval_dir = tmp_path / "results" / "ensembles.json", str(tmp_path / "eval")
  assert script.main([f"--sweep_dir={sweep_dir}", f"--json={out}", f"--eval_dir={eval_dir}"]) == 0
  printed = capsys.readouterr().out
  results = json.loads(out.read_text())
  assert results["seeds"] == list(SEEDS) and results["seed_axis"] == "RANDOM_SEED"
  (row,) = results["rows"]
  assert row["setting"] == {"size": "tiny"} and row["parameters"] == PARAMETERS
  assert [t["task"] for t in row["tasks"]] == list(SPLITS)
  for entry in row["tasks"]:
    task = entry["task"]
    assert entry["splits"] == SPLITS[task]
    assert [m["seed"] for m in entry["members"]] == list(SEEDS)
    assert [m["validation"] for m in entry["members"]] == [VALIDATION[task][s] for s in SEEDS]
    for split in SPLITS[task]:
      truth = targets[f"ensemble_table_{task}"][split]
      rows = [_predictions(eval_dir, task, split, str(i)) for i in range(len(SEEDS))]
      predicted = [[r["prediction"] for r in member] for member in rows]
      assert predicted == members[task, split]  # the same prompts, the same predictions
      scores = [_accuracy(p, truth) for p in predicted]
      assert [m["scores"][split] for m in entry["members"]] == pytest.approx(scores)
      # The vote, counted here: a strict majority wins; with none (all differ) the
      # ensemble's answer is one of the members' (the pass breaks the tie by likelihood).
      ensemble = [r["prediction"] for r in _predictions(eval_dir, task, split, "ensemble")]
      voted = []
      for k, answer in enumerate(ensemble):
        counts = collections.Counter(p[k] for p in predicted)
        top, n = counts.most_common(1)[0]
        voted.append(top if n > len(SEEDS) // 2 else answer)
        assert answer in counts
      summary = entry["summary"][split]
      assert summary["ensemble"] == pytest.approx(_accuracy(voted, truth))
      assert summary["mean"] == pytest.approx(statistics.fmean(scores))
      assert summary["std"] == pytest.approx(statistics.stdev(scores))
      # The best member is chosen on validation (ties: the lowest seed), not on test.
      best = SEEDS.index(BEST_ON_VALIDATION[task])
      assert entry["best_seed"] == BEST_ON_VALIDATION[task]
      assert summary["best_member"] == pytest.approx(scores[best])
      assert max(scores) > scores[best], "the test must tell validation from test"
    assert [m["recorded"]["test"] for m in entry["members"]] == pytest.approx(
      [recorded[task, s] for s in SEEDS]
    )
    assert all(m["recorded"].get("ood") is None for m in entry["members"])
  # The study's score: the mean over tasks (each seed's mean, then over seeds).
  per_seed = [
    statistics.fmean(t["members"][i]["scores"]["test"] for t in row["tasks"])
    for i in range(len(SEEDS))
  ]
  mean = row["mean_over_tasks"]
  assert list(mean) == ["test"]  # ood: task a only
  assert mean["test"]["mean"] == pytest.approx(statistics.fmean(per_seed))
  assert mean["test"]["std"] == pytest.approx(statistics.stdev(per_seed))
  assert mean["test"]["ensemble"] == pytest.approx(
    statistics.fmean(t["summary"]["test"]["ensemble"] for t in row["tasks"])
  )
  assert mean["test"]["best_member"] == pytest.approx(
    statistics.fmean(t["summary"]["test"]["best_member"] for t in row["tasks"])
  )
  assert "| tiny | 12,345 |" in printed and "| tiny | a |" in printed
  assert "By task, ood split:" in printed and "6 of 6 equal" in printed
  png = (tmp_path / "results" / "ensembles.png").read_bytes()
  assert png.startswith(b"\x89PNG") and b"tIME" not in png and b"Software" not in png

  # The JSON alone redraws the same tables and the same figure, without the model.
  assert script.main([f"--json={out}", f"--plot={tmp_path / 'again.png'}"]) == 0
  assert capsys.readouterr().out == printed
  assert (tmp_path / "again.png").read_bytes() == png


def _error_line(script, capsys, *argv):
  assert script.main(list(argv)) == 1
  err = capsys.readouterr().err
  errors = [line for line in err.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "Traceback" not in err, err
  return errors[0]


def test_a_missing_prompt_or_seed_or_an_unfinished_point_is_one_line_naming_it(tmp_path, capsys):
  script = _script()
  sweep_dir = str(tmp_path / "sweep")
  args = (
    f"--sweep_dir={sweep_dir}",
    f"--json={tmp_path / 'e.json'}",
    f"--eval_dir={tmp_path / 'eval'}",
  )
  _make_sweep(sweep_dir)
  os.remove(os.path.join(sweep_dir, _name("b", 2), "best", "encoder.prompt.prompt.npy"))
  assert _error_line(script, capsys, *args).startswith(
    f"error: point {_name('b', 2)}: no best/encoder.prompt.prompt.npy in "
  )
  _make_sweep(sweep_dir)
  _write_json(
    os.path.join(sweep_dir, _name("a", 1), "status.json"), {"status": "failed", "error": "diverged"}
  )
  assert _error_line(script, capsys, *args).startswith(
    f"error: point {_name('a', 1)}: failed, not done; "
  )
  # A point its sweep lists but the directory lacks, and a seed a setting lacks.
  _make_sweep(sweep_dir)
  os.rename(os.path.join(sweep_dir, _name("b", 1)), str(tmp_path / "elsewhere"))
  assert _error_line(script, capsys, *args) == (
    f"error: point {_name('b', 1)}: not in {sweep_dir} (its sweep lists it); run the "
    "sweep's missing points, or archive them too"
  )
  meta = json.loads(open(os.path.join(sweep_dir, "sweep.json")).read())
  meta["points"].remove(_name("b", 1))
  _write_json(os.path.join(sweep_dir, "sweep.json"), meta)
  assert _error_line(script, capsys, *args) == (
    f"error: point {_name('b', 1)}: not in {sweep_dir}; the ensemble needs every seed of "
    "the sweep (RANDOM_SEED 0, 1, 2): run it"
  )
  assert not os.path.exists(tmp_path / "e.json")
  assert _error_line(script, capsys, f"--json={tmp_path / 'e.json'}").startswith(
    f"error: {tmp_path / 'e.json'} not found"
  )


def test_a_member_trained_with_another_config_is_refused(tmp_path, capsys, tasks_module):
  del tasks_module
  script = _script()
  sweep_dir = str(tmp_path / "sweep")
  _make_sweep(sweep_dir)
  path = os.path.join(sweep_dir, _name("a", 0), "point.json")
  record = json.loads(open(path).read())
  _write_json(path, {**record, "config_sha256": "0" * 64})
  assert _error_line(
    script,
    capsys,
    f"--sweep_dir={sweep_dir}",
    f"--json={tmp_path / 'e.json'}",
    f"--eval_dir={tmp_path / 'eval'}",
  ) == (
    f"error: point {_name('a', 0)}: its config differs from the one it trained with (a gin "
    "file it reads changed since); evaluate it at the commit that trained it"
  )
  # Members that differ beyond their seed are no ensemble.
  _write_json(path, {**record, "argv": record["argv"] + ["--gin.LEARNING_RATE=1.0"]})
  assert _error_line(
    script,
    capsys,
    f"--sweep_dir={sweep_dir}",
    f"--json={tmp_path / 'e.json'}",
    f"--eval_dir={tmp_path / 'eval'}",
  ) == (
    f"error: point {_name('a', 1)}: its command differs from {_name('a', 0)}'s beyond "
    "RANDOM_SEED; an ensemble's members share one frozen model and task"
  )
