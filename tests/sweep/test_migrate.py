"""`python -m prompt_tuning.sweep migrate`: archived digests carried over to a change that
renames what the configs bind, checked point by point against the commit that ran them.

The real case is the shipped archives: their points ran before the trainer's settings became
named objects (migrate.MIGRATIONS[0]), and record the digest they had then. A copy of one,
its digest set back to the one it ran with, migrates again here from the repository's history.
"""

import dataclasses
import json
import os
import shutil
import subprocess

import pytest

from prompt_tuning.sweep import archive as archive_lib
from prompt_tuning.sweep import driver
from prompt_tuning.sweep import migrate
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import provenance
from tests import conftest

POINT = os.path.join(
  conftest.REPO_ROOT,
  "results",
  "figure1",
  "size=xs,method=prompt_tuning,task=supersense,RANDOM_SEED=0",
)

OLD = """from __gin__ import dynamic_registration
from prompt_tuning.training import trainer

BATCH_SIZE = 32
trainer.train.batch_size = %BATCH_SIZE
trainer.train.learning_rate = 0.3
trainer.train.what_trains = ['prompt', 'encoder/.*']
"""
NEW = """from __gin__ import dynamic_registration
from prompt_tuning.training import settings
from prompt_tuning.training import trainer

BATCH_SIZE = 32
settings.DataSettings.batch_size = %BATCH_SIZE
settings.OptimizationSettings.learning_rate = 0.3
settings.OptimizationSettings.what_trains = \\
    ['prompt',
     'encoder/.*']
trainer.train.data = @settings.DataSettings()
trainer.train.optimization = @settings.OptimizationSettings()
"""
RENAMES = {
  "trainer.train.batch_size": "settings.DataSettings.batch_size",
  "trainer.train.learning_rate": "settings.OptimizationSettings.learning_rate",
  "trainer.train.what_trains": "settings.OptimizationSettings.what_trains",
}
ADDED = {
  "trainer.train.data": "@settings.DataSettings()",
  "trainer.train.optimization": "@settings.OptimizationSettings()",
}
DECLARED = migrate.Migration(
  "example", RENAMES, ADDED, imports=("prompt_tuning.training.settings",)
)


def _differences(old: str, new: str, migration: migrate.Migration) -> list[str]:
  migrated, _, problems = migrate.apply(migrate.read_bindings(old), [migration])
  return problems + migrate.differences(migrated, migrate.read_bindings(new))


def test_declared_renames_and_additions_carry_the_old_text_to_the_new():
  assert _differences(OLD, NEW, DECLARED) == []


@pytest.mark.parametrize(
  "new,migration,difference",
  [
    # a value changed along with its key
    (NEW.replace("learning_rate = 0.3", "learning_rate = 0.1"), DECLARED, "0.3 -> 0.1"),
    # an int for a float is another config
    (
      NEW.replace("learning_rate = 0.3", "learning_rate = 0.3\nBATCH_SIZE = 32.0"),
      DECLARED,
      "BATCH_SIZE: 32 -> 32.0",
    ),
    # a rename no migration declares
    (
      NEW,
      migrate.Migration(
        "example", {**RENAMES, "trainer.train.batch_size": "x.batch_size"}, ADDED, DECLARED.imports
      ),
      "x.batch_size is bound only in the old text",
    ),
    # a binding the new code adds that no migration declares
    (
      NEW + "trainer.train.log_period = 5\n",
      DECLARED,
      "trainer.train.log_period is bound only in the new text",
    ),
    # an import no migration declares
    (
      NEW,
      migrate.Migration("example", RENAMES, ADDED),
      "import prompt_tuning.training.settings only in the new text",
    ),
  ],
)
def test_anything_no_migration_declares_is_a_difference(new, migration, difference):
  found = _differences(OLD, new, migration)
  assert any(difference in line for line in found), found


def test_an_old_binding_that_did_nothing_then_is_refused_where_the_new_code_reads_it():
  # The old code built its data settings itself: this line changed nothing then.
  old = OLD + "settings.DataSettings.vocabulary = 'other'\n"
  new = NEW + "settings.DataSettings.vocabulary = 'other'\n"
  assert _differences(old, new, DECLARED) == []  # the texts alone agree
  reads = dataclasses.replace(DECLARED, newly_configured=("settings.DataSettings",))
  assert _differences(OLD, NEW, reads) == []
  (problem,) = _differences(old, new, reads)
  assert problem.startswith(
    "settings.DataSettings.vocabulary is bound in the old text, where nothing read it"
  )


def test_a_rename_onto_a_key_the_old_text_binds_is_refused():
  old = OLD + "settings.DataSettings.batch_size = 8\n"
  (problem,) = _differences(old, NEW, DECLARED)
  assert (
    problem
    == "settings.DataSettings.batch_size is bound in the old text and by the migration 'example'"
  )


def test_the_config_text_gin_writes_reads_back_whole():
  record = points_lib.read_json(os.path.join(POINT, points_lib.POINT_FILE))
  bindings = migrate.read_bindings(driver.config_text(*points_lib.config_of_argv(record["argv"])))
  assert bindings.values["TASK_FEATURE_LENGTHS"] == {"inputs": 48, "targets": 4}
  assert bindings.values["settings.DataSettings.batch_size"] == migrate._Macro("BATCH_SIZE")  # pylint: disable=protected-access
  assert bindings.values["trainer.train.data"] == migrate._Reference("settings.DataSettings", True)  # pylint: disable=protected-access
  assert "prompt_tuning.training.settings" in bindings.imports


