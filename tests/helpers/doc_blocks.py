"""The fenced blocks of README.md and docs/*.md, and running them as written.

Which blocks are commands (tests/test_docs_commands.py checks every one):

* a block fenced as ```python, ```sh, ```bash, ```shell or ```console;
* a block with no language (a bare ```), unless its first line names a directory
  (ends in "/"): that is a layout listing, such as docs/sweeps.md's archive tree.

A block in any other language (```text, ```gin, ```json, ...) is not a command.
The rule errs towards commands: an unlabelled block must be marked, or labelled.

The first line of every command block is one of two markers:

* `# run by tests/<file>.py::<test>`: that test runs the block. It reads it with
  `run_by(request, "<doc>")`, which returns the doc's blocks marked with the
  calling test's own name (and fails when there is none), so the block a test
  runs is the text in the doc, and the checker can verify statically that the
  named test exists and reads that doc;
* `# not run by the tests: <reason>`, with a reason (the network, a GPU, data the
  repository cannot ship, minutes of training, the suite itself).

Both are comments in Python and in a shell, so a reader can paste a block as is.
"""

import dataclasses
import os
import pathlib
import re
import shlex
import subprocess
import sys
from typing import Mapping, Optional

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

COMMAND_LANGUAGES = ("python", "sh", "bash", "shell", "console")
RUN_BY = re.compile(r"# run by (tests/[\w/]+\.py)::(\w+)")
NOT_RUN = re.compile(r"# not run by the tests:(.*)")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^`\s]*)\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
  doc: str  # relative to the repository root, e.g. "docs/training.md"
  line: int  # 1-based line of the opening fence
  info: str  # the fence's language ("" for a bare ```)
  text: str  # the lines between the fences, without the fence's indentation

  @property
  def first_line(self) -> str:
    return self.text.split("\n", 1)[0].strip()

  @property
  def is_command(self) -> bool:
    if self.info:
      return self.info in COMMAND_LANGUAGES
    return not self.first_line.endswith("/")

  @property
  def where(self) -> str:
    return f"{self.doc}:{self.line}"


def docs(root: pathlib.Path = REPO_ROOT) -> list[str]:
  """README.md and docs/*.md, relative to `root`."""
  return ["README.md"] + sorted(f"docs/{p.name}" for p in (root / "docs").glob("*.md"))


def blocks(doc: str, root: pathlib.Path = REPO_ROOT) -> list[Block]:
  """Every fenced block of `doc`, in order. An unclosed fence is an error."""
  lines = (root / doc).read_text().split("\n")
  found, i = [], 0
  while i < len(lines):
    opening = _FENCE.match(lines[i])
    if not opening:
      i += 1
      continue
    indent, start = len(opening["indent"]), i
    i += 1
    body = []
    while i < len(lines) and lines[i].strip() != "```":
      body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
      i += 1
    if i == len(lines):
      raise ValueError(f"{doc}:{start + 1}: a ``` block is never closed")
    found.append(Block(doc, start + 1, opening["info"], "\n".join(body) + "\n"))
    i += 1
  return found


def command_blocks(root: pathlib.Path = REPO_ROOT) -> list[Block]:
  return [b for doc in docs(root) for b in blocks(doc, root) if b.is_command]


def _node_id(request) -> str:
  path = pathlib.Path(request.node.path).resolve().relative_to(REPO_ROOT)
  return f"{path.as_posix()}::{request.node.originalname}"


def run_by(request, doc: str) -> list[str]:
  """The command blocks of `doc` whose first line is `# run by <the calling test>`."""
  marker = f"# run by {_node_id(request)}"
  found = [b.text for b in blocks(doc) if b.is_command and b.first_line == marker]
  assert found, f"no command block of {doc} starts with `{marker}`"
  return found


def run_shell(
  block: str,
  tmp_path: pathlib.Path,
  replace: Optional[Mapping[str, str]] = None,
  timeout: int = 300,
) -> subprocess.CompletedProcess:
  """Runs a shell block as written, from the repository root, and checks its exit status.

  `python` is this interpreter; every `/tmp/` path moves under `tmp_path`, then
  each `replace` key becomes its value. One CPU device per process, as the
  other end-to-end tests run them.
  """
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir(exist_ok=True)
  python = bin_dir / "python"
  python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
  python.chmod(0o755)
  script = block.replace("/tmp/", f"{tmp_path}/")
  for old, new in (replace or {}).items():
    script = script.replace(old, new)
  env = dict(
    os.environ,
    PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    XLA_FLAGS="--xla_force_host_platform_device_count=1",
  )
  result = subprocess.run(
    ["sh", "-e", "-c", script],
    cwd=REPO_ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
  return result


def run_python(
  block: str, tmp_path: pathlib.Path, timeout: int = 300, cwd: Optional[pathlib.Path] = None
) -> subprocess.CompletedProcess:
  """Runs a ```python block as a script (from the repository root unless `cwd`), its
  `/tmp/` paths moved under `tmp_path`."""
  script = tmp_path / "example.py"
  script.write_text(block.replace("/tmp/", f"{tmp_path}/"))
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  result = subprocess.run(
    [sys.executable, str(script)],
    cwd=cwd or REPO_ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return result
