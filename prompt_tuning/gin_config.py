"""Gin plumbing for entry points: search paths, parsing, and the configured model.

The gin files under `configs/` use `from __gin__ import dynamic_registration`,
so the model code never imports gin. They define macros that entry points read
back here:

* `MODEL`: the `t5.Transformer` (with its `PROMPT`), built by `build_model()`.
* `VOCABULARY`: the `seqio.SentencePieceVocabulary`, built by `vocabulary()`.

Typical use:

    gin_config.parse_gin(
        ["configs/models/t5_1_1_base_prompt.gin",
         "configs/prompts/from_class_labels_numpy.gin"],
        gin_config.bindings_from_flags({"PROMPT_LENGTH": "20"}))
    model = gin_config.build_model()

The configs ship inside the package (`prompt_tuning/configs/`). Gin paths
resolve against the current directory, any user search paths, then
`config_search_paths()`: `prompt_tuning/configs/...` and `configs/...` both
work from any directory, with an editable install or a wheel.
"""

import contextlib
import dataclasses
import difflib
import importlib.util
import io
import logging
import os
import pathlib
import re
import tokenize
from typing import Any, Iterator, Mapping, Optional, Sequence

import gin
from gin import resource_reader

from prompt_tuning.models import t5

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parent

# Search paths this module has already given gin (gin keeps them globally and
# `gin.clear_config` does not reset them).
_ADDED_SEARCH_PATHS: list[str] = []

# Macros that configs/prompts/*.gin files declare as `%gin.REQUIRED`. Gin does
# not check a macro that is bound to REQUIRED (it passes the sentinel through),
# so `build_model` checks these by name.
REQUIRED_MACROS = ("EMBEDDING_FILE", "CLASS_LABELS", "PROMPT_STRING", "PROMPT_FILE")

_UNABLE_TO_OPEN = re.compile(r"Unable to open file: (.*?)\. Searched config paths")


@gin.configurable("configured_value", module="prompt_tuning.gin_config")
def _configured_value(value: Any = gin.REQUIRED) -> Any:
  """Returns `value`; bound to a macro so that gin evaluates the macro."""
  return value


def config_search_paths() -> list[str]:
  """Directories against which relative gin paths resolve, after the current directory.

  Returns:
    The directory holding the package, so that `prompt_tuning/configs/...`
    resolves from anywhere (as the original codebase's paths do), then the
    package directory, so that `configs/...` does (in a checkout, `configs`
    at the repository root is a link to `prompt_tuning/configs`).
  """
  return [str(_PACKAGE_DIR.parent), str(_PACKAGE_DIR)]


def find_config_file(path: str) -> str:
  """The file a gin path names, as `parse_gin` finds it: `path` itself when it exists,
  else the first search path holding it; `path` unchanged when none does."""
  if os.path.isabs(path) or os.path.isfile(path):
    return path
  for root in _ADDED_SEARCH_PATHS + config_search_paths():
    candidate = os.path.join(root, path)
    if os.path.isfile(candidate):
      return candidate
  return path


def _add_search_path(path: str) -> None:
  path = os.fspath(path)
  if path not in _ADDED_SEARCH_PATHS:
    gin.add_config_file_search_path(path)
    _ADDED_SEARCH_PATHS.append(path)


