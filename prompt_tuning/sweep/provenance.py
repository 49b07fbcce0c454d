"""What a run ran on: the repository's commit, the jax/jaxlib versions, the CPU model.

Recorded in a point's status.json (`environment`) when the sweep driver records
the attempt that finished it, and carried into archives (archive.py), so that
a figure drawn from an archive says which code and which machine made its
numbers. The driver records its own host: with `--executor=local` the one that
ran the point; with Ray, a point may have run on another node of the cluster.
"""

import importlib.metadata
import os
import platform
import subprocess
from typing import Any, Optional

ENVIRONMENT_KEY = "environment"  # its key in status.json


def _git(cwd: str, *args: str) -> Optional[str]:
  try:
    result = subprocess.run(
      ["git", "-C", cwd, *args], capture_output=True, text=True, timeout=30, check=False
    )
  except (OSError, subprocess.SubprocessError):
    return None
  return result.stdout.strip() if result.returncode == 0 else None


def _version(package: str) -> Optional[str]:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


def cpu_model() -> str:
  """The CPU's model name (/proc/cpuinfo's), else the platform's word for it."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
          return value.strip()
  except OSError:
    pass
  return platform.processor() or platform.machine() or "unknown"


def git_commit(cwd: str, *excluded: str) -> tuple[Optional[str], Optional[bool]]:
  """The commit of the repository at `cwd`, and whether its tracked files (those under
  the `excluded` paths aside) differ from it; (None, None) outside a repository."""
  commit = _git(cwd, "rev-parse", "HEAD")
  if commit is None:
    return None, None
  spec = ["--", ".", *(f":(exclude){path}" for path in excluded)] if excluded else []
  return commit, bool(_git(cwd, "status", "--porcelain", "--untracked-files=no", *spec))


def environment(cwd: str) -> dict[str, Any]:
  """The git commit of the repository at `cwd` (and whether tracked files differ from it;
  None outside a repository), jax's and jaxlib's versions, and the CPU model."""
  commit, dirty = git_commit(cwd)
  return {
    "git_commit": commit,
    "git_dirty": dirty,
    "jax": _version("jax"),
    "jaxlib": _version("jaxlib"),
    "cpu": cpu_model(),
  }


def repo_root() -> str:
  """The root of the checkout this package runs from (where sweeps' commands run)."""
  return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
