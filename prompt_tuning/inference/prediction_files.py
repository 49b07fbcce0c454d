"""What `python -m prompt_tuning.infer` runs: predictions for a file of inputs or a task's split.

`infer` reads a user's own file (`--input_file`, no task needed) or a seqio
task's split, decodes it with the Predictor, and writes one JSON line per
input. The prompts come as PROMPT_FILES (see `evaluation`): None, the model's
own prompt; a list, an ensemble decoded in the same batches and combined by
majority vote; a dict `{task: file}`, a prompt bank where each input line
names its `"task"`.
"""

import json
import os
from typing import Any, Mapping, Optional, Sequence

from absl import logging

from prompt_tuning.checkpoints import storage
from prompt_tuning.data import registry
from prompt_tuning.inference import evaluation
from prompt_tuning.inference import predictor as predictor_lib


def read_inputs(path: str) -> list[dict[str, Any]]:
  """`.jsonl`: one object per line with an "inputs" string (and optionally "task");
  any other file: one input per line. Blank lines are skipped."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"--input_file {path} does not exist")
  rows = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      if not path.endswith(".jsonl"):
        rows.append({"inputs": line.rstrip("\n")})
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(
          f"{path} line {number} is not JSON ({e.msg}); write one object per "
          'line, e.g. {"inputs": "..."}'
        ) from None
      if not isinstance(row, dict) or not isinstance(row.get("inputs"), str):
        raise ValueError(
          f'{path} line {number} has no "inputs" string; write one object per '
          'line, e.g. {"inputs": "...", "task": "..."}'
        )
      rows.append(row)
  if not rows:
    raise ValueError(
      f"--input_file {path} holds no inputs (blank lines are skipped); write one input per line"
    )
  return rows


def _write_jsonl(path: str, rows: Sequence[Mapping[str, Any]]) -> None:
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  storage.write_file(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _predict_rows(
  pred: predictor_lib.Predictor,
  kind: str,
  texts: Sequence[str],
  tasks: Optional[Sequence[Optional[str]]],
) -> list[dict[str, Any]]:
  if kind == "ensemble":
    rows = []
    for text, result in zip(texts, pred.predict_ensemble(texts)):
      members = {
        name: {"prediction": p.prediction, "score": p.score} for name, p in result.members.items()
      }
      rows.append(
        {"inputs": text, "prediction": result.prediction, "votes": result.votes, "members": members}
      )
    return rows
  predictions = pred.predict(texts, tasks if kind == "tasks" else None)
  rows = []
  for p in predictions:
    row = {"inputs": p.inputs, "prediction": p.prediction, "score": p.score}
    if kind == "tasks":
      row["task"] = p.task
    rows.append(row)
  return rows


def _split_examples(
  name: str, split: str, feature_lengths: Mapping[str, int], use_cached: bool
) -> list[tuple[str, dict[str, Any]]]:
  """(task name, preprocessed example) of every example of the split, in order."""
  out = []
  for task in registry.tasks_of(name):
    ds = task.get_dataset(
      dict(feature_lengths), split=split, shuffle=False, num_epochs=1, use_cached=use_cached
    )
    out.extend((task.name, ex) for ex in ds.as_numpy_iterator())
  return out


def infer(
  *,
  predictor: predictor_lib.PredictorConfig,
  data: Optional[evaluation.SplitConfig] = None,
  output_dir: Optional[str] = None,
  input_file: Optional[str] = None,
  output_file: Optional[str] = None,
) -> str:
  """Writes predictions as JSON lines; returns the output path.

  Args:
    predictor: the frozen model, its prompts (see the module docstring) and decoding;
      inputs are truncated to its 'inputs' length (with a warning).
    data: the task split predicted when there is no input file (its
      `mixture_or_task_name` None: none).
    output_dir: where a task's predictions go (`<task>-<split>.jsonl`) when
      there is no output file.
    input_file: `.jsonl` with "inputs" (and "task" for a task bank) per line,
      or a text file with one input per line.
    output_file: one JSON object per input, in order: "inputs", "prediction",
      "score" (the prediction's log-likelihood); "task" for a task bank;
      "votes" and "members" for an ensemble.
  """
  kind = evaluation.bank_kind(predictor.prompt_files)
  data = data or evaluation.SplitConfig(None)
  if input_file is None and data.mixture_or_task_name is None:
    raise ValueError(
      "nothing to predict: pass --input_file=in.jsonl, or set "
      "MIXTURE_OR_TASK_NAME to predict a task's split"
    )
  registry.import_task_module(data.mixture_or_task_module)
  rows = read_inputs(input_file) if input_file is not None else None  # before the model loads
  pred = predictor_lib.build(predictor)
  if rows is not None:
    texts = [r["inputs"] for r in rows]
    tasks = [r.get("task") for r in rows] if kind == "tasks" else None
    output_file = output_file or os.path.splitext(input_file)[0] + ".predictions.jsonl"
  else:
    examples = _split_examples(
      data.mixture_or_task_name, data.split, predictor.task_feature_lengths, data.use_cached
    )
    texts = [_text(ex, predictor.vocabulary) for _, ex in examples]
    tasks = [task for task, _ in examples] if kind == "tasks" else None
    if output_file is None:
      if output_dir is None:
        raise ValueError("set INFER_OUTPUT_DIR or pass --output_file")
      output_file = os.path.join(output_dir, f"{data.mixture_or_task_name}-{data.split}.jsonl")
  results = _predict_rows(pred, kind, texts, tasks)
  _write_jsonl(output_file, results)
  logging.info("wrote %d predictions to %s", len(results), output_file)
  return output_file


def _text(example: Mapping[str, Any], vocabulary: Any) -> str:
  if "inputs_pretokenized" in example:
    value = example["inputs_pretokenized"]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
  return vocabulary.decode(predictor_lib.cut_at_eos(example["inputs"]))
