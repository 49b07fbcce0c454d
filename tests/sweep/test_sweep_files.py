"""Sweep files: one-line errors for bad ones, --only, axes and where, the shipped sweeps."""

import io
import os
import re
import textwrap

import gin
import pytest

from prompt_tuning import gin_config
from prompt_tuning.models import prompts
from prompt_tuning.sweep import driver
from prompt_tuning.sweep import report as report_lib
from prompt_tuning.sweep import points as points_lib
from prompt_tuning.sweep import spec
from tests.sweep.helpers import (
  REPO,
  BASE,
  LEARNING_RATES,
  GOOD_POINTS,
  BAD_POINT,
  write_sweep_file,
  run_sweep,
)


# A bad sweep file: one line, before anything runs.
BAD_FILES = {
  "unknown macro": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGHT': [1, 2]}\n",
    "point PROMPT_LENGHT=1: the gin config sets PROMPT_LENGHT (did you mean "
    "PROMPT_LENGTH?), which nothing in this run reads",
  ),
  "unknown gin file": (
    BASE + "sweep.Sweep.axes = {'init': {'a': 'configs/prompts/nope.gin'}}\n",
    "point init=a: gin file 'configs/prompts/nope.gin' not found",
  ),
  "empty axis": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGTH': []}\n",
    "axis PROMPT_LENGTH is empty; give it at least one value",
  ),
  "empty alternatives": (
    BASE + "sweep.Sweep.axes = {'init': {}}\n",
    "axis init is empty; give it at least one alternative",
  ),
  "same name twice": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGTH': [2, '2']}\n",
    "two points are named PROMPT_LENGTH=2",
  ),
  "zip of unequal lengths": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1, 2], 'LEARNING_RATE': [0.1]}\n"
    "sweep.Sweep.zip = [('PROMPT_LENGTH', 'LEARNING_RATE')]\n",
    "zip of unequal lengths: PROMPT_LENGTH has 2, LEARNING_RATE has 1",
  ),
  "zip of an unknown axis": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1, 2]}\n"
    "sweep.Sweep.zip = [('PROMPT_LENGTH', 'size')]\n",
    "zip names 'size', which is not an axis (PROMPT_LENGTH)",
  ),
  "MODEL_DIR set": (
    BASE + "sweep.Sweep.axes = {'MODEL_DIR': ['/tmp/a']}\n",
    "axis MODEL_DIR: the sweep sets MODEL_DIR",
  ),
  "unknown Sweep setting": (
    BASE + "sweep.Sweep.axis = {'PROMPT_LENGTH': [1]}\n",
    "Configurable 'sweep.Sweep' doesn't have a parameter named 'axis'",
  ),
  "a misspelled reference": (
    BASE.replace("@wordnet.labels()", "@wordnet.lables()")
    + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1]}\n",
    "Couldn't resolve selector wordnet.lables",
  ),
  "a seed axis that is not an axis": (
    BASE + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1]}\nsweep.Sweep.seed_axes = ['SEED']\n",
    "seed_axes names 'SEED', which is not an axis (PROMPT_LENGTH)",
  ),
  "an axis named like a column": (
    BASE + "sweep.Sweep.axes = {'status': {'a': 'a.gin'}}\n",
    "axis name 'status' is a column of results.csv",
  ),
  "no axes": (BASE, "the sweep file binds no sweep.Sweep.axes"),
  "an unset macro of the sweep file": (
    "CKPT = %gin.REQUIRED\n"
    + BASE.replace("@wordnet.bundled_checkpoint()", "%CKPT")
    + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1]}\n",
    "the sweep file requires CKPT; set it with --gin.CKPT=...",
  ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_sweep_files_are_one_line_errors(case, tmp_path):
  text, message = BAD_FILES[case]
  with pytest.raises(spec.SweepFileError) as error:
    plan = driver.load(write_sweep_file(tmp_path, text))
    driver.check_points(plan)
  assert message in str(error.value)
  assert "\n" not in str(error.value)
  assert not (tmp_path / "sweep").exists()


def test_a_typo_in_a_sweep_macro_override_is_an_error(tmp_path):
  sweep_file = write_sweep_file(
    tmp_path,
    "CKPT = 'a'\n"
    + BASE.replace("@wordnet.bundled_checkpoint()", "%CKPT")
    + "sweep.Sweep.axes = {'PROMPT_LENGTH': [1]}\n",
  )
  assert driver.load(sweep_file, ["CKPT = 'b'"]).bindings[0] == ("INITIAL_CHECKPOINT_PATH", "'b'")
  with pytest.raises(spec.SweepFileError, match="sets CKTP, which nothing in this run reads"):
    driver.load(sweep_file, ["CKTP = 'b'"])


