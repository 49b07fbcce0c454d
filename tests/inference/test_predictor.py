"""The Python API: ensembles and mixed-task batches in one pass equal separate runs."""

import math

import flax.linen as nn
import jax
import numpy as np
import pytest

from prompt_tuning.inference import decoding
from prompt_tuning.inference import predictor as predictor_lib
from prompt_tuning.models import prompt_init
from prompt_tuning.models import prompts as prompts_lib
from prompt_tuning.models import t5
from tests.helpers import hf_reference

CFG = hf_reference.TINY_GIN
LENGTHS = {"inputs": 10, "targets": 6}
TEXTS = [
  "a fine film",
  "dreadful",
  "the plot is thin but the acting is superb",
  "I would watch it again",
  "no",
  "two hours of my life",
  "lovely score",
]


@pytest.fixture(scope="module")
def setup(t5_vocabulary):
  model = t5.Transformer(CFG, prompts_lib.Prompt(4, CFG.emb_dim, prompt_init.random_uniform()))
  x = np.ones((1, 3), np.int32)
  params = nn.meta.unbox(model.init(jax.random.key(0), x, x))["params"]
  # A large EOS logit, so that outputs stop at varied lengths.
  kernel = np.array(params["decoder"]["logits_dense"]["kernel"])
  kernel[:, decoding.EOS_ID] *= 4.0
  params["decoder"]["logits_dense"]["kernel"] = kernel
  rng = np.random.default_rng(0)
  bank = {
    name: rng.uniform(-0.5, 0.5, size=(4, CFG.emb_dim)).astype(np.float32)
    for name in ("sst2", "rte", "boolq")
  }
  return model, params, t5_vocabulary, bank


def _predictor(setup, prompts, batch_size=4, **kwargs):
  model, params, vocabulary, _ = setup
  return predictor_lib.Predictor(
    model,
    params,
    vocabulary,
    task_feature_lengths=LENGTHS,
    prompts=prompts,
    batch_size=batch_size,
    **kwargs,
  )


def test_mixed_task_batch_gives_each_example_its_own_tasks_prediction(setup):
  bank = setup[3]
  tasks = ["sst2", "rte", "boolq", "rte", "sst2", "boolq", "rte"]
  mixed = _predictor(setup, bank).predict(TEXTS, tasks)
  for name in bank:
    alone = _predictor(setup, {name: bank[name]}).predict(TEXTS)
    for i, task in enumerate(tasks):
      if task == name:
        assert (mixed[i].prediction, mixed[i].tokens) == (alone[i].prediction, alone[i].tokens)
        assert mixed[i].task == name
        np.testing.assert_allclose(mixed[i].score, alone[i].score, atol=1e-5)
  # The prompts matter: the same input under different prompts decodes differently somewhere.
  by_prompt = [_predictor(setup, {n: bank[n]}).predict(TEXTS) for n in bank]
  assert len({tuple(p.prediction for p in preds) for preds in by_prompt}) > 1


def test_ensemble_in_one_pass_equals_separate_runs_and_votes(setup):
  bank = setup[3]
  pred = _predictor(setup, bank, batch_size=5)
  calls = []
  decode = pred._decode  # pylint: disable=protected-access
  pred._decode = lambda *args: calls.append(1) or decode(*args)  # pylint: disable=protected-access
  results = pred.predict_ensemble(TEXTS)
  # One pass: examples x members rows in batches of 5 (members run one by one would take
  # len(bank) * ceil(7 / 5) = 6 calls).
  assert len(calls) == math.ceil(len(TEXTS) * len(bank) / 5) == 5
  separate = {n: _predictor(setup, {n: bank[n]}).predict(TEXTS) for n in bank}
  for i, result in enumerate(results):
    assert set(result.members) == set(bank)
    for name, member in result.members.items():
      assert member.prediction == separate[name][i].prediction
      np.testing.assert_allclose(member.score, separate[name][i].score, atol=1e-5)
    texts = [separate[n][i].prediction for n in bank]
    counts = {t: texts.count(t) for t in texts}
    assert result.votes == max(counts.values())
    assert counts[result.prediction] == result.votes


def test_batch_size_and_padding_do_not_change_predictions(setup):
  bank = {"sst2": setup[3]["sst2"]}
  reference = _predictor(setup, bank, batch_size=1).predict(TEXTS)
  for batch_size in (3, 8):
    got = _predictor(setup, bank, batch_size=batch_size).predict(TEXTS)
    assert [p.tokens for p in got] == [p.tokens for p in reference]
  lengths = {len(p.tokens) for p in reference}
  assert len(lengths) > 1


