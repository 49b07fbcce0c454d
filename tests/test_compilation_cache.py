"""A sweep's points share one persistent JAX compilation cache, outside their recorded
environment (so a cached run is the same run as a compiled one: same command, same digest)."""

import json
import os

from prompt_tuning.sweep import driver
from prompt_tuning.sweep import executors
from prompt_tuning.sweep import points as points_lib
from tests import conftest

PRINT_ENV = (
  "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
  f"({executors.CACHE_VARIABLE!r}, {executors.MIN_COMPILE_TIME_VARIABLE!r})}}))"
)


def _env_seen_by_a_job(tmp_path, monkeypatch, **environ):
  for name in (executors.CACHE_VARIABLE, executors.MIN_COMPILE_TIME_VARIABLE):
    monkeypatch.delenv(name, raising=False)
  for name, value in environ.items():
    monkeypatch.setenv(name, value)
  log = tmp_path / "job.log"
  job = executors.Job(
    name="p",
    argv=("python", "-c", PRINT_ENV),
    env={"A": "1"},
    log_path=str(log),
    cwd=str(tmp_path),
    resources={"CPU": 1},
  )
  assert executors.start(job).wait() == 0
  return json.loads(log.read_text().splitlines()[-1])


def test_a_point_runs_with_the_shared_cache_and_a_set_cache_wins(tmp_path, monkeypatch):
  seen = _env_seen_by_a_job(tmp_path, monkeypatch, XDG_CACHE_HOME=str(tmp_path / "cache"))
  assert seen == {
    executors.CACHE_VARIABLE: str(tmp_path / "cache" / "prompt_tuning" / "jax"),
    executors.MIN_COMPILE_TIME_VARIABLE: "0",
  }
  mine = _env_seen_by_a_job(tmp_path, monkeypatch, JAX_COMPILATION_CACHE_DIR="/elsewhere")
  assert mine == {executors.CACHE_VARIABLE: "/elsewhere", executors.MIN_COMPILE_TIME_VARIABLE: None}


def test_the_cache_is_no_part_of_a_points_recorded_environment_or_command(tmp_path):
  plan = driver.load(os.path.join(conftest.REPO_ROOT, "configs/sweeps/wordnet_mini.gin"))
  point = plan.points[0]
  recorded = points_lib.environment(plan)
  script = points_lib.command_script(plan, point, str(tmp_path / point.name), str(tmp_path))
  for name in (executors.CACHE_VARIABLE, executors.MIN_COMPILE_TIME_VARIABLE):
    assert name not in recorded and name not in script