@pytest.mark.integration
def test_cli_bad_file_and_dry_run(tmp_path):
  bad = write_sweep_file(tmp_path, BAD_FILES["unknown macro"][0], "bad.gin")
  code, out, err = run_sweep(bad, tmp_path / "sweep")
  assert code == 1 and err.strip().splitlines()[-1].startswith(
    "error: point PROMPT_LENGHT=1: the gin config sets PROMPT_LENGHT"
  )
  assert not (tmp_path / "sweep").exists()
  good = write_sweep_file(tmp_path, BASE + LEARNING_RATES)
  code, out, err = run_sweep(good, tmp_path / "sweep", "--dry_run")
  assert code == 0, err
  lines = out.strip().splitlines()
  assert lines[0] == "sweep sweep: 3 points (dry run: nothing runs)"
  assert [line for line in lines[1:-1] if not line.startswith(" ")] == [*GOOD_POINTS, BAD_POINT]
  assert lines[-1] == (
    f"sweep sweep: 3 points: 0 done in {tmp_path / 'sweep'}, 0 to copy, "
    "3 to run (dry run: nothing ran)"
  )
  assert "PROMPT_TUNING_CPU_CORES=1" in lines[2] and "--gin.LEARNING_RATE=0.3" in lines[2]
  assert not (tmp_path / "sweep").exists()
  # --only, through the driver in this process (a command pays JAX's and TensorFlow's
  # imports; the two above show how the command prints): a slice of the grid, its points
  # named and run as in the whole sweep; a label the axis lacks stops before anything exists.
  sliced = io.StringIO()
  only = ["LEARNING_RATE=1.0"]
  assert driver.run(good, str(tmp_path / "sweep"), is_dry_run=True, only=only, out=sliced) == 0
  sliced = sliced.getvalue().strip().splitlines()
  assert sliced[0] == "sweep sweep: 1 points (dry run: nothing runs)"
  assert sliced[1:-1] == lines[3:5]
  with pytest.raises(spec.SweepFileError) as error:
    driver.run(good, str(tmp_path / "sweep"), only=["LEARNING_RATE=2.0"], out=io.StringIO())
  assert str(error.value) == (
    "--only='LEARNING_RATE=2.0': LEARNING_RATE has no value '2.0' (0.3, 1.0, -1.0)"
  )
  assert not (tmp_path / "sweep").exists()


def test_only_selects_points_by_axis_labels_keeping_names_and_indices(tmp_path):
  plan = driver.load(
    write_sweep_file(
      tmp_path,
      BASE
      + textwrap.dedent("""\
      sweep.Sweep.axes = {'size': {'small': 'a.gin', 'big': 'b.gin'},
                          'task': {'x': {'MIXTURE_OR_TASK_NAME': 'x'},
                                   'y': {'MIXTURE_OR_TASK_NAME': 'y'}},
                          'RANDOM_SEED': [0, 1, 2]}
      """),
    )
  )
  sliced = spec.select(plan, ["task=y", "RANDOM_SEED=0,2"])
  assert [(p.index, p.name) for p in sliced.points] == [
    (p.index, p.name)
    for p in plan.points
    if p.axis_values()["task"] == "y" and p.axis_values()["RANDOM_SEED"] in (0, 2)
  ]
  assert len(sliced.points) == 4
  assert spec.select(plan, []).points == plan.points
  # In a directory the whole sweep ran in, a slice keeps the other points in the report.
  sweep_dir = str(tmp_path / "sweep")
  points_lib.prepare(plan, sweep_dir, REPO)
  assert driver.listed_points(plan, sliced, sweep_dir) == [p.name for p in plan.points]
  fresh = str(tmp_path / "fresh")
  assert driver.listed_points(plan, sliced, fresh) == [p.name for p in sliced.points]
  points_lib.prepare(sliced, fresh, REPO, driver.listed_points(plan, sliced, fresh))
  other = spec.select(plan, ["task=x", "RANDOM_SEED=1"])
  assert driver.listed_points(plan, other, fresh) == [
    p.name for p in plan.points if p in sliced.points or p in other.points
  ]
  for only, message in (
    (["seed=0"], "'seed' is not an axis of the sweep (size, task, RANDOM_SEED)"),
    (["task=z"], "task has no value 'z' (x, y)"),
    (["task"], "write AXIS=LABEL[,LABEL...]"),
  ):
    with pytest.raises(spec.SweepFileError, match=re.escape(message)):
      spec.select(plan, only)
  zipped = driver.load(
    write_sweep_file(
      tmp_path,
      BASE
      + textwrap.dedent("""\
      sweep.Sweep.axes = {'PROMPT_LENGTH': [1, 2], 'LEARNING_RATE': [0.1, 0.2]}
      sweep.Sweep.zip = [('PROMPT_LENGTH', 'LEARNING_RATE')]
      """),
      "zipped.gin",
    )
  )
  with pytest.raises(spec.SweepFileError, match="no point of the sweep has all these labels"):
    spec.select(zipped, ["PROMPT_LENGTH=1", "LEARNING_RATE=0.2"])


