"""A sweep file: base gin files and bindings shared by every run, and axes; its points.

A sweep file is a gin file (the project's one configuration language: values are
gin expressions, so a binding can reference a configurable, `@wordnet.labels()`,
and `--gin.NAME=VALUE` on the sweep command sets the sweep file's own macros,
such as the checkpoint paths of the paper's grids). It binds `sweep.Sweep`:

    from __gin__ import dynamic_registration
    from prompt_tuning import sweep

    sweep.Sweep:
      gin_files = ['configs/models/wordnet_tiny_prompt.gin',
                   'configs/runs/prompt_finetune.gin']
      bindings = {'TRAIN_STEPS': 600, 'EVAL_PERIOD': 200, ...}
      axes = {
          'PROMPT_LENGTH': [1, 5, 20],                # a macro and its values
          'init': {                                   # named alternatives
              'random_uniform': 'configs/prompts/from_random_uniform.gin',
              'class_labels': {'gin_files': ['configs/prompts/from_class_labels.gin'],
                               'CLASS_LABELS': @wordnet.labels()},
          },
          'RANDOM_SEED': [0, 1, 2],
      }

An axis whose value is a list sets a gin binding key (a macro, or
`configurable.parameter`) to each value. An axis whose value is a dict has
named alternatives, each one gin file, a list of gin files, or a dict of
bindings whose `gin_files` key (if any) lists gin files. Axes combine as a
product in the order written; `zip = [('size', 'LEARNING_RATE')]` pairs the
values of the axes in a group instead; `where` adds bindings that depend on
several axes. A point's run is the base gin files, each alternative's files in
axis order, `gin_files_after_axes`, then the base bindings, the axes' bindings,
the matching `where` bindings (a later binding of a key replaces the earlier
one's value, so each key is bound once), and its MODEL_DIR.
"""

import dataclasses
import itertools
import math
import re
from typing import Any, Mapping, Optional, Sequence

import gin

from prompt_tuning import gin_config

# What a point's name may hold: `axis=label` pairs joined by commas.
_LABEL_CHARACTERS = re.compile(r"[^A-Za-z0-9._+-]")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
GIN_FILES_KEY = "gin_files"
DEFAULT_SEED_AXES = ("RANDOM_SEED",)
# results.csv's own columns, which an axis may not be named.
RESERVED = (
  "name",
  "index",
  "status",
  "metric",
  "best",
  "last",
  "best_step",
  "steps",
  "train_steps",
  "error",
  "wall_s",
  "tokens_per_s",
)
ENTRY_POINT = "prompt_tuning.train"


@dataclasses.dataclass
class Sweep:
  """What a sweep file binds (see the module docstring).

  Attributes:
    axes: axis name -> list of values (a binding key's values) or dict of named
      alternatives (gin files and/or bindings).
    gin_files: gin files every point starts from.
    gin_files_after_axes: gin files every point reads after its axes' files
      (a prompt initialization that must follow an axis's model file).
    bindings: binding key -> value, for every point (after the files).
    zip: groups of axis names whose values go together (equal lengths) rather
      than as a product.
    metric: the evaluation metric that picks each point's best step, as
      recorded (e.g. 'eval/wordnet_supersense/accuracy'); None: the task's
      decoded metric, or the mean over tasks when there are several.
    metric_mode: 'max' or 'min'.
    resources: what one point needs: {'CPU': n} (cores, also pinned so that
      results do not depend on the host), and for Ray 'GPU' or custom
      resources such as 'TPU'.
    seed_axes: axes whose values are repetitions (mean and spread over them).
    average_axes: axes whose points make one score by their mean, per seed
      (the paper's SuperGLUE score: a prompt per task, averaged over tasks).
    where: bindings that depend on several axes: a list of (conditions,
      bindings), where conditions maps axis names to labels, e.g.
      `[({'size': 'small', 'objective': 'lm_adapted'}, {'INITIAL_CHECKPOINT_PATH': ...})]`;
      each applies, after the axes' bindings, to the points it matches.
    name: the sweep's name (default: the file's name).
  """

  axes: Mapping[str, Any] = gin.REQUIRED
  gin_files: Sequence[str] = ()
  gin_files_after_axes: Sequence[str] = ()
  bindings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  zip: Sequence[Sequence[str]] = ()
  metric: Optional[str] = None
  metric_mode: str = "max"
  resources: Mapping[str, float] = dataclasses.field(default_factory=lambda: {"CPU": 1})
  seed_axes: Sequence[str] = ("RANDOM_SEED",)  # DEFAULT_SEED_AXES
  average_axes: Sequence[str] = ()
  where: Sequence[Any] = ()
  name: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Choice:
  """One value of one axis."""

  axis: str
  label: str  # in point names and tables
  value: Any  # a macro axis: the value (numbers plot as numbers); else the label
  gin_files: tuple[str, ...] = ()
  bindings: tuple[tuple[str, str], ...] = ()  # (binding key, gin expression)


