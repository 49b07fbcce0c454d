"""scripts/benchmark_point.py --point_dirs: the time split of a point a sweep ran, from its
train.log (absl's timestamps) and status.json (the executor's wall time)."""

import datetime
import importlib.util
import json
import os

import pytest

from tests import conftest

SCRIPT = os.path.join(conftest.REPO_ROOT, "scripts", "benchmark_point.py")


def _module():
  spec = importlib.util.spec_from_file_location("benchmark_point", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _point(tmp_path, attempts=1, status="done"):
  """A point that started at t0, counted parameters at +10 s, compiled at +25 s, logged steps
  250 at +100 s and 500 at +170 s, evaluated at +112 s (12 s) and +190 s (20 s), ended at
  +200 s."""
  t0 = datetime.datetime(2026, 12, 6, 15, 0, 0)
  stamp = lambda s: (t0 + datetime.timedelta(seconds=s)).strftime("I%m%d %H:%M:%S.%f")
  lines = [
    f"=== {t0:%Y-%m-%d %H:%M:%S} on vm: python -m prompt_tuning.train ...",
    "WARNING: All log messages before absl::InitializeLog() is called",
    f"{stamp(10)} 1 trainer.py:365] parameters: 100 total, 10 trainable (prompt)",
    f"{stamp(25)} 1 trainer.py:414] compiled train step: 1 MB",
    f"{stamp(100)} 1 trainer.py:427] step 250/500 loss=1.0 accuracy=0.5",
    f"{stamp(112)} 1 trainer.py:443] eval at step 250: accuracy=10.0",
    f"{stamp(170)} 1 trainer.py:427] step 500/500 loss=0.5 accuracy=0.6",
    f"{stamp(190)} 1 trainer.py:443] eval at step 500: accuracy=20.0",
  ]
  directory = tmp_path / "point"
  directory.mkdir()
  (directory / "train.log").write_text("\n".join(lines) + "\n")
  (directory / "status.json").write_text(
    json.dumps(
      {
        "status": status,
        "attempts": attempts,
        "wall_s": 200.0,
        "finished": (t0 + datetime.timedelta(seconds=200)).timestamp(),
      }
    )
  )
  return str(directory)


def test_a_swept_points_split_comes_from_its_log_and_status(tmp_path):
  result = _module().split_point_dir(_point(tmp_path))
  assert result["total"] == pytest.approx(200.0)
  assert result["parts"] == pytest.approx(
    {
      "start-up": 10.0,
      "set-up and compilation": 15.0,
      "evaluation": 32.0,
      "first evaluation": 12.0,
      "training steps": 200.0 - 10.0 - 15.0 - 32.0,
    }
  )
  assert result["eval_lines"] == [
    "eval at step 250: accuracy=10.0",
    "eval at step 500: accuracy=20.0",
  ]


@pytest.mark.parametrize("attempts,status", [(2, "done"), (1, "failed")])
def test_a_resumed_or_unfinished_point_is_refused(tmp_path, attempts, status):
  with pytest.raises(SystemExit, match="not a point done in one attempt"):
    _module().split_point_dir(_point(tmp_path, attempts, status))
