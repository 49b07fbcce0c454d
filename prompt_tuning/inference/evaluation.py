"""What `python -m prompt_tuning.eval` runs, and the trainer's decoding-based evaluation.

`evaluate` runs seqio's evaluator (the task's postprocessors and metrics) on a
split and writes metrics and predictions; `infer_eval` gives the trainer the
same evaluation as a function of its variables (t5x's infer_eval). The prompts
come as PROMPT_FILES:

* None: the model's own prompt (PROMPT_INIT; `configs/prompts/from_file.gin`
  reads it from PROMPT_FILE);
* a list: an ensemble, every member decoded in the same batch and combined by
  majority vote (or by mean log-likelihood in rank mode);
* a dict `{task: file}`: a prompt bank; each example uses its task's prompt
  (eval gives every task of a mixture its own).
"""

import collections
import dataclasses
import json
import os
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import logging
import numpy as np
import seqio

from prompt_tuning.checkpoints import storage
from prompt_tuning.data import multitask
from prompt_tuning.data import registry
from prompt_tuning.inference import decoding
from prompt_tuning.inference import predictor as predictor_lib
from prompt_tuning.models import t5


def bank_kind(prompt_files: Any) -> str:
  """'single', 'tasks' (a dict, a PEFT MPT adapter or a multi-task prompt's run: one prompt
  per task) or 'ensemble'."""
  if predictor_lib.is_task_bank_directory(prompt_files):
    return "tasks"
  if prompt_files is None or isinstance(prompt_files, (str, os.PathLike)):
    return "single"
  if isinstance(prompt_files, Mapping):
    return "tasks"
  return "ensemble" if len(prompt_files) > 1 else "single"


ENSEMBLE_VIEW = "ensemble"


MODES = ("predict", "rank")


def _vote_tokens(tokens: np.ndarray, log_likelihood: np.ndarray) -> list[list[int]]:
  """Majority vote over members' `[n, members, length]` outputs (ties: mean log-likelihood)."""
  voted = []
  for row, scores in zip(tokens, log_likelihood):
    best, _ = predictor_lib.majority_vote(
      [tuple(predictor_lib.cut_at_eos(ids)) for ids in row], scores
    )
    voted.append(list(best))
  return voted


