"""Every command block of README.md and docs/*.md is run by a named test or says why not.

What a command block is, and the two markers, are in tests/helpers/doc_blocks.py. The
check is static (it parses the docs and the named test files, runs nothing), so
it takes well under a second; the tests that run blocks are in tests/test_readme.py.
"""

import ast
import pathlib
import re

from tests.helpers import doc_blocks

# The front page's ceiling (the issue: "at most about 250 lines").
README_MAX_LINES = 250


def _reads_doc(function: ast.AST, doc: str) -> bool:
  """Whether `function` calls `run_by(request, "<doc>")` (as doc_blocks.run_by or run_by)."""
  for node in ast.walk(function):
    if isinstance(node, ast.Call) and len(node.args) >= 2:
      name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
      arg = node.args[1]
      if name == "run_by" and isinstance(arg, ast.Constant) and arg.value == doc:
        return True
  return False


def problems(root: pathlib.Path = doc_blocks.REPO_ROOT) -> list[str]:
  """One line per command block under `root` that is neither run by a test nor marked."""
  found, trees = [], {}
  for block in doc_blocks.command_blocks(root):
    first = block.first_line
    not_run, run_by = doc_blocks.NOT_RUN.fullmatch(first), doc_blocks.RUN_BY.fullmatch(first)
    if not_run:
      if not not_run[1].strip():
        found.append(f"{block.where}: `# not run by the tests:` gives no reason")
      continue
    if not run_by:
      found.append(
        f"{block.where}: a command block whose first line is neither "
        f"`# run by tests/<file>.py::<test>` nor `# not run by the tests: <reason>`"
        f" (it is {first!r})"
      )
      continue
    path, test = run_by[1], run_by[2]
    if not (root / path).is_file():
      found.append(f"{block.where}: names {path}, which does not exist")
      continue
    if path not in trees:
      trees[path] = ast.parse((root / path).read_text())
    functions = [
      n
      for n in ast.walk(trees[path])
      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == test
    ]
    if not functions:
      found.append(f"{block.where}: names {path}::{test}, which is no function of that file")
    elif not any(_reads_doc(f, block.doc) for f in functions):
      found.append(
        f"{block.where}: {path}::{test} does not read its blocks of {block.doc} "
        f"(doc_blocks.run_by(request, {block.doc!r}))"
      )
  return found


def test_every_command_block_is_run_by_a_test_or_says_why_not():
  assert doc_blocks.command_blocks(), "found no command block at all"
  assert problems() == []


def test_the_readme_is_a_front_page_that_links_every_docs_page():
  readme = (doc_blocks.REPO_ROOT / "README.md").read_text()
  assert len(readme.splitlines()) <= README_MAX_LINES
  pages = doc_blocks.docs()[1:]
  assert pages
  assert [p for p in pages if f"]({p})" not in readme] == []
  assert "](BENCHMARKS.md)" in readme


# The checker itself, on docs written here: each way a block can be wrong is caught.

_TEST_FILE = '''
from tests.helpers import doc_blocks

def test_runs_it(request):
  doc_blocks.run_by(request, "README.md")

def test_reads_another_page(request):
  doc_blocks.run_by(request, "docs/other.md")
'''


def _root(tmp_path, readme: str) -> pathlib.Path:
  (tmp_path / "docs").mkdir(parents=True)
  (tmp_path / "docs" / "other.md").write_text("# Other\n")
  (tmp_path / "tests").mkdir()
  (tmp_path / "tests" / "test_x.py").write_text(_TEST_FILE)
  (tmp_path / "README.md").write_text(readme)
  return tmp_path


def _one_problem(tmp_path, block: str, language: str = "") -> str:
  found = problems(_root(tmp_path, f"# Title\n\nText.\n\n```{language}\n{block}\n```\n"))
  assert len(found) == 1, found
  assert found[0].startswith("README.md:5: ")
  return found[0]


def test_a_block_marked_for_a_test_that_reads_its_page_passes(tmp_path):
  root = _root(
    tmp_path,
    "```\n# run by tests/test_x.py::test_runs_it\nmake demo\n```\n"
    "```python\n# not run by the tests: needs a TPU\nimport jax\n```\n",
  )
  assert problems(root) == []


def test_an_unmarked_command_fails(tmp_path):
  assert "neither" in _one_problem(tmp_path, "make demo")
  assert "neither" in _one_problem(tmp_path / "b", "print(1)", "python")


def test_a_marker_on_a_later_line_fails(tmp_path):
  assert "neither" in _one_problem(tmp_path, "make demo\n# not run by the tests: slow")


def test_a_reason_left_empty_fails(tmp_path):
  assert "no reason" in _one_problem(tmp_path, "# not run by the tests:  \nmake demo")


def test_a_renamed_or_missing_test_fails(tmp_path):
  assert "no function" in _one_problem(
    tmp_path, "# run by tests/test_x.py::test_renamed\nmake demo"
  )
  assert "does not exist" in _one_problem(
    tmp_path / "b", "# run by tests/test_gone.py::test_runs_it\nmake demo"
  )


def test_a_test_that_reads_another_page_fails(tmp_path):
  assert "does not read" in _one_problem(
    tmp_path, "# run by tests/test_x.py::test_reads_another_page\nmake demo"
  )


def test_what_counts_as_a_command_block(tmp_path):
  readme = "\n".join(
    [
      "```",
      "make test",
      "```",  # bare: a command
      "```sh",
      "ls",
      "```",
      "```bash",
      "ls",
      "```",
      "```python",
      "x = 1",
      "```",
      "```",
      "results/figure1/",
      "  archive.json",
      "```",  # a layout listing
      "```text",
      "prompt_tuning/",
      "```",
      "```gin",
      "sweep.Sweep:",
      "```",
      "* a bullet",
      "  ```",
      "  make demo",
      "  ```",
      "",
    ]
  )
  (tmp_path / "docs").mkdir()
  (tmp_path / "README.md").write_text(readme)
  found = doc_blocks.blocks("README.md", tmp_path)
  assert [(b.info, b.is_command) for b in found] == [
    ("", True),
    ("sh", True),
    ("bash", True),
    ("python", True),
    ("", False),
    ("text", False),
    ("gin", False),
    ("", True),
  ]
  assert found[-1].text == "make demo\n"  # the list item's indentation removed
  (tmp_path / "README.md").write_text("```\nmake test\n")
  assert re.search("never closed", _raises(lambda: doc_blocks.blocks("README.md", tmp_path)))


def _raises(function) -> str:
  try:
    function()
  except ValueError as e:
    return str(e)
  raise AssertionError("no ValueError")