def test_axes_combine_as_a_product_in_order_and_zip_pairs_them(tmp_path):
  plan = driver.load(
    write_sweep_file(
      tmp_path,
      BASE
      + textwrap.dedent("""\
      sweep.Sweep.axes = {
          'size': {'small': 'a.gin', 'big': ['b.gin', 'c.gin']},
          'PROMPT_LENGTH': [1, 20],
          'LEARNING_RATE': [0.3, 0.1],
          'init': {'labels': {'gin_files': ['d.gin'], 'CLASS_LABELS': @wordnet.labels()},
                   'random': {'RANDOM_UNIFORM_SCALE': 0.5}},
      }
      sweep.Sweep.zip = [('size', 'LEARNING_RATE')]
      """),
    )
  )
  names = [p.name for p in plan.points]
  assert names == [
    f"size={s},PROMPT_LENGTH={n},LEARNING_RATE={r},init={i}"
    for s, r in (("small", "0.3"), ("big", "0.1"))
    for n in (1, 20)
    for i in ("labels", "random")
  ]
  point = plan.points[4]  # big, 1, labels
  assert plan.gin_files_of(point)[-3:] == ["b.gin", "c.gin", "d.gin"]
  bound = plan.bindings_of(point)  # the axes' values replace the base's, each key once
  assert len(bound) == len(dict(bound))
  assert {
    k: v
    for k, v in bound
    if k in ("PROMPT_LENGTH", "LEARNING_RATE", "CLASS_LABELS", "RANDOM_UNIFORM_SCALE")
  } == {
    "PROMPT_LENGTH": "1",
    "LEARNING_RATE": "0.1",
    "CLASS_LABELS": "@prompt_tuning.data.wordnet.labels()",
  }
  assert point.axis_values() == {
    "size": "big",
    "PROMPT_LENGTH": 1,
    "LEARNING_RATE": 0.1,
    "init": "labels",
  }


def test_where_binds_by_several_axes_and_files_after_axes_come_last(tmp_path):
  plan = driver.load(
    write_sweep_file(
      tmp_path,
      BASE
      + textwrap.dedent("""\
      sweep.Sweep.gin_files_after_axes = ['z.gin']
      sweep.Sweep.axes = {'size': {'small': 'a.gin', 'big': 'b.gin'},
                          'objective': {'sc': {}, 'lm': {}}}
      sweep.Sweep.where = [({'size': 'big', 'objective': 'lm'}, {'TRAIN_STEPS': 7})]
      """),
    )
  )
  by_name = {p.name: p for p in plan.points}
  assert plan.gin_files_of(by_name["size=big,objective=lm"])[-2:] == ["b.gin", "z.gin"]
  # The base's TRAIN_STEPS, replaced in place: each key is bound once, to its last value.
  keys = [k for k, _ in plan.bindings_of(by_name["size=big,objective=lm"])]
  assert keys == [k for k, _ in plan.bindings_of(by_name["size=big,objective=sc"])]
  assert keys.count("TRAIN_STEPS") == 1
  assert dict(plan.bindings_of(by_name["size=big,objective=lm"]))["TRAIN_STEPS"] == "7"
  assert dict(plan.bindings_of(by_name["size=big,objective=sc"]))["TRAIN_STEPS"] != "7"
  with pytest.raises(spec.SweepFileError, match="where: size=huge is not an axis value"):
    driver.load(
      write_sweep_file(
        tmp_path,
        BASE
        + textwrap.dedent("""\
        sweep.Sweep.axes = {'size': {'small': 'a.gin'}}
        sweep.Sweep.where = [({'size': 'huge'}, {'TRAIN_STEPS': 7})]
        """),
      )
    )


INCLUDES = (
  "paper_superglue.gin",
  "wordnet_scaling.gin",
  "wordnet_recipe.gin",
)  # shared settings, not sweeps