def test_score_and_rank_classification(setup):
  bank = setup[3]
  pred = _predictor(setup, bank)
  labels = ["positive", "negative", "neutral"]
  best, scores = pred.rank_classify(TEXTS, labels, tasks=["sst2"] * len(TEXTS))
  for j, label in enumerate(labels):
    np.testing.assert_allclose(
      scores[:, j], pred.score(TEXTS, [label] * len(TEXTS), ["sst2"] * len(TEXTS)), atol=1e-5
    )
  np.testing.assert_array_equal(best, np.argmax(scores, axis=1))
  # An ensemble in score mode averages the members' log-likelihoods.
  _, ensemble = pred.rank_classify(TEXTS, labels, members=list(bank))
  per_member = [pred.rank_classify(TEXTS, labels, tasks=[n] * len(TEXTS))[1] for n in bank]
  np.testing.assert_allclose(ensemble, np.mean(per_member, axis=0), atol=1e-5)
  # A greedy prediction's score is its teacher-forced log-likelihood.
  p = pred.predict(TEXTS[:2], ["rte", "rte"])
  targets = np.zeros((2, LENGTHS["targets"]), np.int32)
  for i, q in enumerate(p):
    ids = q.tokens + [decoding.EOS_ID]
    targets[i, : len(ids)] = ids[: LENGTHS["targets"]]
  index = np.array([1, 1], np.int32)
  np.testing.assert_allclose(
    pred.score_tokens(pred.encode(TEXTS[:2]), targets, index), [q.score for q in p], atol=1e-5
  )


def test_plain_model_and_clear_errors(setup):
  model, params, vocabulary, bank = setup
  plain = predictor_lib.Predictor(
    t5.Transformer(CFG), params, vocabulary, task_feature_lengths=LENGTHS
  )
  zero = predictor_lib.Predictor(
    t5.Transformer(CFG, prompts_lib.Prompt(0, CFG.emb_dim)),
    params,
    vocabulary,
    task_feature_lengths=LENGTHS,
  )
  assert [p.tokens for p in plain.predict(TEXTS)] == [p.tokens for p in zero.predict(TEXTS)]
  pred = _predictor(setup, bank)
  with pytest.raises(ValueError, match="say which one each example uses"):
    pred.predict(TEXTS)
  with pytest.raises(ValueError, match=r"no prompt named \['mnli'\]"):
    pred.predict(TEXTS[:1], ["mnli"])
  with pytest.raises(ValueError, match="share one shape"):
    _predictor(setup, {"a": bank["sst2"], "b": bank["rte"][:2]})
  with pytest.raises(ValueError, match=r"this model needs \[P, 16\]"):
    _predictor(setup, {"a": np.zeros((4, 8), np.float32)})


def test_path_objects_name_the_banks_their_strings_name(setup, tmp_path):
  """PROMPT_FILES given from Python as path objects: the same kinds, names and prompts."""
  from prompt_tuning.inference import evaluation  # pylint: disable=g-import-not-at-top

  _, _, _, bank = setup
  a, b = tmp_path / "a.npy", tmp_path / "b.npy"
  np.save(a, bank["sst2"])
  np.save(b, bank["rte"])
  for files, kind, names in (
    (a, "single", [predictor_lib.DEFAULT_PROMPT]),
    ([a], "single", ["0"]),
    ([a, b], "ensemble", ["0", "1"]),
    ({"x": b, "y": a}, "tasks", ["x", "y"]),
  ):
    as_str = (
      {k: str(v) for k, v in files.items()}
      if isinstance(files, dict)
      else [str(p) for p in files]
      if isinstance(files, list)
      else str(files)
    )
    assert evaluation.bank_kind(files) == evaluation.bank_kind(as_str) == kind, files
    # Strings for every reader of a bank (the predictor, the server's engine).
    assert all(isinstance(v, str) for v in predictor_lib.prompt_bank(files).values())
    got = _predictor(setup, predictor_lib.prompt_bank(files))
    want = _predictor(setup, predictor_lib.prompt_bank(as_str))
    assert got.prompt_names == want.prompt_names == names
    np.testing.assert_array_equal(np.asarray(got._bank), np.asarray(want._bank))  # pylint: disable=protected-access
  np.testing.assert_array_equal(np.asarray(got._bank)[1], bank["sst2"])  # pylint: disable=protected-access


def test_a_collapsed_prompt_is_reported(caplog):
  from prompt_tuning.inference import evaluation  # pylint: disable=g-import-not-at-top

  class Ids:
    def decode(self, ids):
      return {5: "positive", 6: "negative"}[ids[0]]

  with caplog.at_level("WARNING"):
    evaluation._warn_if_collapsed("sst2", ".", [[5]] * 39 + [[6]], Ids())  # 97.5%
  assert "sst2: 97.5% of the 40 predictions are 'positive'" in caplog.text
  caplog.clear()
  with caplog.at_level("WARNING"):
    evaluation._warn_if_collapsed("sst2", ".", [[5]] * 37 + [[6]] * 3, Ids())  # 92.5%
  assert not caplog.text
