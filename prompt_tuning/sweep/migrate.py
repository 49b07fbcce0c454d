r"""Checked migrations of archived points' config digests.

    python -m prompt_tuning.sweep migrate --sweep_dir=results/figure1 [--dry_run]

A point's digest (point.json's `config_sha256`) is the sha256 of its config text
(`driver.config_text`: the gin config the trainer parses, MODEL_DIR aside), and
decides whether a done point counts for a sweep continued from it
(`--reuse_from`). A change that moves what the study's configs bind (a trainer
argument into a settings object) changes that text, and so every digest,
without changing any run. `migrate` carries the recorded digests over to the
current code's, and only after checking, point by point, that nothing else
changed:

1. the point's config text as its own commit computed it is recomputed, in a
   copy of that commit's tree (`git archive`), from the command point.json
   records, and must give the digest the point recorded;
2. that text, with `MIGRATIONS`' declared renames and additions applied, must
   bind exactly what the current code's text binds: gin's parser reads both,
   and the imports, the keys and each value (numbers, strings, references,
   macros) must be equal;
3. only then is the new digest written; point.json keeps the old one, its
   commit and the migrations applied (`config_migrations`).

A point whose digest is already the current code's is left as it is. Anything
else (a changed value, a binding no migration declares, a commit that no longer
gives the recorded digest) stops the migration before any file is written,
naming the point and the difference: such a point must run again.
"""

import collections
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Any, Iterable, Mapping, Optional, Sequence

from gin import config_parser

from prompt_tuning.sweep import archive as archive_lib
from prompt_tuning.sweep import driver
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import provenance


@dataclasses.dataclass(frozen=True)
class Migration:
  """A change of what the configs bind that trains the same runs.

  Attributes:
    name: what changed, in a few words (recorded in each migrated point.json).
    renames: old binding key -> new key, keys as gin writes them
      (`[scope/]selector.parameter`, or a macro's NAME); the value moves unchanged.
    added: new key -> its value as gin text: the bindings the new code adds (the
      references to the new objects), never a value that a run reads as a number.
    imports: the modules the new text imports besides (`prompt_tuning.training.settings`).
    newly_configured: selectors the new code builds through gin that the old code built
      itself: an old text's binding of one did nothing then and would act now, so only
      what a rename moves there may be bound under them.
  """

  name: str
  renames: Mapping[str, str] = dataclasses.field(default_factory=dict)
  added: Mapping[str, str] = dataclasses.field(default_factory=dict)
  imports: Sequence[str] = ()
  newly_configured: Sequence[str] = ()


def _moved(old: str, new: str, *names: str) -> dict[str, str]:
  return {f"{old}.{n}": f"{new}.{n}" for n in names}


# In the order they were made; each applies to a text that binds what it renames.
MIGRATIONS: tuple[Migration, ...] = (
  Migration(
    name="trainer settings as named objects; infer_eval reads an evaluation.SplitConfig",
    renames={
      **_moved(
        "trainer.train",
        "settings.DataSettings",
        "mixture_or_task_name",
        "task_feature_lengths",
        "batch_size",
        "mixture_or_task_module",
        "use_cached_tasks",
        "vocabulary",
      ),
      **_moved(
        "trainer.train",
        "settings.CheckpointSettings",
        "model_dir",
        "initial_checkpoint_path",
        "checkpoint_period",
        "keep_checkpoints",
      ),
      **_moved(
        "trainer.train",
        "settings.OptimizationSettings",
        "optimizer",
        "learning_rate",
        "what_trains",
        "z_loss",
        "label_smoothing",
        "loss_normalizing_factor",
      ),
      **_moved("trainer.train", "settings.EvaluationSettings", "eval_period", "infer_eval"),
      **_moved(
        "evaluation.infer_eval",
        "evaluation.SplitConfig",
        "mixture_or_task_name",
        "use_cached",
        "split",
        "num_examples",
      ),
    },
    added={
      "trainer.train.data": "@settings.DataSettings()",
      "trainer.train.checkpoints": "@settings.CheckpointSettings()",
      "trainer.train.optimization": "@settings.OptimizationSettings()",
      "trainer.train.evaluation": "@settings.EvaluationSettings()",
      "evaluation.infer_eval.data": "@evaluation.SplitConfig()",
    },
    imports=("prompt_tuning.training.settings",),
    newly_configured=(
      "settings.DataSettings",
      "settings.CheckpointSettings",
      "settings.OptimizationSettings",
      "settings.EvaluationSettings",
      "evaluation.SplitConfig",
    ),
  ),
)


@dataclasses.dataclass(frozen=True)
class _Reference:
  name: str
  evaluate: bool


@dataclasses.dataclass(frozen=True)
class _Macro:
  name: str