@contextlib.contextmanager
def _namespace_safe_resource_reader() -> Iterator[None]:
  """Works around gin 0.5 failing on paths that look like namespace packages.

  After the plain file reader, gin tries each search path as a Python package
  resource: `configs/models/x.gin` becomes package `configs.models`. When the
  repository root is on `sys.path` (pytest, `python -m` from the root),
  `configs/models` is a namespace package with no `origin` and gin raises a
  TypeError instead of moving on to the next search path. This makes such a
  package count as "not found", as gin intends.

  It also drops what gin's resource reader logs on the way: an ERROR line ("Path not
  found: ...") for each search path that is not a package before it moves on to the next,
  and two INFO lines for each file found (with the configs found on a later search path,
  as from outside the repository, every `configs/...` file of a run printed them).
  """
  quiet = _DropGinResourceReaderLines()
  logging.getLogger().addFilter(quiet)
  original = getattr(resource_reader, "_parse_config_path", None)
  if original is None:  # A gin without the bug's code path.
    try:
      yield
    finally:
      logging.getLogger().removeFilter(quiet)
    return

  def parse_config_path(config_path: str) -> str:
    try:
      return original(config_path)
    except TypeError as e:
      raise ValueError(f"{config_path} is not in a regular Python package") from e

  resource_reader._parse_config_path = parse_config_path  # pylint: disable=protected-access
  try:
    yield
  finally:
    resource_reader._parse_config_path = original  # pylint: disable=protected-access
    logging.getLogger().removeFilter(quiet)


class _DropGinResourceReaderLines(logging.Filter):
  """Drops gin's resource reader's "Path not found" records (a search path that missed) and
  its INFO records (each file it found or opened)."""

  def filter(self, record: logging.LogRecord) -> bool:
    return not (
      record.module == "resource_reader"
      and (record.levelno < logging.WARNING or record.msg == "Path not found: %s")
    )


def bindings_from_flags(overrides: Mapping[str, str]) -> list[str]:
  """`{'PROMPT_LENGTH': '20'}` (from `--gin.PROMPT_LENGTH=20`) -> `['PROMPT_LENGTH = 20']`.

  Values are gin expressions, used verbatim: strings need their quotes
  (`--gin.ACTIVATION_DTYPE="'float32'"`).

  Args:
    overrides: gin binding key (a macro or `module.fn.param`) -> gin value.

  Returns:
    Binding lines for `parse_gin`, in the mapping's order.
  """
  bindings = []
  for key, value in overrides.items():
    key, value = str(key).strip(), str(value).strip()
    if not key or not value:
      raise ValueError(
        f"gin override {key!r}={value!r} needs both a name and a value, as in "
        "--gin.PROMPT_LENGTH=20"
      )
    bindings.append(f"{key} = {value}")
  return bindings


# `@package.module.fn()` in a binding: a configurable named by its module's full path.
_FULL_PATH_REFERENCE = re.compile(r"@(?:[\w.]+/)*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)")


def _with_imports(binding: str) -> str:
  """A binding whose references name configurables by full path, made parseable.

  The gin files register configurables dynamically (`from __gin__ import
  dynamic_registration`), which gin resolves only where the module was
  imported in the same parse. A binding such as
  `CLASS_LABELS = @prompt_tuning.data.wordnet.labels()` (how sweeps write
  references) gets its own parse with those imports; any other binding is
  parsed as written.
  """
  if "=" not in binding or "." in binding.split("=", 1)[0].strip():
    return binding  # a configurable's parameter as the key: parsed as gin always did
  modules = []
  for path in _FULL_PATH_REFERENCE.findall(binding):
    module = path.rsplit(".", 1)[0]
    try:
      found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
      found = False
    if found and module not in modules:
      modules.append(module)
  if not modules:
    return binding
  return "\n".join(
    ["from __gin__ import dynamic_registration"] + [f"import {m}" for m in modules] + [binding]
  )


def reference_text(reference: Any) -> str:
  """A gin reference as text that `parse_gin`'s bindings resolve in any process:
  `@prompt_tuning.data.wordnet.labels()` (a macro stays `%NAME`)."""
  text = repr(reference)
  if text.startswith("%"):
    return text
  fn = reference.configurable.wrapped
  path = f"{fn.__module__}.{fn.__qualname__}"
  return "@" + "/".join([*reference.scopes, path]) + ("()" if reference.evaluate else "")