def _copy_point(sweep_dir: str, name: str, digest: str) -> str:
  """The shipped point's record, with `digest` as the one it ran with."""
  target = os.path.join(sweep_dir, name)
  os.makedirs(target)
  shutil.copy(os.path.join(POINT, archive_lib.PROVENANCE_FILE), target)
  record = points_lib.read_json(os.path.join(POINT, points_lib.POINT_FILE))
  record["config_sha256"] = digest
  record.pop(points_lib.MIGRATIONS_KEY, None)
  points_lib.write_json(os.path.join(target, points_lib.POINT_FILE), record)
  return target


@pytest.mark.slow  # a copy of the commit's code parses the points' configs once (~15 s)
def test_an_archived_point_migrates_from_the_commit_that_ran_it(tmp_path):
  shipped = points_lib.read_json(os.path.join(POINT, points_lib.POINT_FILE))
  (applied,) = shipped[points_lib.MIGRATIONS_KEY]  # the shipped archive was migrated once
  ran_with = applied["from_sha256"]
  current = driver.config_digest(driver.config_text(*points_lib.config_of_argv(shipped["argv"])))
  assert shipped["config_sha256"] == current != ran_with

  sweep_dir = str(tmp_path / "sweep")
  good = _copy_point(sweep_dir, "good", ran_with)
  # A digest its commit's code does not give (what a changed sweep file or a hand edit leaves).
  _copy_point(sweep_dir, "tampered", "0" * 64)
  before = open(os.path.join(good, points_lib.POINT_FILE)).read()
  with pytest.raises(
    migrate.MigrationError, match="point tampered: commit .* gives its config another digest"
  ):
    migrate.migrate(sweep_dir)
  assert open(os.path.join(good, points_lib.POINT_FILE)).read() == before  # nothing written

  shutil.rmtree(os.path.join(sweep_dir, "tampered"))
  assert migrate.migrate(sweep_dir, dry_run=True)["migrated"] == 1
  assert open(os.path.join(good, points_lib.POINT_FILE)).read() == before
  # A short sha (or a branch) names the commit; the record keeps its full sha.
  result = migrate.migrate(sweep_dir, from_commit=applied["from_commit"][:10])
  assert (result["points"], result["migrated"], result["unchanged"]) == (1, 1, 0)
  record = json.load(open(os.path.join(good, points_lib.POINT_FILE)))
  assert record["config_sha256"] == current
  (entry,) = record[points_lib.MIGRATIONS_KEY]
  assert entry["from_sha256"] == ran_with
  assert entry["from_commit"] == applied["from_commit"]
  assert entry["migrations"] == [m.name for m in migrate.MIGRATIONS]
  # Done once: a second run finds the current code's digest and runs no old code.
  assert migrate.migrate(sweep_dir)["unchanged"] == 1


def test_without_the_declared_migration_the_point_is_refused(tmp_path):
  shipped = points_lib.read_json(os.path.join(POINT, points_lib.POINT_FILE))
  (applied,) = shipped[points_lib.MIGRATIONS_KEY]
  sweep_dir = str(tmp_path / "sweep")
  good = _copy_point(sweep_dir, "good", applied["from_sha256"])
  before = open(os.path.join(good, points_lib.POINT_FILE)).read()
  with pytest.raises(
    migrate.MigrationError,
    match="point good: its config changed in .* way.s. that no migration declares",
  ):
    migrate.migrate(sweep_dir, migrations=())
  assert open(os.path.join(good, points_lib.POINT_FILE)).read() == before


def test_bad_input_is_a_one_line_error_naming_what_to_do(tmp_path):
  shipped = os.path.join(conftest.REPO_ROOT, "results", "figure1")
  cases = [
    (
      dict(sweep_dir=str(tmp_path / "nowhere")),
      "is not a directory; give a sweep's or an archive's",
    ),
    (dict(sweep_dir=POINT), "is one sweep point; give the directory that holds it"),
    (dict(sweep_dir=str(tmp_path)), "holds no sweep points"),
    # A commit that does not exist stops the run before any point is read, even where no
    # point would need it.
    (dict(sweep_dir=shipped, from_commit="not-a-commit"), "no commit not-a-commit in .*git log"),
  ]
  for arguments, message in cases:
    with pytest.raises(migrate.MigrationError, match=message):
      migrate.migrate(dry_run=True, **arguments)


def test_a_migration_counts_its_tree_clean_while_only_results_differ(tmp_path):
  repo = str(tmp_path)
  git = ["git", "-C", repo, "-c", "user.email=t@t", "-c", "user.name=t"]
  subprocess.run(["git", "init", "-q", repo], check=True)
  os.makedirs(os.path.join(repo, "results"))
  for path in ("code.py", os.path.join("results", "point.json")):
    with open(os.path.join(repo, path), "w") as f:
      f.write("1\n")
  subprocess.run([*git, "add", "."], check=True)
  subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
  with open(os.path.join(repo, "results", "point.json"), "w") as f:
    f.write("2\n")  # what a migration itself rewrites
  commit, dirty = provenance.git_commit(repo, "results")
  assert len(commit) == 40 and dirty is False
  assert provenance.git_commit(repo) == (commit, True)  # a run's environment counts it
  with open(os.path.join(repo, "code.py"), "w") as f:
    f.write("2\n")
  assert provenance.git_commit(repo, "results") == (commit, True)
