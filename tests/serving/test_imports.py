"""What a GPU host without TensorFlow, seqio or gin (issue 27's note) can import of the server."""

import subprocess
import sys

from tests import conftest

BLOCKED = ("tensorflow", "seqio", "gin", "tensorflow_datasets", "tensorflow_text")


def _imports(modules) -> subprocess.CompletedProcess:
  script = (
    "import sys\n"
    f"for name in {BLOCKED!r}:\n"
    "  sys.modules[name] = None  # an import of it raises ImportError\n"
    + "".join(f"import {m}\n" for m in modules)
  )
  return subprocess.run(
    [sys.executable, "-c", script],
    cwd=conftest.REPO_ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )


def test_the_engine_and_the_http_app_import_without_tensorflow_seqio_or_gin():
  result = _imports(
    [
      "prompt_tuning.inference.engine",
      "prompt_tuning.serving.app",
      "prompt_tuning.serving.api",
      "prompt_tuning.serving.batcher",
    ]
  )
  assert result.returncode == 0, result.stderr[-2000:]
  # The check can tell: the entry point itself reads gin files, and so needs gin.
  entry = _imports(["prompt_tuning.serve"])
  assert entry.returncode != 0 and "gin" in entry.stderr