def parse_gin(
  gin_files: Sequence[str], bindings: Sequence[str] = (), search_paths: Sequence[str] = ()
) -> None:
  """Parses gin files, then bindings (later ones win), without finalizing.

  Args:
    gin_files: gin files, absolute or relative to the current directory or a
      search path (e.g. `configs/models/t5_1_1_base_prompt.gin`).
    bindings: binding lines such as `PROMPT_LENGTH = 20`, applied after the
      files; see `bindings_from_flags`.
    search_paths: extra directories searched for gin files and their includes,
      before `config_search_paths()`.

  Raises:
    FileNotFoundError: a gin file (or one it includes) is on no search path.
  """
  for path in list(search_paths) + config_search_paths():
    _add_search_path(path)
  try:
    with _namespace_safe_resource_reader():
      try:
        gin.parse_config_files_and_bindings(
          list(gin_files), None, finalize_config=False, skip_unknown=False
        )
      except (SyntaxError, tokenize.TokenError) as e:
        raise ValueError(_syntax_error(e, gin_files)) from None
      for binding in bindings:  # one at a time, in order: later ones win
        try:
          gin.parse_config(_with_imports(binding))
        except (SyntaxError, tokenize.TokenError) as e:
          raise ValueError(
            f"gin syntax error in the binding {binding!r} (a --gin.NAME=VALUE flag): "
            f"{_reason(e)}{_quoting_hint(binding)}"
          ) from None
  except OSError as e:
    match = _UNABLE_TO_OPEN.search(str(e))
    if match is None:
      raise
    searched = ["<current directory>"] + _ADDED_SEARCH_PATHS
    raise FileNotFoundError(
      f"gin file {match[1]!r} not found in any of {searched}; give an absolute path or "
      "one relative to a searched directory (e.g. configs/models/t5_1_1_base_prompt.gin), "
      "or add its directory to the search paths"
    ) from None


_LITERAL_START = re.compile(r"""^\s*(['"@%\[({\-+.\d]|True\b|False\b|None\b)""")


def _quoting_hint(binding: str) -> str:
  """What to do when a flag's value is a bare word or path: a string keeps its quotes."""
  name, _, value = binding.partition("=")
  if not value.strip() or _LITERAL_START.match(value):
    return ""
  name, value = name.strip(), value.strip()
  return f"; a string keeps its quotes inside the flag: --gin.{name}=\"'{value}'\""


def _reason(error: Exception) -> str:
  if isinstance(error, tokenize.TokenError):
    return "the text ends inside an unclosed bracket or string"
  text = error.msg if isinstance(error, SyntaxError) else str(error)
  lines = [line.strip() for line in text.splitlines() if line.strip()]  # gin's last line says
  return lines[-1].rstrip(".") if lines else type(error).__name__  # what it failed to read


def _syntax_error(error: Exception, gin_files: Sequence[str]) -> str:
  """One line naming the gin file (and line) that does not parse."""
  if isinstance(error, SyntaxError) and error.filename not in (None, "<string>"):
    text = (error.text or "").strip()
    return f"gin syntax error in {error.filename}, line {error.lineno}: {error.msg.rstrip('.')}" + (
      f": {text}" if text else ""
    )
  # gin does not say where the tokenizer ran out of text: find the file, with its includes.
  culprit = _unclosed_file(gin_files)
  return f"gin syntax error in {culprit or ' or '.join(gin_files)}: {_reason(error)}"


def _unclosed_file(gin_files: Sequence[str], seen: Optional[set] = None) -> Optional[str]:
  """The first of the files (or the files they include) the tokenizer cannot finish."""
  seen = set() if seen is None else seen
  for name in gin_files:
    path = find_config_file(name)
    if path in seen or not os.path.isfile(path):
      continue
    seen.add(path)
    with open(path) as f:
      text = f.read()
    try:
      list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
      return name
    included = re.findall(r"^include\s+['\"]([^'\"]+)['\"]", text, flags=re.M)
    found = _unclosed_file(included, seen)
    if found:
      return found
  return None