@dataclasses.dataclass(frozen=True)
class Point:
  """One run of the sweep."""

  index: int
  choices: tuple[Choice, ...]

  @property
  def name(self) -> str:
    return ",".join(f"{c.axis}={c.label}" for c in self.choices) or "base"

  def axis_values(self) -> dict[str, Any]:
    return {c.axis: c.value for c in self.choices}


@dataclasses.dataclass(frozen=True)
class Plan:
  """A parsed sweep: settings shared by the points, and the points."""

  name: str
  gin_files: tuple[str, ...]
  gin_files_after_axes: tuple[str, ...]
  bindings: tuple[tuple[str, str], ...]
  axes: tuple[str, ...]
  points: tuple[Point, ...]
  metric: Optional[str]
  metric_mode: str
  resources: dict[str, float]
  seed_axes: tuple[str, ...]
  average_axes: tuple[str, ...] = ()
  # (conditions as ((axis, label), ...), bindings): see Sweep.where.
  where: tuple[tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], ...] = ()

  def gin_files_of(self, point: Point) -> list[str]:
    return (
      list(self.gin_files)
      + [f for c in point.choices for f in c.gin_files]
      + list(self.gin_files_after_axes)
    )

  def bindings_of(self, point: Point) -> list[tuple[str, str]]:
    labels = {c.axis: c.label for c in point.choices}
    conditional = [
      b
      for conditions, bindings in self.where
      if all(labels.get(a) == v for a, v in conditions)
      for b in bindings
    ]
    # Later bindings of a key (an axis's over the base's, `where`'s over both)
    # replace its value in place: each key is bound once, to its last value.
    merged = dict(
      list(self.bindings) + [b for c in point.choices for b in c.bindings] + conditional
    )
    return list(merged.items())

  @property
  def cpus(self) -> int:
    return int(self.resources.get("CPU", 1))


class SweepFileError(ValueError):
  """A sweep file that cannot make a sweep; the message is one line."""


def _macro_name(value: Any) -> Optional[str]:
  if isinstance(value, gin.config.ConfigurableReference):
    scoped = value.scoped_selector
    if scoped.endswith("/gin.macro"):
      return scoped[: -len("/gin.macro")]
  return None


