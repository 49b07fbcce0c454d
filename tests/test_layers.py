"""The layers contract: imports point down, siblings stay apart, models/ stays pure.

Top to bottom (a module may import its own package and anything below it):

    entry points   train, eval, infer, serve, tasks, transfer, cli, gin_config, host (and
                   sweeps)
    training | inference          never each other
    checkpoints | data            the loading layer; seqio tasks
    partitioning                  the (data, model) mesh
    models                        jax, flax, numpy and the standard library only

Every import counts, function-level ones included: a deferred import is still a
dependency.
"""

import ast
import pathlib
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "prompt_tuning"

# Top to bottom; units in one layer may not import each other (except the
# entry points, which are one program).
LAYERS = (
  (
    "entry",
    (
      "train",
      "eval",
      "infer",
      "serve",
      "serving",
      "tasks",
      "transfer",
      "cli",
      "gin_config",
      "host",
      "sweep",
      "scripts",
    ),
  ),
  ("libraries", ("training", "inference")),
  ("loading", ("checkpoints", "data", "configs")),  # configs: gin files; the size table's reader
  ("mesh", ("partitioning",)),
  ("model", ("models",)),
)
SHARED_LAYERS = ("entry",)
MODELS_MAY_IMPORT = {"jax", "flax", "numpy"}


def unit_of(module: str) -> str:
  """`prompt_tuning.training.trainer` -> `training`; `prompt_tuning.cli` -> `cli`."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else ""


def layer_of(unit: str) -> int:
  for rank, (_, units) in enumerate(LAYERS):
    if unit in units:
      return rank
  raise KeyError(f"prompt_tuning.{unit} is in no layer of tests/test_layers.py; add it")


def imports(source: str, module: str) -> list[tuple[int, str]]:
  """(line, imported module) of every import in `source`, at any depth."""
  out = []
  package = module.rsplit(".", 1)[0]
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      out.extend((node.lineno, alias.name) for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:  # relative import
        base = ".".join(
          package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
        )
      out.append((node.lineno, base))
      if base == "prompt_tuning":  # `from prompt_tuning import partitioning`
        out.extend((node.lineno, f"prompt_tuning.{alias.name}") for alias in node.names)
  return out


def violations(source: str, module: str) -> list[str]:
  """What `module`'s imports break, one line each."""
  unit = unit_of(module)
  rank = layer_of(unit)
  problems = []
  for line, imported in imports(source, module):
    top = imported.split(".")[0]
    if (
      unit == "models"
      and top != "prompt_tuning"
      and top not in MODELS_MAY_IMPORT
      and (top not in sys.stdlib_module_names)
    ):
      problems.append(
        f"{module}:{line} imports {imported}; models/ imports only jax, flax, "
        "numpy and the standard library"
      )
    if top != "prompt_tuning" or imported == "prompt_tuning":
      continue
    other = unit_of(imported)
    if other == unit:
      continue
    other_rank = layer_of(other)
    if other_rank < rank:
      problems.append(
        f"{module}:{line} imports {imported}: {unit} ({LAYERS[rank][0]}) may not "
        f"import {other} ({LAYERS[other_rank][0]}, a higher layer)"
      )
    elif other_rank == rank and LAYERS[rank][0] not in SHARED_LAYERS:
      problems.append(
        f"{module}:{line} imports {imported}: {unit} and {other} are siblings "
        f"in the {LAYERS[rank][0]} layer and never import each other"
      )
  return problems


def _modules():
  for path in sorted(PACKAGE.rglob("*.py")):
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    yield ".".join(parts), path


def test_every_import_in_the_package_follows_the_layers():
  problems = []
  for module, path in _modules():
    if module == "prompt_tuning":
      continue
    problems.extend(violations(path.read_text(), module))
  assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
  "module,source",
  [
    # An upward import at module level and inside a function.
    ("prompt_tuning.checkpoints.readers", "from prompt_tuning.training import trainer\n"),
    (
      "prompt_tuning.models.prompt_init",
      "def f():\n  from prompt_tuning.checkpoints import peft\n",
    ),
    # Siblings.
    ("prompt_tuning.training.trainer", "from prompt_tuning.inference import decoding\n"),
    ("prompt_tuning.inference.predictor", "import prompt_tuning.training.partitioning\n"),
    ("prompt_tuning.checkpoints.readers", "from prompt_tuning.data import registry\n"),
    # Below the entry points, nothing reaches gin_config.
    ("prompt_tuning.inference.predictor", "from prompt_tuning import gin_config\n"),
    # models/ stays pure.
    ("prompt_tuning.models.t5", "import tensorflow as tf\n"),
    ("prompt_tuning.models.t5", "from prompt_tuning import partitioning\n"),
  ],
)
def test_the_contract_catches_a_broken_layer(module, source):
  assert violations(source, module), f"{source!r} in {module} passed the contract"


def test_downward_imports_pass():
  assert not violations(
    "from prompt_tuning import partitioning\n"
    "from prompt_tuning.checkpoints import readers\n"
    "import jax\n",
    "prompt_tuning.training.trainer",
  )
  assert not violations(
    "from prompt_tuning.models import layers\nimport functools\n", "prompt_tuning.models.t5"
  )


MAX_PARAMETERS = 10  # settings travel as named objects (training/settings.py, PredictorConfig)


def too_many_parameters(source: str) -> list[str]:
  """The functions of `source` that take more than MAX_PARAMETERS (self and cls aside)."""
  found = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
      a = node.args
      names = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
      names += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
      names = [n for n in names if n not in ("self", "cls")]
      if len(names) > MAX_PARAMETERS:
        found.append(f"{node.name} ({len(names)})")
  return found


def test_no_function_in_the_package_takes_more_than_ten_parameters():
  offenders = {
    str(path.relative_to(PACKAGE)): found
    for path in sorted(PACKAGE.rglob("*.py"))
    if (found := too_many_parameters(path.read_text()))
  }
  assert not offenders, offenders


def test_the_parameter_count_catches_an_eleventh():
  eleven = ", ".join(f"p{i}" for i in range(11))
  assert too_many_parameters(f"def f(*, {eleven}):\n  pass\n") == ["f (11)"]
  assert too_many_parameters(f"class C:\n  def m(self, {eleven[4:]}):\n    pass\n") == []