def macro_value(name: str, hint: str) -> Any:
  """Evaluates the macro `name` (building whatever it references)."""
  try:
    gin.query_parameter(f"%{name}")
  except ValueError:
    raise ValueError(f"the gin config defines no {name} macro; {hint}") from None
  with gin.unlock_config():
    gin.parse_config(f"prompt_tuning.gin_config.configured_value.value = %{name}")
  return _configured_value()


def _defines(name: str) -> bool:
  try:
    gin.query_parameter(f"%{name}")
  except ValueError:
    return False
  return True


def optional_macro(name: str, default: Any = None) -> Any:
  """The macro's value, or `default` when the parsed config does not define it."""
  return macro_value(name, "") if _defines(name) else default


def check_required_macros(names: Sequence[str]) -> None:
  """Raises if any declared macro among `names` is still `%gin.REQUIRED`.

  Gin passes a REQUIRED macro's sentinel through instead of failing, so entry
  points check the macros their run files declare REQUIRED.
  """
  unset = []
  for name in names:
    try:
      value = gin.query_parameter(f"%{name}")
    except ValueError:
      continue  # Not declared by the parsed files.
    if str(value) == "%gin.REQUIRED":
      unset.append(name)
  if unset:
    raise ValueError(
      f"the gin config requires {', '.join(unset)} but they are unset; pass them, e.g. "
      + " ".join(f"--gin.{name}=..." for name in unset)
    )


_MACRO = "gin.macro"


def _macro_references(value: Any, found: set[str]) -> None:
  """Adds the names of the macros `value` references (`%NAME`), looking inside containers."""
  if isinstance(value, gin.config.ConfigurableReference):
    scoped = value.scoped_selector
    if scoped.endswith("/" + _MACRO):
      found.add(scoped[: -len(_MACRO) - 1])
  elif isinstance(value, Mapping):
    for item in list(value.keys()) + list(value.values()):
      _macro_references(item, found)
  elif isinstance(value, (list, tuple, set, frozenset)):
    for item in value:
      _macro_references(item, found)


_RUN_MACROS_HINT = "the macros a run reads are in its run file's header and configs/models/*.gin"


def check_every_macro_is_read(read_directly: Sequence[str], where: str = _RUN_MACROS_HINT) -> None:
  """Raises if the parsed config sets a macro that nothing reads (a misspelled setting).

  A macro is read when a binding of a configurable (or another macro) references
  it, or when the entry point reads it itself (`read_directly`: RUN, BATCH_SIZE,
  MODEL_DIR, ...). Gin itself rejects a parameter that a configurable does not
  have; a macro nobody references would otherwise change nothing, silently.

  Raises:
    ValueError: naming each unread macro and the closest macros that are read.
  """
  config = gin.config._CONFIG  # pylint: disable=protected-access
  defined = {scope for scope, selector in config if selector == _MACRO and scope}
  read = set(read_directly) | _read_macros()
  unread = sorted(defined - read)
  if not unread:
    return
  known = sorted(defined & read)
  hints = []
  for name in unread:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.8)
    readers = _shipped_configs_reading(name)
    said = [f"did you mean {' or '.join(close)}?"] if close else []
    if name == "PROMPT_FILE":  # each method has its own reader
      said.append(
        "add the *_from_file.gin of this model's method, in place of its training config: "
        + ", ".join(f"{p} for {t5.with_article(m)}" for m, p in FROM_FILE_CONFIGS.items())
      )
    elif readers:
      said.append(f"{' or '.join(readers)} reads it: add --gin_file={readers[0]}")
    hints.append(f"{name} ({'; '.join(said)})" if said else name)
  raise ValueError(
    f"the gin config sets {', '.join(hints)}, which nothing in this run reads; a misspelled "
    f"or stray setting would change nothing, so fix or remove it ({where})"
  )