def resolve_macros(value: Any, seen: tuple[str, ...] = ()) -> Any:
  """Replaces references to the sweep file's own macros by their values (recursively).

  A macro the sweep file does not define stays a reference (the run's gin files
  may define it). One bound to %gin.REQUIRED is an error naming the flag to set.
  """
  name = _macro_name(value)
  if name is not None:
    try:
      bound = gin.query_parameter(f"%{name}")
    except ValueError:
      return value
    if str(bound) == "%gin.REQUIRED":
      raise SweepFileError(f"the sweep file requires {name}; set it with --gin.{name}=...")
    if name in seen:
      raise SweepFileError(f"macro {name} refers to itself")
    return resolve_macros(bound, seen + (name,))
  if isinstance(value, Mapping):
    return {k: resolve_macros(v, seen) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return type(value)(resolve_macros(v, seen) for v in value)
  return value


def gin_text(value: Any) -> str:
  """A Python value from a gin file (references included) as a gin expression."""
  if isinstance(value, gin.config.ConfigurableReference):
    return gin_config.reference_text(value)
  if isinstance(value, str):
    return repr(value)
  if isinstance(value, bool) or value is None:
    return repr(value)
  if isinstance(value, (int, float)):
    if isinstance(value, float) and not math.isfinite(value):
      raise SweepFileError(f"{value} cannot be written as a gin value")
    return repr(value)
  if isinstance(value, Mapping):
    return "{" + ", ".join(f"{gin_text(k)}: {gin_text(v)}" for k, v in value.items()) + "}"
  if isinstance(value, tuple):
    inner = ", ".join(gin_text(v) for v in value)
    return f"({inner},)" if len(value) == 1 else f"({inner})"
  if isinstance(value, list):
    return "[" + ", ".join(gin_text(v) for v in value) + "]"
  raise SweepFileError(f"{value!r} (a {type(value).__name__}) cannot be written as a gin value")


def _label(value: Any) -> str:
  if isinstance(value, gin.config.ConfigurableReference):
    text = repr(value).lstrip("@%").replace("()", "")
  elif isinstance(value, str):
    text = value
  else:
    text = gin_text(value)
  return _LABEL_CHARACTERS.sub("_", text) or "_"


def _check_key(key: Any, where: str) -> str:
  if not isinstance(key, str) or not _KEY.match(key):
    raise SweepFileError(
      f"{where}: {key!r} is not a gin binding key (a MACRO or configurable.parameter)"
    )
  if key == "MODEL_DIR":
    raise SweepFileError(
      f"{where}: the sweep sets MODEL_DIR (one per point, under --sweep_dir); remove it"
    )
  return key


def _bindings(mapping: Mapping[str, Any], where: str) -> tuple[tuple[str, str], ...]:
  return tuple((_check_key(k, where), gin_text(v)) for k, v in mapping.items())


def _gin_files(value: Any, where: str) -> tuple[str, ...]:
  files = [value] if isinstance(value, str) else value
  if not isinstance(files, (list, tuple)) or not all(isinstance(f, str) and f for f in files):
    raise SweepFileError(f"{where}: {value!r} is not a gin file or a list of gin files")
  return tuple(files)


def _axis(name: str, values: Any) -> tuple[Choice, ...]:
  if not isinstance(name, str) or not name or _LABEL_CHARACTERS.search(name.replace(".", "")):
    raise SweepFileError(f"axis name {name!r}: use letters, digits, '_' and '.'")
  if name in RESERVED or name.startswith("parameters"):
    raise SweepFileError(f"axis name {name!r} is a column of results.csv; name it otherwise")
  if isinstance(values, Mapping):  # named alternatives
    if not values:
      raise SweepFileError(f"axis {name} is empty; give it at least one alternative")
    choices = []
    for label, alternative in values.items():
      where = f"axis {name}, alternative {label!r}"
      if not isinstance(label, str) or _label(label) != label:
        raise SweepFileError(
          f"{where}: name alternatives with letters, digits, '.', '_', '+' or '-'"
        )
      if isinstance(alternative, Mapping):
        alternative = dict(alternative)
        files = _gin_files(alternative.pop(GIN_FILES_KEY, ()), where)
        choices.append(Choice(name, label, label, files, _bindings(alternative, where)))
      else:
        choices.append(Choice(name, label, label, _gin_files(alternative, where)))
    return tuple(choices)
  if isinstance(values, (list, tuple)):
    _check_key(name, f"axis {name}")
    if not values:
      raise SweepFileError(f"axis {name} is empty; give it at least one value")
    return tuple(
      Choice(
        name,
        _label(v),
        v if isinstance(v, (int, float, str, bool)) else _label(v),
        (),
        ((name, gin_text(v)),),
      )
      for v in values
    )
  raise SweepFileError(
    f"axis {name}: {values!r} is neither a list of values nor a dict of named alternatives"
  )


def plan(declared: Sweep, default_name: str) -> Plan:
  """The points of a declared sweep (its gin references already resolved).

  Raises:
    SweepFileError: an empty or malformed axis, a zip of unknown axes or
      unequal lengths, two points with one name, bad resources.
  """
  if declared.axes is gin.REQUIRED or not isinstance(declared.axes, Mapping):
    raise SweepFileError(
      "the sweep file binds no sweep.Sweep.axes (a dict of axis name -> "
      "values or named alternatives)"
    )
  axes = {name: _axis(name, values) for name, values in declared.axes.items()}
  zipped: list[tuple[str, ...]] = []
  for group in declared.zip:
    group = (group,) if isinstance(group, str) else tuple(group)
    for name in group:
      if name not in axes:
        raise SweepFileError(f"zip names {name!r}, which is not an axis ({', '.join(axes)})")
      if any(name in g for g in zipped):
        raise SweepFileError(f"axis {name} is in two zip groups")
    lengths = {name: len(axes[name]) for name in group}
    if len(set(lengths.values())) > 1:
      raise SweepFileError(
        "zip of unequal lengths: " + ", ".join(f"{n} has {k}" for n, k in lengths.items())
      )
    zipped.append(group)
  # A product over groups (a zip group, or one axis), each at the place of its first axis.
  groups, placed = [], set()
  for name in axes:
    if name in placed:
      continue
    group = next((g for g in zipped if name in g), (name,))
    placed.update(group)
    groups.append(list(zip(*(axes[n] for n in group))))
  order = list(axes)
  points = []
  for index, combination in enumerate(itertools.product(*groups)):
    choices = sorted((c for part in combination for c in part), key=lambda c: order.index(c.axis))
    points.append(Point(index, tuple(choices)))
  names: dict[str, Point] = {}
  for point in points:
    if point.name in names:
      raise SweepFileError(
        f"two points are named {point.name}; give the axis values labels that differ"
      )
    names[point.name] = point
  if declared.metric_mode not in ("max", "min"):
    raise SweepFileError(f"metric_mode={declared.metric_mode!r}; use 'max' or 'min'")
  resources = dict(declared.resources or {})
  for key, amount in resources.items():
    if not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount <= 0:
      raise SweepFileError(f"resources[{key!r}]={amount!r}; give a positive number")
  if int(resources.get("CPU", 1)) != resources.get("CPU", 1):
    raise SweepFileError(f"resources['CPU']={resources['CPU']!r}; give a whole number of cores")
  if tuple(declared.seed_axes) != DEFAULT_SEED_AXES:  # named on purpose: must be axes
    for name in declared.seed_axes:
      if name not in axes:
        raise SweepFileError(f"seed_axes names {name!r}, which is not an axis ({', '.join(axes)})")
  seed_axes = tuple(a for a in declared.seed_axes if a in axes)
  for name in declared.average_axes:
    if name not in axes:
      raise SweepFileError(f"average_axes names {name!r}, which is not an axis ({', '.join(axes)})")
  bindings = _bindings(dict(declared.bindings or {}), "sweep.Sweep.bindings")
  where = []
  for entry in declared.where:
    if (
      not isinstance(entry, (list, tuple))
      or len(entry) != 2
      or not isinstance(entry[0], Mapping)
      or not isinstance(entry[1], Mapping)
      or not entry[0]
    ):
      raise SweepFileError(
        f"where: {entry!r} is not a pair ({{axis: label, ...}}, {{binding key: value, ...}})"
      )
    conditions = tuple((str(a), _label(v)) for a, v in entry[0].items())
    for axis_name, label in conditions:
      if axis_name not in axes or label not in {c.label for c in axes[axis_name]}:
        raise SweepFileError(
          f"where: {axis_name}={label} is not an axis value of this "
          "sweep; conditions name axes and their labels"
        )
    where.append((conditions, _bindings(entry[1], f"where {dict(conditions)}")))
  return Plan(
    name=declared.name or default_name,
    gin_files=_gin_files(tuple(declared.gin_files), "sweep.Sweep.gin_files"),
    gin_files_after_axes=_gin_files(
      tuple(declared.gin_files_after_axes), "sweep.Sweep.gin_files_after_axes"
    ),
    bindings=bindings,
    axes=tuple(axes),
    points=tuple(points),
    metric=declared.metric,
    metric_mode=declared.metric_mode,
    resources=resources,
    seed_axes=seed_axes,
    average_axes=tuple(declared.average_axes),
    where=tuple(where),
  )


def select(plan: Plan, only: Sequence[str]) -> Plan:
  """The plan's points whose axes have the labels `only` names (`--only`): each entry is
  `AXIS=LABEL[,LABEL...]`; points keep their names, indices and commands.

  Raises:
    SweepFileError: an entry that is malformed, or names an axis or label the sweep lacks.
  """
  wanted: dict[str, set[str]] = {}
  for entry in only:
    axis, sep, labels = entry.partition("=")
    if not sep or not axis or not labels:
      raise SweepFileError(
        f"--only={entry!r}: write AXIS=LABEL[,LABEL...], e.g. --only=RANDOM_SEED=0"
      )
    if axis not in plan.axes:
      raise SweepFileError(
        f"--only={entry!r}: {axis!r} is not an axis of the sweep ({', '.join(plan.axes)})"
      )
    known = list(dict.fromkeys(c.label for p in plan.points for c in p.choices if c.axis == axis))
    for label in labels.split(","):
      if label not in known:
        raise SweepFileError(
          f"--only={entry!r}: {axis} has no value {label!r} ({', '.join(known)})"
        )
    wanted.setdefault(axis, set()).update(labels.split(","))
  points = tuple(
    p for p in plan.points if all(c.label in wanted[c.axis] for c in p.choices if c.axis in wanted)
  )
  if not points:
    raise SweepFileError(f"--only {' '.join(only)}: no point of the sweep has all these labels")
  return dataclasses.replace(plan, points=points)