class TaskSplitEvaluation:
  """seqio's evaluator for one task, once per view (the model, or each ensemble member and the vote).

  The model runs once per evaluation: the first view's `predict_fn` computes
  every view's outputs (all members in the same batches); the others read them.
  """

  def __init__(
    self,
    task_name: str,
    *,
    split: str,
    task_feature_lengths: Mapping[str, int],
    views: Sequence[str],
    output_dir: Optional[str],
    use_cached: bool = False,
    num_examples: Optional[int] = None,
  ):
    loggers = (seqio.JSONLogger, seqio.TensorBoardLogger) if output_dir else ()
    self.task_name, self.views = task_name, list(views)
    for view in self.views if output_dir else ():
      os.makedirs(os.path.normpath(os.path.join(output_dir, view)), exist_ok=True)
    self._evaluators = {
      view: seqio.Evaluator(
        task_name,
        seqio.EncDecFeatureConverter(pack=False),
        eval_split=split,
        use_cached=use_cached,
        sequence_length=dict(task_feature_lengths),
        num_examples=num_examples,
        logger_cls=loggers,
        log_dir=os.path.normpath(os.path.join(output_dir, view)) if output_dir else None,
        async_compute_metrics=False,
      )
      for view in self.views
    }

  def evaluate(
    self,
    pred: predictor_lib.Predictor,
    members: Optional[Sequence[str]],
    *,
    step: int = 0,
    mode: str = "predict",
    class_labels: Optional[Sequence[str]] = None,
  ) -> dict[str, dict[str, float]]:
    """Runs the model and seqio's metrics; returns `{view: {metric: value}}`.

    Args:
      pred: the predictor (its bank holds the prompts).
      members: the bank names this task uses: one (its prompt) or an ensemble
        (views are then "ensemble" and each member's name); None: the bank's
        only prompt, or the plain model.
      step: the step recorded with the metrics.
      mode: 'predict' decodes; 'rank' scores each of `class_labels` and
        predicts the most likely (the ensemble averages log-likelihoods).
      class_labels: the label set of rank mode.
    """
    if mode not in MODES:
      raise ValueError(f"EVAL_MODE={mode!r}; choose one of {MODES}")
    if mode == "rank" and not class_labels:
      raise ValueError(
        "EVAL_MODE='rank' scores a fixed label set: set CLASS_LABELS, e.g. ['positive', 'negative']"
      )
    cache: dict[str, Any] = {}

    def features(ds):  # read once, whether predictions, scores or both need it
      if "features" not in cache:
        rows = list(ds.as_numpy_iterator())
        cache["features"] = (
          [i for i, _ in rows],
          {k: np.stack([ex[k] for _, ex in rows]) for k in rows[0][1]},
        )
      return cache["features"]

    names = list(members) if members else [None]
    ensemble = len(self.views) > 1
    cut = predictor_lib.cut_at_eos

    def index_of(name, n):
      return None if name is None else pred.prompt_index([name] * n, n)

    def compute_predictions(ds):
      indices, feats = features(ds)
      x = feats["encoder_input_tokens"]
      if mode == "rank":
        labels = pred.encode(class_labels, "targets")
        per_member = [pred.rank_scores_tokens(x, labels, index_of(n, len(x))) for n in names]
        best = lambda s: [cut(labels[k]) for k in np.argmax(s, axis=1)]
        outputs = {name: best(s) for name, s in zip(names, per_member)}
        outputs[ENSEMBLE_VIEW] = best(np.mean(per_member, axis=0))
      elif ensemble:
        out = pred.predict_ensemble_tokens(x, names)
        outputs = {name: [cut(t) for t in out.tokens[:, j, 0]] for j, name in enumerate(names)}
        outputs[ENSEMBLE_VIEW] = _vote_tokens(out.tokens[:, :, 0], out.log_likelihood[:, :, 0])
      else:
        out = pred.predict_tokens(x, index_of(names[0], len(x)))
        outputs = {names[0]: [cut(t) for t in out.tokens[:, 0]]}
      if not ensemble:
        outputs = {".": outputs[names[0]]}
      # seqio stacks the outputs into one array: same length each, EOS then padding.
      width = pred.task_feature_lengths["targets"]
      fixed = lambda ids: np.asarray(
        (list(ids) + [decoding.EOS_ID] + [0] * width)[:width], np.int32
      )
      cache["predictions"] = {
        view: [(i, fixed(ids)) for i, ids in zip(indices, outs)] for view, outs in outputs.items()
      }
      cache["shares"] = {}
      for view, outs in outputs.items():
        cache["shares"][view] = prediction_shares(outs, pred.vocabulary, _label_set(self.task_name))
        _warn_if_collapsed(self.task_name, view, outs, pred.vocabulary)

    def compute_scores(ds):
      indices, feats = features(ds)
      n = len(indices)
      per_member = [
        pred.score_tokens(
          feats["encoder_input_tokens"], feats["decoder_target_tokens"], index_of(name, n)
        )
        for name in names
      ]
      scores = dict(zip(names, per_member))
      scores[ENSEMBLE_VIEW] = np.mean(per_member, axis=0)
      if not ensemble:
        scores = {".": per_member[0]}
      cache["scores"] = {view: list(zip(indices, s.tolist())) for view, s in scores.items()}

    results = {}
    for view in self.views:

      def predict_fn(ds, shapes=None, view=view):
        del shapes
        if "predictions" not in cache:
          compute_predictions(ds)
        return cache["predictions"][view]

      def score_fn(ds, shapes=None, view=view):
        del shapes
        if "scores" not in cache:
          compute_scores(ds)
        return cache["scores"][view]

      future, _ = self._evaluators[view].evaluate(
        compute_metrics=True, step=step, predict_fn=predict_fn, score_fn=score_fn
      )
      metrics = future.result()[self.task_name]
      results[view] = {k: _scalar(v) for k, v in metrics.items()}
      results[view].update(cache.get("shares", {}).get(view, {}))
    return results


PREDICTIONS = "predictions"  # the prefix of `prediction_shares`' metrics