SHIPPED = sorted(
  p
  for p in os.listdir(os.path.join(REPO, "configs", "sweeps"))
  if p.endswith(".gin") and p not in INCLUDES
)


def _labels(plan, axis):
  return list(dict.fromkeys(c.label for p in plan.points for c in p.choices if c.axis == axis))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_sweep_files_parse_into_valid_runs(name, tmp_path):
  """Every point of every shipped sweep is a config `python -m prompt_tuning.train` accepts."""
  plan = driver.load(os.path.join(REPO, "configs", "sweeps", name))
  driver.check_points(plan)
  assert plan.seed_axes == ("RANDOM_SEED",)
  if name.startswith("paper_"):
    assert plan.average_axes == ("task",) and len(_labels(plan, "task")) == 8
    assert len(_labels(plan, "RANDOM_SEED")) == 3
  if name.startswith("wordnet_scaling_"):  # the miniature study (issue: the paper's grids)
    assert plan.average_axes == ("task",)
    assert _labels(plan, "task") == ["supersense", "hypernym"]
    assert _labels(plan, "size") == ["xs", "s", "m", "l"]
    assert len(_labels(plan, "RANDOM_SEED")) >= (3 if "figure1" in name else 2)
    # Every point decodes the test split, and supersense's its out-of-domain split too.
    for p in plan.points:
      split = "['test', 'ood']" if "task=supersense" in p.name else "['test']"
      assert f"--gin.TEST_SPLIT={split}" in points_lib.train_argv(plan, p, "/d"), p.name
  # What each point trains is what its labels say: model tuning has no prompt (a model
  # file read after configs/runs/model_finetune.gin would bring its prompt back).
  for point in plan.points if name.startswith("wordnet_") else ():
    gin.clear_config()
    gin_config.parse_gin(
      plan.gin_files_of(point),
      [f"{k} = {v}" for k, v in plan.bindings_of(point)] + ["MODEL_DIR = '/unused'"],
    )
    model = gin_config.build_model()
    if "configs/runs/model_finetune.gin" in plan.gin_files_of(point):
      assert model.prompt is None, point.name
      assert gin.query_parameter("%WHAT_TRAINS") == "all"
    elif "method=p_tuning_v2" in point.name:  # a prefix before every encoder layer
      assert model.prompt is None and model.prefix.placement == "encoder", point.name
      assert model.prefix.length == gin.query_parameter("%PREFIX_LENGTH") == 20
      assert gin.query_parameter("%WHAT_TRAINS") == "prompt"
    else:
      assert model.prompt.length == gin.query_parameter("%PROMPT_LENGTH"), point.name
      assert gin.query_parameter("%WHAT_TRAINS") == "prompt"
      per_layer = "method=per_layer" in point.name
      assert isinstance(model.prompt, prompts.PerLayerPrompt) == per_layer, point.name
    if name.startswith("wordnet_scaling_"):  # the family was pretrained without dropout:
      # a frozen model gets none, model tuning T5's 0.1 (wordnet_scaling.gin)
      tuned = "configs/runs/model_finetune.gin" in plan.gin_files_of(point)
      assert model.config.dropout_rate == (0.1 if tuned else 0.0), point.name
    gin.clear_config()
  swept = {
    "wordnet_scaling_figure1.gin": ("method", ["prompt_tuning", "model_tuning"]),
    "wordnet_scaling_figure3a.gin": ("PROMPT_LENGTH", ["1", "5", "20", "100", "150"]),
    "wordnet_scaling_figure3b.gin": ("init", ["random_uniform", "sampled_vocab", "class_labels"]),
    "wordnet_scaling_figure3c.gin": ("PRETRAINING", ["span_corruption", "lm_adapted"]),
    "wordnet_scaling_table3.gin": ("RANDOM_SEED", ["0", "1", "2", "3", "4"]),
    "wordnet_methods_lr.gin": ("method", ["per_layer", "p_tuning_v2"]),
    "wordnet_scaling_spot.gin": ("method", ["prompt_tuning", "spot"]),
    "wordnet_scaling_methods.gin": (
      "method",
      ["prompt_tuning", "model_tuning", "per_layer", "p_tuning_v2"],
    ),
  }
  if name in swept:
    assert _labels(plan, swept[name][0]) == swept[name][1]