class _Delegate(config_parser.ParserDelegate):
  """Reads references and macros as names: nothing needs to be registered."""

  def configurable_reference(self, scoped_configurable_name, evaluate):
    return _Reference(scoped_configurable_name, evaluate)

  def macro(self, macro_name):
    return _Macro(macro_name)


@dataclasses.dataclass(frozen=True)
class Bindings:
  """What a config text binds: its imports and each key's value."""

  imports: frozenset[str]
  values: Mapping[str, Any]


def _key(statement: config_parser.BindingStatement) -> str:
  selector = f"{statement.scope}/{statement.selector}" if statement.scope else statement.selector
  return f"{selector}.{statement.arg_name}" if statement.arg_name else selector


def read_bindings(text: str) -> Bindings:
  """A gin config text (`gin.config_str()`'s, or an operative config) as `Bindings`.

  Raises:
    SyntaxError: the text is not gin.
  """
  imports, values = set(), {}
  for statement in config_parser.ConfigParser(text, _Delegate()):
    if isinstance(statement, config_parser.ImportStatement):
      imports.add(statement.module)
    elif isinstance(statement, config_parser.BindingStatement):
      values[_key(statement)] = statement.value
    else:
      raise SyntaxError(f"unexpected statement in a config text: {statement}")
  return Bindings(frozenset(imports), values)


def _selector(key: str) -> str:
  """`scope/module.Name.parameter` -> `module.Name` (a macro's NAME: itself)."""
  selector = key.rsplit("/", 1)[-1]
  return selector.rsplit(".", 1)[0] if "." in selector else selector


def apply(
  bindings: Bindings, migrations: Iterable[Migration]
) -> tuple[Bindings, list[str], list[str]]:
  """`bindings` with each migration that applies (one whose renamed keys it binds) applied.

  Returns:
    The migrated bindings, the names of the migrations applied, and what no migration
    can carry over, one line each: an old binding of a newly configured selector (it did
    nothing then), a rename or addition onto a key the old text binds.
  """
  imports, values, applied, problems = set(bindings.imports), dict(bindings.values), [], []
  for migration in migrations:
    if not any(old in values for old in migration.renames):
      continue
    for key in sorted(values):
      if _selector(key) in migration.newly_configured:
        problems.append(
          f"{key} is bound in the old text, where nothing read it ({values[key]!r}); the new "
          "code reads it"
        )
    moved = {new: values.pop(old) for old, new in migration.renames.items() if old in values}
    for key, text in migration.added.items():
      moved[key] = read_bindings(f"{key} = {text}").values[key]
    for key in sorted(set(moved) & set(values)):
      problems.append(f"{key} is bound in the old text and by the migration {migration.name!r}")
    values.update(moved)
    imports.update(migration.imports)
    applied.append(migration.name)
  return Bindings(frozenset(imports), values), applied, problems


def differences(old: Bindings, new: Bindings) -> list[str]:
  """What `new` binds otherwise than `old`, one line each (empty: the same config)."""
  lines = [f"import {m} only in the old text" for m in sorted(old.imports - new.imports)]
  lines += [f"import {m} only in the new text" for m in sorted(new.imports - old.imports)]
  for key in sorted(set(old.values) | set(new.values)):
    if key not in new.values:
      lines.append(f"{key} is bound only in the old text ({old.values[key]!r})")
    elif key not in old.values:
      lines.append(f"{key} is bound only in the new text ({new.values[key]!r})")
    elif repr(old.values[key]) != repr(new.values[key]):  # 1 and 1.0, True and 1 differ
      lines.append(f"{key}: {old.values[key]!r} -> {new.values[key]!r}")
  return lines


class MigrationError(ValueError):
  """A point whose digest cannot be carried over: it must run again."""


# Run in a copy of a commit's tree: that commit's config text of each (gin files, bindings).
_OLD_TEXTS = """
import json, os, sys
import prompt_tuning
assert os.path.dirname(os.path.abspath(prompt_tuning.__file__)) == os.path.abspath("prompt_tuning"), (
    prompt_tuning.__file__)
from prompt_tuning.sweep import driver
config_text = getattr(driver, "config_text", None) or driver._config_text
out = []
for files, bindings in json.load(sys.stdin):
  try:
    out.append([config_text(files, bindings), None])
  except Exception as e:  # reported per point
    out.append([None, f"{type(e).__name__}: {e}"])
with open(sys.argv[1], "w") as f:  # not stdout, which the old code may print on
  json.dump(out, f)
"""