def prediction_shares(
  outputs: Sequence[Sequence[int]], vocabulary: Any, labels: Optional[set[str]]
) -> dict[str, float]:
  """What a split's predictions show beside the task's metrics.

  `predictions/most_common_share`: the share of the examples given the most
  common prediction (1.0: a prompt collapsed onto one answer; compare with the
  majority class's share). `predictions/outside_labels_share`, for a task with
  a label set: the share of predictions that are none of its labels (text
  fragments, not answers). Named under `predictions/` so that they are never
  taken for a task metric (the sweep report's score averages those).
  """
  if not outputs:
    return {}
  counts = collections.Counter(tuple(ids) for ids in outputs)
  shares = {f"{PREDICTIONS}/most_common_share": counts.most_common(1)[0][1] / len(outputs)}
  if labels:
    outside = sum(n for ids, n in counts.items() if vocabulary.decode(list(ids)) not in labels)
    shares[f"{PREDICTIONS}/outside_labels_share"] = outside / len(outputs)
  return shares


def _label_set(task: str) -> Optional[set[str]]:
  """A task's class labels as its targets spell them, if this project registers it with some."""
  # Imported here: it registers every bundled and paper task (and imports TFDS).
  from prompt_tuning.data import tasks  # pylint: disable=g-import-not-at-top

  try:
    return set(tasks.class_labels(task)) or None
  except ValueError:  # not a task with known labels
    return None


COLLAPSED_SHARE = 0.95  # one prediction for more than this share of a split's examples


def _warn_if_collapsed(
  task: str, view: str, outputs: Sequence[Sequence[int]], vocabulary: Any
) -> None:
  """Warns when nearly every prediction is the same (a prompt stuck on one class)."""
  if len(outputs) < 20:
    return
  counts = collections.Counter(tuple(ids) for ids in outputs)
  ids, count = counts.most_common(1)[0]
  if count > COLLAPSED_SHARE * len(outputs):
    who = "" if view == "." else f" (prompt {view})"
    logging.warning(
      "%s%s: %.1f%% of the %d predictions are %r; the prompt may have collapsed "
      "onto one class (compare with the majority-class baseline)",
      task,
      who,
      100.0 * count / len(outputs),
      len(outputs),
      vocabulary.decode(list(ids)),
    )


def _scalar(value: Any) -> float:
  """A metric as a float (seqio gives clu `Scalar`s or plain numbers)."""
  return float(np.asarray(getattr(value, "value", value)))


def _views(kind: str, prompt_files: Any) -> list[str]:
  if kind == "ensemble":
    return [ENSEMBLE_VIEW] + list(predictor_lib.prompt_bank(prompt_files))
  return ["."]


