"""The paper's prompt initializers and their errors, with the real T5 vocabulary."""

import logging

import jax
import numpy as np
import pytest

from prompt_tuning.models import prompt_init

E = 16
RNG = jax.random.key(0)


@pytest.fixture(scope="module")
def table():
  return np.random.default_rng(0).normal(size=(32128, E)).astype(np.float32)


def test_random_uniform_covers_minus_to_plus_scale():
  x = np.asarray(prompt_init.random_uniform()(RNG, (100, 512)))
  assert x.shape == (100, 512) and x.dtype == np.float32
  assert -0.5 <= x.min() < -0.49 and 0.49 < x.max() <= 0.5
  assert abs(x.mean()) < 0.01
  y = np.asarray(prompt_init.random_uniform(0.1)(RNG, (10, 8)))
  assert np.abs(y).max() <= 0.1


def _row_ids(prompt, table):
  return [int(np.flatnonzero((table == row).all(axis=1))[0]) for row in np.asarray(prompt)]


def test_sampled_vocab_draws_distinct_rows_from_the_first_n(table):
  prompt = prompt_init.sampled_vocab(table, population_size=5000)(RNG, (100, E))
  ids = _row_ids(prompt, table)
  assert len(set(ids)) == 100 and max(ids) < 5000
  # P > N: rows repeat, all from the population.
  ids = _row_ids(prompt_init.sampled_vocab(table, population_size=10)(RNG, (30, E)), table)
  assert set(ids) <= set(range(10)) and len(set(ids)) <= 10
  # The table can come lazily, from a callable.
  lazy = prompt_init.sampled_vocab(lambda: table, population_size=50)(RNG, (5, E))
  assert max(_row_ids(lazy, table)) < 50


def test_class_labels_average_subtoken_embeddings(table, t5_vocabulary, caplog):
  labels = ["positive", "negative", "entailment"]
  prompt = np.asarray(prompt_init.class_labels(table, t5_vocabulary, labels)(RNG, (6, E)))
  for row, label in zip(prompt, labels):
    ids = t5_vocabulary.encode(label)
    np.testing.assert_allclose(row, table[ids].mean(axis=0), rtol=1e-6)
  assert len(t5_vocabulary.encode("entailment")) > 1  # a genuinely averaged label
  fallback = np.asarray(prompt_init.random_uniform()(RNG, (6, E)))
  np.testing.assert_array_equal(prompt[3:], fallback[3:])
  with caplog.at_level(logging.WARNING):
    short = prompt_init.class_labels(table, t5_vocabulary, labels)(RNG, (2, E))
  assert short.shape == (2, E)
  assert "dropped labels ['entailment']" in caplog.text


def test_class_label_errors(table, t5_vocabulary):
  with pytest.raises(ValueError, match="needs at least one label"):
    prompt_init.class_labels(table, t5_vocabulary, [])
  # No labels with an explicit fallback (a task without classes): every row from it.
  fallback = prompt_init.random_uniform(0.1)
  np.testing.assert_array_equal(
    prompt_init.class_labels(table, t5_vocabulary, [], fallback)(RNG, (4, E)), fallback(RNG, (4, E))
  )
  with pytest.raises(ValueError, match="class label '' tokenizes to no tokens"):
    prompt_init.class_labels(table, t5_vocabulary, ["yes", ""])(RNG, (4, E))
  with pytest.raises(ValueError, match="embedding table has width 16 but the prompt is 32 wide"):
    prompt_init.class_labels(table, t5_vocabulary, ["yes"])(RNG, (4, 32))


def test_from_string_one_token_per_row(table, t5_vocabulary, caplog):
  text = "Classify the sentiment of this review"
  ids = t5_vocabulary.encode(text)
  prompt = np.asarray(prompt_init.from_string(table, t5_vocabulary, text)(RNG, (20, E)))
  np.testing.assert_array_equal(prompt[: len(ids)], table[ids])
  assert np.abs(prompt[len(ids) :]).max() <= 0.5
  with caplog.at_level(logging.WARNING):
    prompt_init.from_string(table, t5_vocabulary, text)(RNG, (2, E))
  assert "dropped the last" in caplog.text


def test_from_array_and_a_callable():
  value = np.random.default_rng(1).normal(size=(5, E)).astype(np.float32)
  np.testing.assert_array_equal(prompt_init.from_array(value)(RNG, (5, E)), value)
  np.testing.assert_array_equal(prompt_init.from_array(lambda: value)(RNG, (5, E)), value)
  with pytest.raises(
    ValueError,
    match=r"prompt array has shape \(5, 16\); "
    r"the config says PROMPT_LENGTH=100, EMBED_DIM=16",
  ):
    prompt_init.from_array(value)(RNG, (100, E))


def test_the_model_layer_refuses_paths(tmp_path):
  """models/ takes arrays: files are the loading layer's (checkpoints.prompt_files)."""
  path = tmp_path / "prompt.npy"
  np.save(path, np.zeros((5, E), np.float32))
  with pytest.raises(ValueError, match="the model takes arrays"):
    prompt_init.from_array(str(path))(RNG, (5, E))
  with pytest.raises(ValueError, match="the model takes arrays"):
    prompt_init.sampled_vocab(path, 100)(RNG, (5, E))


def test_initializers_run_under_jit_with_a_traced_key(table, t5_vocabulary):
  """The trainer initializes the prompt inside jit; every initializer must trace."""
  for init in (
    prompt_init.class_labels(table, t5_vocabulary, ["positive", "negative"]),
    prompt_init.from_string(table, t5_vocabulary, "Classify the sentiment:"),
    prompt_init.sampled_vocab(table, population_size=50),
    prompt_init.random_uniform(),
  ):
    eager = np.asarray(init(RNG, (20, E)))
    traced = np.asarray(jax.jit(lambda key, init=init: init(key, (20, E)))(RNG))
    np.testing.assert_array_equal(traced, eager)