def test_table3s_seeds_0_to_2_are_figure1s_prompt_tuning_points():
  """`--reuse_from=build/scaling/figure1` copies them: the same names and configs."""

  def digests(name, only=()):
    plan = spec.select(driver.load(os.path.join(REPO, "configs", "sweeps", name)), only)
    return {p: driver.config_digest(text) for p, text in driver.check_points(plan).items()}

  figure1 = digests("wordnet_scaling_figure1.gin", ["method=prompt_tuning"])
  table3 = digests("wordnet_scaling_table3.gin")
  shared = {p: d for p, d in table3.items() if p.endswith(("SEED=0", "SEED=1", "SEED=2"))}
  assert shared == figure1 and len(figure1) == 4 * 2 * 3  # Figure 1 keeps its 3 seeds
  new = set(table3.values()) - set(shared.values())
  assert len(new) == 4 * 2 * 2 and not new & set(figure1.values())


def test_spots_sources_are_figure1s_other_task_and_its_own_init_is_figure1s():
  """Each SPoT point starts from Figure 1's archived best prompt of the other task at the
  same size and seed; the class-label points are Figure 1's (--reuse_from copies them)."""
  plan = driver.load(os.path.join(REPO, "configs", "sweeps", "wordnet_scaling_spot.gin"))
  texts = driver.check_points(plan)
  figure1 = spec.select(
    driver.load(os.path.join(REPO, "configs", "sweeps", "wordnet_scaling_figure1.gin")),
    ["method=prompt_tuning", "RANDOM_SEED=0,1"],
  )
  want = {p: driver.config_digest(t) for p, t in driver.check_points(figure1).items()}
  own = {p: driver.config_digest(t) for p, t in texts.items() if "method=prompt_tuning" in p}
  assert own == want and len(own) == 4 * 2 * 2
  spot = [p for p in plan.points if "method=spot" in p.name]
  assert len(spot) == 16
  for point in spot:
    bindings = dict(plan.bindings_of(point))
    labels = {c.axis: c.label for c in point.choices}
    other = {"hypernym": "supersense", "supersense": "hypernym"}[labels["task"]]
    source = (
      f"results/figure1/size={labels['size']},method=prompt_tuning,task={other},"
      f"RANDOM_SEED={labels['RANDOM_SEED']}/best"
    )
    assert bindings["PROMPT_FILE"] == repr(source), point.name
    assert os.path.isdir(os.path.join(REPO, source)), source


def _best_rate(archive: str, method: str) -> str:
  """The rate of `method` whose validation accuracy at the best step, averaged over the two
  tasks at S and at L, is best in the rate search's archive (every point done)."""
  _, rows = report_lib.collect(archive)
  means: dict[str, list[float]] = {}
  for row in rows:
    if row["method"] == method:
      assert row["status"] == points_lib.DONE, row["name"]
      means.setdefault(str(row["LEARNING_RATE"]), []).append(
        row[f"eval/wordnet_{row['task']}/accuracy@best"]
      )
  assert all(len(v) == 4 for v in means.values()) and len(means) == 4, means
  return max(means, key=lambda rate: sum(means[rate]))


def test_the_extended_figure1_is_figure1s_points_and_the_rate_searchs_at_its_rates():
  """Figure 1's 48 points are the extended Figure 1's shallow-prompt and model-tuning points;
  each new method's rate is its search's best (validation, both tasks, S and L: the archive
  says), and the search's seed-0 points at S and L at that rate are its own (the same config
  digests: --reuse_from copies them)."""
  sweeps = os.path.join(REPO, "configs", "sweeps")
  plan = driver.load(os.path.join(sweeps, "wordnet_scaling_methods.gin"))
  digests = {p: driver.config_digest(t) for p, t in driver.check_points(plan).items()}
  figure1 = driver.check_points(driver.load(os.path.join(sweeps, "wordnet_scaling_figure1.gin")))
  assert {p: driver.config_digest(t) for p, t in figure1.items()} == {
    p: d for p, d in digests.items() if "method=prompt_tuning" in p or "method=model_tuning" in p
  }
  search = driver.check_points(driver.load(os.path.join(sweeps, "wordnet_methods_lr.gin")))
  methods = [m for m in _labels(plan, "method") if m not in ("prompt_tuning", "model_tuning")]
  assert methods
  for method in methods:
    rate = _best_rate(os.path.join(REPO, "results", "methods_lr"), method)
    for size in ("s", "l"):
      for task in ("supersense", "hypernym"):
        point = f"size={size},method={method},task={task},RANDOM_SEED=0"
        searched = f"size={size},method={method},LEARNING_RATE={rate},task={task},RANDOM_SEED=0"
        assert digests[point] == driver.config_digest(search[searched]), point
  assert len(digests) == 4 * (len(methods) + 2) * 2 * 3