def _git(repo: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run(["git", "-C", repo, *args], capture_output=True, check=False)


# (repository, commit, gin files, bindings) -> what `_old_texts` gave: a commit's code
# computes a config's text once per process.
_OLD_TEXTS_DONE: dict[tuple[str, str, str], tuple[Optional[str], Optional[str]]] = {}


def old_texts(
  repo: str, commit: str, configs: Sequence[tuple[list[str], list[str]]]
) -> list[tuple[Optional[str], Optional[str]]]:
  """Each (gin files, bindings)'s config text as `commit`'s code computed it: (text, None),
  or (None, the error) where that code refused it.

  Raises:
    MigrationError: the commit is not in the repository's history (a shallow clone), or
      its code cannot compute config texts.
  """
  commit = _resolve(repo, commit)
  keys = [
    (os.path.abspath(repo), commit, json.dumps([list(c) for c in config])) for config in configs
  ]
  missing = sorted({k for k in keys if k not in _OLD_TEXTS_DONE})
  if missing:
    texts = _old_texts(repo, commit, [json.loads(k[2]) for k in missing])
    _OLD_TEXTS_DONE.update(zip(missing, texts))
  return [_OLD_TEXTS_DONE[k] for k in keys]


def _resolve(repo: str, commit: str) -> str:
  """A commit's full sha (`--from_commit` may be short, or a branch).

  Raises:
    MigrationError: the commit is not in the repository's history (a shallow clone).
  """
  resolved = _git(repo, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
  if resolved.returncode == 0:
    return resolved.stdout.decode().strip()
  if _git(repo, "rev-parse", "--is-shallow-repository").stdout.strip() == b"true":
    raise MigrationError(
      f"commit {commit} is not in this shallow clone's history ({repo}); fetch the rest "
      "(git fetch --unshallow) and migrate again"
    )
  raise MigrationError(
    f"no commit {commit} in {repo}; `git log -- <point>/point.json` shows the commits "
    "that wrote a point's digest"
  )


def _old_texts(
  repo: str, commit: str, configs: Sequence[Sequence[list[str]]]
) -> list[tuple[Optional[str], Optional[str]]]:
  """`old_texts`, computed: in a copy of the commit's tree, by its own code."""
  tree = tempfile.mkdtemp(prefix=f"migrate-{commit[:8]}-")
  try:
    archive = _git(repo, "archive", "--format=tar", commit, "--", ".", ":(exclude)results")
    if archive.returncode:
      raise MigrationError(f"git archive {commit}: {archive.stderr.decode().strip()}")
    untar = subprocess.run(["tar", "-x", "-C", tree], input=archive.stdout, capture_output=True)
    if untar.returncode:
      raise MigrationError(
        f"cannot unpack commit {commit[:12]} into {tree}: {untar.stderr.decode().strip()}"
      )
    out = os.path.join(tree, "old_texts.json")
    result = subprocess.run(
      [sys.executable, "-c", _OLD_TEXTS, out],
      input=json.dumps([list(c) for c in configs]),
      capture_output=True,
      text=True,
      cwd=tree,
      env={**os.environ, "PYTHONPATH": tree, "JAX_PLATFORMS": "cpu"},
      check=False,
    )
    if result.returncode or not os.path.isfile(out):
      last = (result.stderr.strip().splitlines() or ["no output"])[-1]
      raise MigrationError(f"commit {commit[:12]}'s code could not compute config texts: {last}")
    with open(out) as f:
      return [(text, error) for text, error in json.load(f)]
  finally:
    shutil.rmtree(tree, ignore_errors=True)


def _commit_of(point_dir: str, record: Mapping[str, Any]) -> Optional[str]:
  """The commit whose code computed the point's digest: the one its last migration
  recorded, else the one it ran at (its status.json's environment, else its archive
  provenance's).

  Raises:
    MigrationError: its last migration ran from a tree that differed from its commit.
  """
  migrations = record.get(points_lib.MIGRATIONS_KEY) or []
  if migrations:
    last = migrations[-1]
    if last.get("to_dirty") or not last.get("to_commit"):
      raise MigrationError(
        f"{point_dir}: its last migration ran from a tree that differed from commit "
        f"{last.get('to_commit')}; name the commit that computed its digest (--from_commit)"
      )
    return last["to_commit"]
  for name in (points_lib.STATUS_FILE, archive_lib.PROVENANCE_FILE):
    environment = (points_lib.read_json(os.path.join(point_dir, name)) or {}).get(
      provenance.ENVIRONMENT_KEY
    )
    if environment and environment.get("git_commit"):
      return environment["git_commit"]
  return None


def _read_record(path: str) -> dict[str, Any]:
  try:
    record = points_lib.read_json(path)
  except ValueError as e:  # JSONDecodeError
    raise MigrationError(f"{path} is not JSON ({e}); restore it from git") from None
  if not isinstance(record, dict) or not isinstance(record.get("argv"), list):
    raise MigrationError(f"{path} holds no point record (no argv); restore it from git")
  return record


def migrate(
  sweep_dir: str,
  *,
  dry_run: bool = False,
  from_commit: Optional[str] = None,
  migrations: Sequence[Migration] = MIGRATIONS,
  repo: Optional[str] = None,
) -> dict[str, Any]:
  """Carries the digests of `sweep_dir`'s points (a sweep directory or an archive) over
  to the current code's config texts, each checked as the module says.

  Args:
    sweep_dir: a sweep directory or an archive.
    dry_run: check every point, write nothing.
    from_commit: the commit whose code computed the recorded digests (default: each
      point's own, as its status.json or provenance.json records it).
    migrations: the declared changes (`MIGRATIONS`).
    repo: the git repository holding those commits (default: this package's checkout).

  Returns:
    Counts: `points` (with a digest), `migrated`, `unchanged`, and `no_digest`.
  Raises:
    MigrationError: the first point whose digest cannot be carried over, before any file
      is written.
  """
  repo = repo or provenance.repo_root()
  if from_commit is not None:
    from_commit = _resolve(repo, from_commit)
  if not os.path.isdir(sweep_dir):
    raise MigrationError(
      f"--sweep_dir={sweep_dir} is not a directory; give a sweep's or an archive's"
    )
  if os.path.isfile(os.path.join(sweep_dir, points_lib.POINT_FILE)):
    raise MigrationError(
      f"{sweep_dir} is one sweep point; give the directory that holds it "
      f"(--sweep_dir={os.path.dirname(os.path.abspath(sweep_dir))})"
    )
  names = sorted(
    n
    for n in os.listdir(sweep_dir)
    if os.path.isfile(os.path.join(sweep_dir, n, points_lib.POINT_FILE))
  )
  if not names:
    raise MigrationError(
      f"{sweep_dir} holds no sweep points (no */{points_lib.POINT_FILE}); give a sweep's "
      "directory or an archive (results/<name>)"
    )
  records, new_texts, by_commit, no_digest = {}, {}, collections.defaultdict(list), 0
  for name in names:
    record = _read_record(os.path.join(sweep_dir, name, points_lib.POINT_FILE))
    if not record.get("config_sha256"):
      no_digest += 1
      continue
    try:
      text = driver.config_text(*points_lib.config_of_argv(record["argv"]))
    except driver.CONFIG_ERRORS as e:
      raise MigrationError(
        f"point {name}: the current code refuses its config: {driver.one_line(e)}"
      ) from None
    if driver.config_digest(text) == record["config_sha256"]:
      continue
    commit = from_commit or _commit_of(os.path.join(sweep_dir, name), record)
    if commit is None:
      raise MigrationError(
        f"point {name}: no commit is recorded for it; name the one that ran it (--from_commit)"
      )
    records[name], new_texts[name] = record, text
    by_commit[commit].append(name)
  resolved = collections.defaultdict(list)  # one rev-parse per commit named, not per point
  for commit, commit_names in by_commit.items():
    resolved[_resolve(repo, commit)] += commit_names

  updates = {}
  for commit, commit_names in sorted(resolved.items()):
    olds = old_texts(
      repo,
      commit,
      [points_lib.config_of_argv(records[n]["argv"]) for n in commit_names],
    )
    for name, (old_text, error) in zip(commit_names, olds):
      record = records[name]
      if error is not None:
        raise MigrationError(
          f"point {name}: commit {commit[:12]}'s code refuses its config: {error}"
        )
      if driver.config_digest(old_text) != record["config_sha256"]:
        raise MigrationError(
          f"point {name}: commit {commit[:12]}'s code gives its config another digest than "
          "point.json records; name the commit that computed it (--from_commit), or run the "
          "point again"
        )
      migrated, applied, diffs = apply(read_bindings(old_text), migrations)
      diffs += differences(migrated, read_bindings(new_texts[name]))
      if diffs:
        raise MigrationError(
          f"point {name}: its config changed in {len(diffs)} way(s) that no migration "
          f"declares, first: {diffs[0]}; run the point again"
        )
      updates[name] = {
        "from_sha256": record["config_sha256"],
        "from_commit": commit,
        "migrations": applied,
      }

  if not dry_run and updates:
    # results/ aside: a migration rewrites it, and no config text reads it.
    to_commit, to_dirty = provenance.git_commit(repo, "results")
    for name, update in updates.items():
      record = records[name]
      record["config_sha256"] = driver.config_digest(new_texts[name])
      record.setdefault(points_lib.MIGRATIONS_KEY, []).append(
        {**update, "to_commit": to_commit, "to_dirty": to_dirty}
      )
      points_lib.write_json(os.path.join(sweep_dir, name, points_lib.POINT_FILE), record)
  points = len(names) - no_digest
  return {
    "points": points,
    "migrated": len(updates),
    "unchanged": points - len(updates),
    "no_digest": no_digest,
    "dry_run": dry_run,
  }