def _shipped_configs_reading(macro: str, most: int = 3) -> list[str]:
  """The shipped gin files (`configs/...`) that read a macro (bind something to `%MACRO`),
  when only a few do: the file a run that sets the macro probably lacks."""
  root = pathlib.Path(__file__).parent / "configs"
  pattern = re.compile(rf"=\s*%{re.escape(macro)}\b")
  found = sorted(
    f"configs/{path.relative_to(root)}"
    for path in root.rglob("*.gin")
    if pattern.search(path.read_text())
  )
  return found if len(found) <= most else []


# Macros every entry point reads itself, beside those its run's bindings reference.
READ_BY_ENTRY_POINTS = ("RUN", "BATCH_SIZE")


def check_run_config(required: Sequence[str], read_directly: Sequence[str] = ()) -> None:
  """An entry point's checks of the parsed config: the REQUIRED macros are set, every
  macro set is read (`read_directly`: those the entry point reads itself), and a
  PROMPT_FILE is what the model starts from (`build_model` checks it)."""
  check_required_macros(required)
  check_every_macro_is_read(READ_BY_ENTRY_POINTS + tuple(read_directly))
  if "PROMPT_FILE" in _read_macros():
    build_model()


def _read_macros() -> set[str]:
  """The macros that a binding of the parsed config references."""
  read: set[str] = set()
  for params in gin.config._CONFIG.values():  # pylint: disable=protected-access
    for value in params.values():
      _macro_references(value, read)
  return read


def check_prompt_sources() -> None:
  """Raises if PROMPT_FILES and configs/prompts/from_file.gin both give the prompt.

  PROMPT_FILES (an ensemble, a prompt per task) replaces the model's own prompt,
  which from_file.gin reads from PROMPT_FILE: one of the two must go.
  """
  if _defines("PROMPT_FILE") and optional_macro("PROMPT_FILES") is not None:
    raise ValueError(
      "PROMPT_FILES replaces the model's own prompt, which "
      "configs/prompts/from_file.gin reads from PROMPT_FILE; remove "
      "--gin_file=configs/prompts/from_file.gin and --gin.PROMPT_FILE from the "
      "command (or PROMPT_FILES, to use the one prompt)"
    )


def build_model() -> t5.Transformer:
  """The `MODEL` of the parsed gin config: a fresh, unbound `t5.Transformer`.

  Returns:
    The model, with its `PROMPT` (None for `configs/prompts/no_prompt.gin`).

  Raises:
    ValueError: the config defines no MODEL macro, or leaves a required macro
      (`REQUIRED_MACROS`) unset.
    TypeError: MODEL is not a `t5.Transformer`.
  """
  check_required_macros(REQUIRED_MACROS)
  from prompt_tuning.checkpoints import prompt_files  # pylint: disable=g-import-not-at-top

  readers = prompt_files.value_readers_made()
  model = macro_value("MODEL", "parse a configs/models/*_prompt.gin file first")
  if not isinstance(model, t5.Transformer):
    raise TypeError(
      f"MODEL evaluated to {type(model).__name__}, not a t5.Transformer; "
      "bind MODEL = @t5.Transformer() as configs/models/t5_1_1_prompt.gin does"
    )
  _check_prompt_file_is_read(model, prompt_files.value_readers_made() > readers)
  return model


# Each method's config that reads its values from PROMPT_FILE (in place of its training
# config), by `t5.method_shape`'s name of the method.
FROM_FILE_CONFIGS = {
  "prompt": "configs/prompts/from_file.gin",
  "per-layer prompt": "configs/prompts/per_layer_from_file.gin",
  "decoder prefix": "configs/prompts/prefix_from_file.gin",
  "encoder prefix": "configs/prompts/p_tuning_v2_from_file.gin",
}


