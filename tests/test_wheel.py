"""The package as a wheel: built, installed into a fresh virtual environment, run from a
directory outside the repository, with its configs and bundled data inside it.

The new environment gets no copy of the dependencies: a `.pth` file puts this
environment's site-packages directories on its path as plain directories (their
own `.pth` files, the editable install's among them, are not processed), so the
only `prompt_tuning` it can import is the wheel's.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import venv

import pytest

from tests import conftest


def _run(python, elsewhere, args, timeout) -> subprocess.CompletedProcess:
  """The installed environment's python with `args`, from outside the repository."""
  return subprocess.run(
    [str(python), *args],
    cwd=elsewhere,
    env=_clean_env(),
    capture_output=True,
    text=True,
    timeout=timeout,
  )


def _clean_env() -> dict:
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
  env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"
  return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """(python of a fresh environment with the wheel installed, a directory outside the repo)."""
  root = tmp_path_factory.mktemp("wheel")
  source = root / "source"  # the build writes build/ and *.egg-info beside setup.py
  source.mkdir()
  shutil.copy(conftest.REPO_ROOT / "setup.py", source / "setup.py")
  shutil.copytree(
    conftest.REPO_ROOT / "prompt_tuning",
    source / "prompt_tuning",
    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
  )
  built = subprocess.run(
    [
      sys.executable,
      "-m",
      "pip",
      "wheel",
      "--no-deps",
      "--no-build-isolation",
      "-w",
      str(root / "dist"),
      str(source),
    ],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert built.returncode == 0, built.stderr[-3000:]
  # Every directory that holds package data is a package of the build (no setuptools
  # "Package would be ignored" blocks).
  assert "would be ignored" not in built.stdout + built.stderr
  (wheel,) = (root / "dist").glob("prompt_tuning-*.whl")

  env_dir = root / "env"
  venv.create(env_dir, with_pip=False)
  python = env_dir / "bin" / "python"
  site = subprocess.run(
    [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
    capture_output=True,
    text=True,
    check=True,
  ).stdout
  ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
  with open(os.path.join(site.strip(), "dependencies.pth"), "w") as f:
    f.write("\n".join(ours) + "\n")
  installed_ = subprocess.run(
    [
      sys.executable,
      "-m",
      "pip",
      "--python",
      str(python),
      "install",
      "--no-deps",
      "-q",
      str(wheel),
    ],
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert installed_.returncode == 0, installed_.stderr[-3000:]
  elsewhere = root / "elsewhere"
  elsewhere.mkdir()
  return python, elsewhere


@pytest.mark.integration
@pytest.mark.slow
def test_the_installed_wheel_is_what_imports_and_finds_configs_by_either_spelling(installed):
  python, elsewhere = installed
  result = _run(
    python,
    elsewhere,
    [
      "-c",
      # The short spelling of a config path (configs/...) resolves in the installed
      # package too; then where the package came from and the import path.
      "import gin, sys; from prompt_tuning import gin_config; "
      "gin_config.parse_gin(['configs/runs/wordnet_demo.gin']); "
      "print(gin.query_parameter('%TRAIN_STEPS')); "
      "import prompt_tuning; print(prompt_tuning.__file__); print('\\n'.join(sys.path))",
    ],
    120,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  train_steps, module_file, *path = result.stdout.splitlines()
  assert train_steps == "1500"
  env_dir = python.parent.parent
  assert os.path.realpath(module_file).startswith(os.path.realpath(env_dir) + os.sep)
  # No directory the repository's source could be imported from: the root, or any other
  # holding a prompt_tuning package (this environment's dependencies, here under
  # .venv, are on the path by design).
  site = os.path.realpath(os.path.dirname(os.path.dirname(module_file)))
  assert os.path.realpath(conftest.REPO_ROOT) not in {
    os.path.realpath(p or elsewhere) for p in path
  }
  assert not [
    p
    for p in path
    if os.path.realpath(p or elsewhere) != site
    and os.path.exists(os.path.join(p or elsewhere, "prompt_tuning"))
  ], path


@pytest.mark.integration
@pytest.mark.slow
def test_the_demos_train_command_runs_from_outside_the_repository(installed):
  """The demo's run file by its package path, with the bundled model, task and vocabulary;
  its `configs/...` includes resolve inside the installed package."""
  python, elsewhere = installed
  model_dir = elsewhere / "run"
  result = _run(
    python,
    elsewhere,
    [
      "-m",
      "prompt_tuning.train",
      "--gin_file=prompt_tuning/configs/runs/wordnet_demo.gin",
      f"--gin.MODEL_DIR='{model_dir}'",
      "--gin.TRAIN_STEPS=3",
      "--gin.CHECKPOINT_PERIOD=3",
    ],
    300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert (model_dir / "checkpoints").is_dir() or (model_dir / "numpy_checkpoints").is_dir()
  assert "step 3/3" in result.stderr
