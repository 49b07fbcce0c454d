"""`python -m prompt_tuning.transfer` (SPoT's task similarity): both measures against a
plain computation, and a ranking known by construction, from run directories."""

import json
import os

import numpy as np
import pytest

from prompt_tuning import transfer
from prompt_tuning.checkpoints import layout


def _cos(u, v):
  return sum(x * y for x, y in zip(u, v)) / (
    sum(x * x for x in u) ** 0.5 * sum(y * y for y in v) ** 0.5
  )


def test_the_two_measures_equal_a_plain_computation():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(5, 8)) + 0.3, rng.normal(size=(7, 8))
  mean_a = [sum(row[k] for row in a) / len(a) for k in range(8)]
  mean_b = [sum(row[k] for row in b) / len(b) for k in range(8)]
  assert transfer.average_token_cosine(a, b) == pytest.approx(_cos(mean_a, mean_b), abs=1e-12)
  pairs = [_cos(u, v) for u in a for v in b]
  assert transfer.per_token_cosine(a, b) == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)
  # They differ (a prompt is not its mean), and a prompt is most like itself.
  assert abs(transfer.average_token_cosine(a, b) - transfer.per_token_cosine(a, b)) > 1e-3
  assert transfer.average_token_cosine(a, a) == pytest.approx(1.0)


def _run(root, name, prompt, best=None):
  """A run directory: its numpy checkpoint at step 10 and, optionally, a best prompt."""
  step = os.path.join(root, name, layout.NUMPY_DIR, "checkpoint_10")
  os.makedirs(step)
  np.save(os.path.join(step, layout.PROMPT_FILE_NAME), prompt.astype(np.float32))
  if best is not None:
    os.makedirs(os.path.join(root, name, "best"))
    np.save(os.path.join(root, name, "best", layout.PROMPT_FILE_NAME), best.astype(np.float32))


def test_sources_are_ranked_by_similarity_from_runs_and_archives(tmp_path, capsys):
  rng = np.random.default_rng(1)
  target = rng.normal(size=(20, 16)) + 0.5
  runs = tmp_path / "runs"
  # Known order: the target plus a little noise, plus more noise, then an unrelated prompt.
  # "near"'s latest prompt is unrelated, its best is the near one: the best is what counts.
  _run(runs, "near", rng.normal(size=(20, 16)), best=target + 0.1 * rng.normal(size=(20, 16)))
  _run(runs, "mid", target + 1.0 * rng.normal(size=(20, 16)))
  _run(runs, "far", rng.normal(size=(20, 16)) - 0.5)
  _run(runs, "wide", rng.normal(size=(20, 32)))  # another model's width: not a candidate
  _run(runs, "target", target)  # the target itself, inside the archive: left out
  deep = runs / "deep" / layout.NUMPY_DIR / "checkpoint_10"  # a per-layer prompt: another method
  deep.mkdir(parents=True)
  np.save(deep / layout.PROMPT_FILE_NAME, np.ones((2, 20, 16), np.float32))
  out = tmp_path / "ranking.json"
  for measure in transfer.MEASURES:
    code = transfer.main(
      [
        f"--target={runs / 'target'}",
        f"--sources={runs}",
        f"--measure={measure}",
        f"--output_json={out}",
      ]
    )
    assert code == 0
    ranking = json.loads(out.read_text())["ranking"]
    assert [r["source"] for r in ranking] == ["near", "mid", "far"], measure
    captured = capsys.readouterr()
    assert [line.split()[0] for line in captured.out.splitlines()[1:]] == ["near", "mid", "far"]
    assert "left out 1 prompts of another method" in captured.err
    assert "left out 1 prompts of another width" in captured.err
  # A single run as a source, and the scores are the library's.
  assert transfer.main([f"--target={runs / 'target'}", f"--sources={runs / 'mid'}"]) == 0
  line = capsys.readouterr().out.splitlines()[1].split()
  want = transfer.similarities(
    target.astype(np.float32),
    np.load(runs / "mid" / layout.NUMPY_DIR / "checkpoint_10" / layout.PROMPT_FILE_NAME),
  )
  assert float(line[1]) == pytest.approx(want["average_token"], abs=1e-4)
  assert float(line[2]) == pytest.approx(want["per_token"], abs=1e-4)


def test_bad_paths_are_one_line_errors(tmp_path, capsys):
  assert transfer.main([f"--target={tmp_path / 'missing'}", f"--sources={tmp_path}"]) == 2
  err = capsys.readouterr().err
  assert err.startswith("transfer: ") and err.count("\n") == 1 and "missing" in err
  _run(tmp_path, "t", np.ones((3, 4)))
  deep = tmp_path / "deep" / layout.NUMPY_DIR / "checkpoint_1"
  deep.mkdir(parents=True)
  np.save(deep / layout.PROMPT_FILE_NAME, np.ones((2, 3, 4), np.float32))
  assert transfer.main([f"--target={tmp_path / 't'}", f"--sources={tmp_path / 'deep'}"]) == 2
  assert "no source prompt to rank: left out 1 of another method" in capsys.readouterr().err
  (tmp_path / "empty").mkdir()
  assert transfer.main([f"--target={tmp_path / 't'}", f"--sources={tmp_path / 'empty'}"]) == 2
  assert "no prompt or run with a prompt in" in capsys.readouterr().err


def test_the_documented_ranking_of_figure1s_prompts(request, tmp_path):
  """docs/methods.md's command on the shipped archive: S's other hypernym prompts (seeds 1
  and 2) come before every supersense prompt, by both measures."""
  from tests.helpers import doc_blocks  # pylint: disable=g-import-not-at-top

  (block,) = doc_blocks.run_by(request, "docs/methods.md")
  result = doc_blocks.run_shell(block, tmp_path)
  assert "left out 18 prompts of another width" in result.stderr
  ranking = json.loads((tmp_path / "ranking.json").read_text())["ranking"]
  names = [r["source"] for r in ranking]
  assert len(names) == 5 and not any("model_tuning" in n for n in names)
  for measure in transfer.MEASURES:
    order = [r["source"] for r in sorted(ranking, key=lambda r: -r[measure])]
    assert all("task=hypernym" in n for n in order[:2]), (measure, order)


def test_the_target_given_as_its_file_is_still_left_out_and_names_stay_apart(tmp_path, capsys):
  rng = np.random.default_rng(3)
  for root in ("a", "b"):  # two sweep directories with the same run name
    _run(tmp_path / root, "same", rng.normal(size=(4, 8)))
  _run(tmp_path / "a", "target", rng.normal(size=(4, 8)))
  target_file = (
    tmp_path / "a" / "target" / layout.NUMPY_DIR / "checkpoint_10" / layout.PROMPT_FILE_NAME
  )
  out = tmp_path / "ranking.json"
  argv = [f"--target={target_file}", f"--sources={tmp_path / 'a'}", f"--sources={tmp_path / 'b'}"]
  assert transfer.main(argv + [f"--output_json={out}"]) == 0
  names = sorted(r["source"] for r in json.loads(out.read_text())["ranking"])
  assert names == ["b/same", "same"]