def format_table(results: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
  """`{task: {view: {metric: value}}}` as an aligned text table."""
  lines = []
  rows = [
    (task, view, metric, value)
    for task, views in results.items()
    for view, metrics in views.items()
    for metric, value in sorted(metrics.items())
  ]
  widths = [
    max([len(str(r[i])) for r in rows] + [len(h)])
    for i, h in enumerate(("task", "prompt", "metric"))
  ]
  header = ("task", "prompt", "metric", "value")
  lines.append("  ".join(h.ljust(w) for h, w in zip(header, widths + [0])).rstrip())
  for task, view, metric, value in rows:
    cells = (task, "model" if view == "." else view, metric)
    lines.append("  ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + f"  {value:.4f}")
  return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class SplitConfig:
  """Which examples: a seqio task's (or mixture's) split.

  Attributes:
    mixture_or_task_name: MIXTURE_OR_TASK_NAME (None for `infer` on an input file).
    split: SPLIT.
    mixture_or_task_module: MIXTURE_OR_TASK_MODULE, imported to register it.
    use_cached: USE_CACHED_TASKS: read seqio's cache.
    num_examples: NUM_EXAMPLES: the first N (None: all).
  """

  mixture_or_task_name: Optional[str]
  split: str = "validation"
  mixture_or_task_module: Optional[str] = None
  use_cached: bool = False
  num_examples: Optional[int] = None


def evaluate(
  *,
  predictor: predictor_lib.PredictorConfig,
  data: SplitConfig,
  eval_output_dir: str,
  mode: str = "predict",
  class_labels: Optional[Sequence[str]] = None,
  step: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
  """Evaluates on every task of the mixture's split with seqio's metrics.

  Writes, under EVAL_OUTPUT_DIR (per view: the model, or `ensemble/` and one
  directory per member): seqio's `<task>-metrics.jsonl` and
  `<task>-<step>.jsonl` predictions, TensorBoard summaries, and `metrics.json`
  with everything; returns `{task: {view: {metric: value}}}`.

  Args:
    predictor: the frozen model, its prompts (PROMPT_FILES) and decoding.
    data: the split evaluated.
    eval_output_dir: EVAL_OUTPUT_DIR.
    mode, class_labels: EVAL_MODE ('predict' decodes; 'rank' scores each of
      CLASS_LABELS) and CLASS_LABELS.
    step: EVAL_STEP, recorded with the metrics.
  """
  kind = bank_kind(predictor.prompt_files)
  registry.import_task_module(data.mixture_or_task_module)
  registry.check_vocabulary(
    data.mixture_or_task_name, predictor.vocabulary, predictor.model.config.vocab_size
  )
  task_names = [t.name for t in registry.tasks_of(data.mixture_or_task_name)]
  bank = predictor_lib.prompt_bank(predictor.prompt_files)
  if kind == "tasks":
    missing = [t for t in task_names if t not in bank]
    if missing:
      tagged = [multitask.task_of(t) for t in missing if multitask.task_of(t) != t]
      hint = (
        f"; a multi-task mixture's inputs lead with their sentinels: evaluate a multi-task "
        f"run's bank on the plain tasks ({', '.join(tagged)}, or a mixture of them)"
        if tagged
        else ""
      )
      raise ValueError(f"PROMPT_FILES has no prompt for {missing}; it names {sorted(bank)}{hint}")
  pred = predictor_lib.build(predictor)
  results = {}
  for task in task_names:
    members = [task] if kind == "tasks" else (list(bank) or None)
    evaluator = TaskSplitEvaluation(
      task,
      split=data.split,
      task_feature_lengths=predictor.task_feature_lengths,
      views=_views(kind, predictor.prompt_files),
      output_dir=eval_output_dir,
      use_cached=data.use_cached,
      num_examples=data.num_examples,
    )
    results[task] = evaluator.evaluate(
      pred, members, step=step, mode=mode, class_labels=class_labels
    )
  os.makedirs(eval_output_dir, exist_ok=True)
  _write_json(
    os.path.join(eval_output_dir, "metrics.json"),
    {"step": step, "split": data.split, "results": results},
  )
  print(format_table(results))
  return results


def _write_json(path: str, value: Any) -> None:
  storage.write_file(path, json.dumps(value, indent=2, sort_keys=True))


def _test_splits(test_split: Optional[str | Sequence[str]]) -> list[str]:
  """TEST_SPLIT as a list: None, one split's name, or several names."""
  if test_split is None:
    return []
  names = [test_split] if isinstance(test_split, str) else list(test_split)
  if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) < len(names):
    raise ValueError(
      f"TEST_SPLIT={test_split!r}; give a split's name (e.g. 'test'), a list of "
      "different names (e.g. ['test', 'ood']) or None"
    )
  return names


def _tasks_with_metrics(name: str) -> list[str]:
  return [t.name for t in registry.tasks_of(name) if t.metric_objs]


class DecodedEvaluation:
  """The trainer's decoding-based evaluation (t5x's infer_eval): seqio metrics on a split.

  Called as `fn(step, variables)` with the merged variables of the run; the
  model's prompt (if any) is the bank's one prompt (a multi-task prompt's: each task's
  prompt, for that task's evaluation). Predictions and metrics go
  under `MODEL_DIR/inference_eval`; the returned metrics are named
  `<task>/<metric>`. With `test_split` (a split's name or a list of them), each
  is decoded too at every evaluation (its metrics `<task>/<test_split>/<metric>`,
  its predictions under `inference_eval/<test_split>`): the numbers to report at
  the step that early stopping on the validation split picks, in domain and out
  of domain. `TaskSplitEvaluation` adds what the predictions themselves show
  (`predictions/...`, see `prediction_shares`).
  """

  def __init__(
    self,
    model: t5.Transformer,
    vocabulary: Any,
    data: SplitConfig,
    task_feature_lengths: Mapping[str, int],
    *,
    output_dir: Optional[str],
    batch_size: int = 32,
    method: decoding.Method = decoding.Greedy(),
    partitioner: Any = None,
    test_split: Optional[str | Sequence[str]] = None,
  ):
    self._model, self._vocabulary = model, vocabulary
    self._lengths, self._batch_size, self._method = task_feature_lengths, batch_size, method
    self._part = partitioner
    tasks = _tasks_with_metrics(data.mixture_or_task_name)
    test_splits = _test_splits(test_split)
    if test_splits and not tasks:
      raise ValueError(
        f"TEST_SPLIT={test_split!r}: no task of {data.mixture_or_task_name} has "
        "metrics to compute on it; set TEST_SPLIT to None"
      )
    for name in test_splits:
      for task in tasks:
        splits = seqio.get_mixture_or_task(task).splits
        if name not in splits:
          raise ValueError(
            f"TEST_SPLIT={test_split!r}: task {task} has no split {name!r} (it "
            f"has {', '.join(splits)}); set TEST_SPLIT to splits it has, or None"
          )
    # (name prefix, evaluator): the split's metrics as `<task>/<metric>`, a test
    # split's as `<task>/<test_split>/<metric>` (predictions in a subdirectory).
    self._evaluators = []
    for name, is_test in [(data.split, False)] + [(name, True) for name in test_splits]:
      where = os.path.join(output_dir, name) if output_dir and is_test else output_dir
      for task in tasks:
        self._evaluators.append(
          (
            f"{task}/{name}" if is_test else task,
            TaskSplitEvaluation(
              task,
              split=name,
              task_feature_lengths=task_feature_lengths,
              views=["."],
              output_dir=where,
              use_cached=data.use_cached,
              num_examples=data.num_examples,
            ),
          )
        )
    self._predictor: Optional[predictor_lib.Predictor] = None

  def __bool__(self) -> bool:
    return bool(self._evaluators)

  def __call__(self, step: int, variables: Mapping[str, Any]) -> dict[str, float]:
    prompts = predictor_lib.own_prompt(self._model, variables)
    if self._predictor is None:
      self._predictor = predictor_lib.Predictor(
        self._model,
        variables["params"],
        self._vocabulary,
        task_feature_lengths=self._lengths,
        prompts=prompts,
        batch_size=self._batch_size,
        method=self._method,
        partitioner=self._part,
      )
    else:
      self._predictor.set_params(variables["params"])
      self._predictor.set_prompts(prompts)
    metrics = {}
    for prefix, evaluator in self._evaluators:
      # A multi-task prompt's bank has a prompt per task: each task's evaluation uses its own.
      task = multitask.task_of(evaluator.task_name)
      members = [task] if task in prompts and len(prompts) > 1 else None
      for name, value in evaluator.evaluate(self._predictor, members, step=step)["."].items():
        metrics[f"{prefix}/{name}"] = value
    return metrics


def infer_eval(
  *,
  model: t5.Transformer,
  data: SplitConfig,
  task_feature_lengths: Mapping[str, int],
  vocabulary: Any = None,
  enabled: bool = True,
  batch_size: int = 32,
  method: decoding.Method = decoding.Greedy(),
  test_split: Optional[str | Sequence[str]] = None,
) -> Optional[Callable[[Any, Optional[str]], Optional["DecodedEvaluation"]]]:
  """The trainer's decoding-based evaluation (INFER_EVAL), handed to `trainer.train`.

  Args:
    model, vocabulary: MODEL and VOCABULARY (None: the task's targets vocabulary).
    data: the split decoded (the run's task's validation split).
    task_feature_lengths: TASK_FEATURE_LENGTHS.
    enabled: INFER_EVAL; False gives None (no decoding during training).
    batch_size, method: decoding (BATCH_SIZE, DECODING).
    test_split: TEST_SPLIT: also decode this split (e.g. 'test'), or each of a
      list of splits (e.g. ['test', 'ood']), at every evaluation; None: only
      `data`'s split.

  Returns:
    What the trainer takes as `infer_eval` (`settings.InferEvalFactory`, the one
    definition of that type): called with its partitioner and output directory (None on
    hosts other than the first), it gives the `DecodedEvaluation`, or None when no task
    of the mixture defines metrics; None when not enabled.
  """
  if not enabled:
    return None

  def make(partitioner: Any, output_dir: Optional[str]) -> Optional[DecodedEvaluation]:
    evaluator = DecodedEvaluation(
      model,
      vocabulary or registry.targets_vocabulary(data.mixture_or_task_name),
      data,
      task_feature_lengths,
      output_dir=output_dir,
      batch_size=batch_size,
      method=method,
      partitioner=partitioner,
      test_split=test_split,
    )
    return evaluator if evaluator else None

  return make