def _check_prompt_file_is_read(model: t5.Transformer, values_read: bool) -> None:
  """Raises if a config reads PROMPT_FILE but the built model does not start from its
  values (`values_read`: a `prompt_files` reader of them was made while MODEL was built):
  prefix.gin or p_tuning_v2.gin with configs/prompts/from_file.gin, which reads the file
  for a prompt the model does not have, would go on from a random init."""
  if values_read or "PROMPT_FILE" not in _read_macros():  # unset, or read by nothing
    return
  method = t5.method_shape(model)[0]
  if method == "prompt" and model.prompt is None:
    raise ValueError(
      "PROMPT_FILE is set, but this model has no prompt to start from it "
      "(configs/prompts/no_prompt.gin): remove that file, or PROMPT_FILE"
    )
  if method == "prompt":
    raise ValueError(
      "PROMPT_FILE is set, but this model's prompt does not start from it: a file or "
      "binding after configs/prompts/from_file.gin sets PROMPT_INIT again; put from_file.gin "
      "last among the prompt configs"
    )
  fix = (
    f"read its values with {FROM_FILE_CONFIGS[method]} (after the model file, in place of "
    "the method's training config)"
    if method in FROM_FILE_CONFIGS
    else "it trains from PROMPT_INIT; remove PROMPT_FILE and configs/prompts/from_file.gin"
  )
  raise ValueError(
    f"PROMPT_FILE is set, but this model's method, {t5.with_article(method)}, does not start "
    f"from it (it would start from a random init): {fix}"
  )


def vocabulary() -> Any:
  """The `VOCABULARY` of the parsed gin config (a `seqio.SentencePieceVocabulary`)."""
  return macro_value("VOCABULARY", "parse a configs/models/*_prompt.gin file first")


PREDICTOR_MACROS = (
  "MODEL",
  "VOCABULARY",
  "INITIAL_CHECKPOINT_PATH",
  "TASK_FEATURE_LENGTHS",
  "PROMPT_FILES",
  "BATCH_SIZE",
  "DECODING",
  "RANDOM_SEED",
  "NUM_PARTITIONS",
)


def predictor(gin_files: Sequence[str], overrides: Mapping[str, str] = (), **kwargs) -> Any:
  """A `Predictor` from gin files and `--gin.`-style overrides (the Python API's entry).

  Reads MODEL, VOCABULARY, INITIAL_CHECKPOINT_PATH, TASK_FEATURE_LENGTHS,
  BATCH_SIZE, DECODING, RANDOM_SEED, NUM_PARTITIONS and the prompts:
  PROMPT_FILES (a list or a name -> file dict) if set, else the model's own
  prompt (PROMPT_INIT, e.g. configs/prompts/from_file.gin's PROMPT_FILE).
  Keyword arguments override the macros (`batch_size=...`, `method=...`).

      predictor = gin_config.predictor(
          ["configs/models/t5_1_1_base_prompt.gin", "configs/runs/prompt_infer.gin"],
          {"INITIAL_CHECKPOINT_PATH": "'/ckpts/t5_base'", "PROMPT_FILE": "'/runs/sst2'",
           "TASK_FEATURE_LENGTHS": "{'inputs': 128, 'targets': 8}"})
  """
  # The Predictor sits below the entry points' layer; only this function knows gin.
  from prompt_tuning.inference import decoding  # pylint: disable=g-import-not-at-top
  from prompt_tuning.inference import predictor as predictor_lib  # pylint: disable=g-import-not-at-top

  parse_gin(gin_files, bindings_from_flags(dict(overrides)))
  macro = optional_macro
  check_required_macros(("INITIAL_CHECKPOINT_PATH", "TASK_FEATURE_LENGTHS"))
  check_every_macro_is_read(PREDICTOR_MACROS + ("RUN",))
  check_prompt_sources()
  config = predictor_lib.PredictorConfig(
    build_model(),
    vocabulary(),
    macro("INITIAL_CHECKPOINT_PATH"),
    macro("TASK_FEATURE_LENGTHS"),
    prompt_files=macro("PROMPT_FILES"),
    batch_size=macro("BATCH_SIZE", 32),
    method=macro("DECODING", decoding.Greedy()),
    seed=macro("RANDOM_SEED", 0),
    num_partitions=macro("NUM_PARTITIONS", 1),
  )
  return predictor_lib.build(dataclasses.replace(config, **kwargs))
