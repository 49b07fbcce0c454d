"""Load a frozen model and a bank of prompts once; then predict, score and rank-classify.

This is the Python API for notebooks and services, and what `prompt_tuning.eval`,
`prompt_tuning.infer` and the trainer's decoding-based evaluation run.

    from prompt_tuning import gin_config
    predictor = gin_config.predictor(
        ["configs/models/t5_1_1_base_prompt.gin", "configs/runs/prompt_infer.gin"],
        {"INITIAL_CHECKPOINT_PATH": "'/ckpts/t5_base'",
         "PROMPT_FILES": "{'sst2': '/runs/sst2', 'rte': '/runs/rte/prompt.npy'}",
         "TASK_FEATURE_LENGTHS": "{'inputs': 128, 'targets': 8}"})
    predictor.predict(["sentence: a gorgeous film"], tasks=["sst2"])
    predictor.score(["sentence: a gorgeous film"], ["positive"], tasks=["sst2"])
    predictor.predict_ensemble(["sentence: a gorgeous film"], members=["sst2", "sst2_b"])

The prompt bank is a `[num_prompts, P, E]` array on the devices. Every row of a
batch names its prompt (a task, or an ensemble member), so one batch mixes
tasks, and an ensemble of N prompts is N rows per example in the same batch:
one pass over the frozen model.
"""

import collections
import contextlib
import dataclasses
import os
from typing import Any, Mapping, Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from prompt_tuning import partitioning
from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import peft
from prompt_tuning.checkpoints import prompt_files as prompt_files_lib
from prompt_tuning.checkpoints import variables as variables_lib
from prompt_tuning.inference import decoding
from prompt_tuning.models import prompts as prompts_lib
from prompt_tuning.models import t5

DEFAULT_PROMPT = "default"


@dataclasses.dataclass
class Prediction:
  """One decoded output.

  Attributes:
    inputs: the input text (or None when predicting from token ids).
    prediction: the decoded text.
    score: its log-likelihood under the model (with its prompt).
    tokens: the output ids, EOS excluded.
    task: the prompt (task or ensemble member) that produced it.
  """

  inputs: Optional[str]
  prediction: str
  score: float
  tokens: list[int]
  task: str


@dataclasses.dataclass
class EnsemblePrediction:
  """An ensemble's output for one example, and each member's.

  Attributes:
    prediction: the majority vote over the members' texts (ties go to the
      candidate with the higher mean log-likelihood among its voters).
    votes: members voting for `prediction`.
    members: member name -> its own `Prediction`.
  """

  prediction: str
  votes: int
  members: dict[str, Prediction]


def cut_at_eos(ids: Sequence[int], eos_id: int = decoding.EOS_ID) -> list[int]:
  ids = [int(i) for i in ids]
  return ids[: ids.index(eos_id)] if eos_id in ids else ids


def majority_vote(candidates: Sequence[Any], scores: Sequence[float]) -> tuple[Any, int]:
  """The most frequent (hashable) candidate; ties go to the higher mean score, then the first."""
  groups: dict[str, list[float]] = collections.OrderedDict()
  for c, s in zip(candidates, scores):
    groups.setdefault(c, []).append(float(s))
  best = max(groups, key=lambda c: (len(groups[c]), np.mean(groups[c])))
  return best, len(groups[best])


class Predictor:
  """A frozen model, its prompt bank and jitted decoding and scoring.

  Attributes:
    model: the `t5.Transformer`.
    vocabulary: the seqio vocabulary of inputs and outputs.
    task_feature_lengths: `{'inputs': N, 'targets': M}`: inputs are truncated
      to N tokens (EOS kept), outputs decoded up to M.
    batch_size: rows per jitted call (the last batch is padded).
    method: the decoding method (`decoding.Greedy()` etc.).
    prompt_names: names of the prompts in the bank, in bank order.
  """

  def __init__(
    self,
    model: t5.Transformer,
    params: Any,
    vocabulary: Any,
    *,
    task_feature_lengths: Mapping[str, int],
    prompts: Optional[Mapping[str, Any]] = None,
    batch_size: int = 32,
    method: decoding.Method = decoding.Greedy(),
    seed: int = 0,
    partitioner: Any = None,
    eos_id: int = decoding.EOS_ID,
  ):
    """Builds the predictor.

    Args:
      model: the model.
      params: its frozen `params` collection (unboxed, on the devices).
      vocabulary: the seqio vocabulary.
      task_feature_lengths: inputs and targets lengths.
      prompts: name -> the model's method's values (array or PROMPT_FILE path):
        `[P, E]` prompts, `[layers, P, E]` per-layer prompts or `[layers, 2, P,
        heads, head_dim]` prefixes (`t5.method_shape`), all of one shape. None or
        empty: the plain model (no prompt).
      batch_size: rows per call.
      method: decoding method.
      seed: seeds sampling.
      partitioner: places each batch along its data axis (optional).
      eos_id: the id that ends a decoded sequence (benchmarks pass one that
        never occurs, to decode a fixed number of tokens).
    """
    self.model, self.vocabulary = model, vocabulary
    self.task_feature_lengths = dict(task_feature_lengths)
    self.batch_size, self.method = int(batch_size), method
    self._params, self._part, self._eos_id = params, partitioner, eos_id
    self._rng = jax.random.key(seed)
    self._calls = 0
    self.set_prompts(prompts or {})
    self._decode = jax.jit(self._decode_rows)
    self._score = jax.jit(self._score_rows)

  # The prompt bank.

  def set_prompts(self, prompts: Mapping[str, Any]) -> None:
    """Replaces the bank: name -> array or PROMPT_FILE path (a str or a path object), of the
    model's method."""
    method, want = t5.method_shape(self.model)
    arrays = {
      name: _load_values(self.model, os.fspath(p))
      if isinstance(p, (str, os.PathLike))
      else np.asarray(jax.device_get(p), np.float32)
      for name, p in prompts.items()
    }
    shapes = {name: a.shape for name, a in arrays.items()}
    expected = "[" + ", ".join("P" if n is None else str(n) for n in want) + "]"
    for name, shape in shapes.items():
      if len(shape) != len(want):
        raise ValueError(
          f"prompt {name!r} is a {_METHODS_BY_RANK.get(len(shape), 'no method')}, "
          f"{list(shape)}; this model's method is {t5.with_article(method)}, {expected}, and "
          "one bank holds one method"
        )
      if any(n is not None and n != m for n, m in zip(want, shape)):
        raise ValueError(f"prompt {name!r} has shape {list(shape)}; this model needs {expected}")
    if len(set(shapes.values())) > 1:
      raise ValueError(
        f"the prompts in one bank must share one shape, got {shapes}; pad or "
        "retrain them to one length"
      )
    if not arrays and method != "prompt":
      raise ValueError(
        f"this model's method is {t5.with_article(method)}: give its values "
        "(own_prompt(model, variables) "
        "gives the model's own)"
      )
    self.prompt_names = list(arrays)
    self._bank = jnp.asarray(np.stack([arrays[n] for n in self.prompt_names])) if arrays else None

  def set_params(self, params: Any) -> None:
    """Replaces the frozen model's parameters (same shapes: nothing recompiles)."""
    self._params = params

  def prompt_index(self, tasks: Optional[Sequence[Optional[str]]], n: int) -> np.ndarray:
    """Bank rows of the prompts that `tasks` names (None: the bank's only prompt)."""
    if self._bank is None:
      if tasks is not None and any(t is not None for t in tasks):
        raise ValueError(
          "examples name prompts, but this predictor has no prompt bank; pass "
          "prompts (PROMPT_FILES)"
        )
      return np.zeros(n, np.int32)
    if tasks is None:
      if len(self.prompt_names) > 1:
        raise ValueError(
          f"the bank holds {len(self.prompt_names)} prompts "
          f"({self.prompt_names}); say which one each example uses (tasks=...)"
        )
      return np.zeros(n, np.int32)
    index = {name: i for i, name in enumerate(self.prompt_names)}
    unknown = sorted({t for t in tasks if t not in index and t is not None})
    if unknown:
      raise ValueError(f"no prompt named {unknown} in the bank; it holds {self.prompt_names}")
    default = 0 if len(self.prompt_names) == 1 else None
    if default is None and any(t is None for t in tasks):
      raise ValueError(
        f"an example names no prompt, and the bank holds several "
        f"({self.prompt_names}); give each example its task"
      )
    return np.asarray([default if t is None else index[t] for t in tasks], np.int32)

  # Jitted row functions.

  def _prompts_for(self, bank, index):
    if bank is not None:
      return bank[index]
    if self.model.prompt is not None:  # a prompt module of length 0: the plain model
      return jnp.zeros((index.shape[0], 0, self.model.config.emb_dim), jnp.float32)
    return None

  def _decode_rows(self, params, bank, tokens, index, rng):
    return decoding.decode(
      self.model,
      {"params": params},
      tokens,
      max_length=self.task_feature_lengths["targets"],
      method=self.method,
      prompts=self._prompts_for(bank, index),
      rng=rng,
      eos_id=self._eos_id,
    )

  def _score_rows(self, params, bank, tokens, targets, index):
    return decoding.sequence_log_likelihood(
      self.model,
      {"params": params},
      tokens,
      targets,
      prompts=self._prompts_for(bank, index),
    )

  def _batches(self, *arrays: np.ndarray):
    """Chunks of `batch_size` rows; the last is padded by repeating its first row."""
    n = len(arrays[0])
    for start in range(0, n, self.batch_size):
      chunk = [a[start : start + self.batch_size] for a in arrays]
      real = len(chunk[0])
      if real < self.batch_size:
        chunk = [
          np.concatenate([c, np.repeat(c[:1], self.batch_size - real, axis=0)]) for c in chunk
        ]
      # Rows split over the data axis; with several hosts every host holds the whole
      # batch (the same on each), which jit takes as replicated.
      if (
        self._part is not None
        and jax.process_count() == 1
        and self.batch_size % self._part.data_size == 0
      ):
        rows = jax.sharding.NamedSharding(self._part.mesh, jax.sharding.PartitionSpec("data"))
        chunk = [jax.device_put(c, rows) for c in chunk]
      yield real, chunk

  def _context(self):
    return self._part.context() if self._part is not None else contextlib.nullcontext()

  # Token-level API (what seqio's evaluator feeds).

  def _over_batches(self, call, *arrays: np.ndarray) -> list[Any]:
    """`call(*chunk)` on every padded chunk; each result cut back to its real rows."""
    outputs = []
    with self._context():
      for real, chunk in self._batches(*arrays):
        out = jax.device_get(call(*chunk))
        outputs.append(jax.tree_util.tree_map(lambda a, real=real: np.asarray(a)[:real], out))
    return outputs

  @staticmethod
  def _rows_index(prompt_index: Optional[np.ndarray], n: int) -> np.ndarray:
    return np.zeros(n, np.int32) if prompt_index is None else np.asarray(prompt_index, np.int32)

  def predict_tokens(
    self, tokens: np.ndarray, prompt_index: Optional[np.ndarray] = None
  ) -> decoding.DecodeOutput:
    """Decodes `[n, length]` input ids; `prompt_index[i]` picks row i's prompt from the bank.

    Returns:
      numpy `DecodeOutput` with n rows.
    """
    tokens = np.asarray(tokens, np.int32)

    def call(x, idx):
      self._calls += 1
      rng = jax.random.fold_in(self._rng, self._calls)
      return self._decode(self._params, self._bank, x, idx, rng)

    outputs = self._over_batches(call, tokens, self._rows_index(prompt_index, len(tokens)))
    if not outputs:
      width = self.task_feature_lengths["targets"]
      return decoding.DecodeOutput(
        np.zeros((0, 1, width), np.int32), np.zeros((0, 1)), np.zeros((0, 1))
      )
    return decoding.DecodeOutput(*(np.concatenate(parts) for parts in zip(*outputs)))

  def score_tokens(
    self, tokens: np.ndarray, targets: np.ndarray, prompt_index: Optional[np.ndarray] = None
  ) -> np.ndarray:
    """`[n]` log-likelihoods of right-padded target ids (EOS included) given input ids."""
    tokens, targets = np.asarray(tokens, np.int32), np.asarray(targets, np.int32)
    call = lambda x, y, idx: self._score(self._params, self._bank, x, y, idx)
    scores = self._over_batches(call, tokens, targets, self._rows_index(prompt_index, len(tokens)))
    return np.concatenate(scores) if scores else np.zeros((0,), np.float32)

  # Text API.

  def encode(self, texts: Sequence[str], feature: str = "inputs") -> np.ndarray:
    """Tokenizes, truncates to the feature's length with EOS kept last, and right-pads."""
    length = self.task_feature_lengths[feature]
    rows = np.zeros((len(texts), length), np.int32)
    truncated = 0
    for i, text in enumerate(texts):
      ids = list(self.vocabulary.encode(text))
      if len(ids) > length - 1:
        truncated += 1
        ids = ids[: length - 1]
      ids.append(decoding.EOS_ID)
      rows[i, : len(ids)] = ids
    if truncated:
      logging.warning(
        "%d of %d %s were longer than %d tokens and were truncated (raise "
        "TASK_FEATURE_LENGTHS['%s'] to keep them whole)",
        truncated,
        len(texts),
        feature,
        length,
        feature,
      )
    return rows

  def predict(
    self, inputs: Sequence[str], tasks: Optional[Sequence[Optional[str]]] = None
  ) -> list[Prediction]:
    """Decodes each input with its task's prompt (`tasks[i]`; optional with one prompt)."""
    inputs = list(inputs)
    index = self.prompt_index(tasks, len(inputs))
    out = self.predict_tokens(self.encode(inputs), index)
    return [
      self._prediction(text, out.tokens[i, 0], out.log_likelihood[i, 0], index[i])
      for i, text in enumerate(inputs)
    ]

  def _prediction(self, text, ids, score, prompt_index) -> Prediction:
    ids = cut_at_eos(ids)
    name = self.prompt_names[prompt_index] if self._bank is not None else DEFAULT_PROMPT
    return Prediction(text, self.vocabulary.decode(ids), float(score), ids, name)

  def score(
    self,
    inputs: Sequence[str],
    targets: Sequence[str],
    tasks: Optional[Sequence[Optional[str]]] = None,
  ) -> np.ndarray:
    """`[n]` log-likelihood of each target text (EOS included) given its input."""
    if len(inputs) != len(targets):
      raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
    index = self.prompt_index(tasks, len(inputs))
    return self.score_tokens(self.encode(inputs), self.encode(targets, "targets"), index)

  def _ensemble_index(self, members: Optional[Sequence[str]]) -> list[int]:
    members = list(members) if members is not None else list(self.prompt_names)
    if not members:
      raise ValueError("an ensemble needs prompts in the bank (PROMPT_FILES)")
    return list(self.prompt_index(members, len(members)))

  def predict_ensemble_tokens(
    self, tokens: np.ndarray, members: Optional[Sequence[str]] = None
  ) -> decoding.DecodeOutput:
    """Decodes every example with every member in one pass: `[n, members, ...]` outputs."""
    member_index = self._ensemble_index(members)
    m = len(member_index)
    rows = np.repeat(np.asarray(tokens, np.int32), m, axis=0)
    index = np.tile(np.asarray(member_index, np.int32), len(tokens))
    out = self.predict_tokens(rows, index)
    return decoding.DecodeOutput(*(a.reshape((len(tokens), m) + a.shape[1:]) for a in out))

  def predict_ensemble(
    self, inputs: Sequence[str], members: Optional[Sequence[str]] = None
  ) -> list[EnsemblePrediction]:
    """Majority vote of the members' predictions (default: every prompt in the bank)."""
    inputs = list(inputs)
    names = list(members) if members is not None else list(self.prompt_names)
    member_index = self._ensemble_index(names)
    out = self.predict_ensemble_tokens(self.encode(inputs), names)
    results = []
    for i, text in enumerate(inputs):
      preds = {
        name: self._prediction(
          text, out.tokens[i, j, 0], out.log_likelihood[i, j, 0], member_index[j]
        )
        for j, name in enumerate(names)
      }
      vote, votes = majority_vote(
        [p.prediction for p in preds.values()], [p.score for p in preds.values()]
      )
      results.append(EnsemblePrediction(vote, votes, preds))
    return results

  def rank_classify(
    self,
    inputs: Sequence[str],
    labels: Sequence[str],
    tasks: Optional[Sequence[Optional[str]]] = None,
    members: Optional[Sequence[str]] = None,
  ) -> tuple[np.ndarray, np.ndarray]:
    """Scores every label for every input and picks the most likely (score mode).

    Args:
      inputs: texts.
      labels: the fixed label set (verbalizers).
      tasks: each input's prompt (not with `members`).
      members: an ensemble: the label log-likelihoods are averaged over them.

    Returns:
      `(best [n] label indices, log-likelihoods [n, labels])`.
    """
    x, y = self.encode(inputs), self.encode(labels, "targets")
    n, k = len(x), len(y)
    if members is not None:
      if tasks is not None:
        raise ValueError("give tasks or ensemble members, not both")
      member_index = self._ensemble_index(members)
    else:
      member_index = None
    index = (
      self.prompt_index(tasks, n)[:, None]
      if member_index is None
      else np.asarray(member_index, np.int32)[None, :].repeat(n, 0)
    )  # [n, m]
    m = index.shape[1]
    rows_x = np.repeat(x, m, axis=0)
    scores = self.rank_scores_tokens(rows_x, y, index.reshape(-1)).reshape(n, m, k).mean(axis=1)
    return np.argmax(scores, axis=1), scores

  def rank_scores_tokens(
    self, tokens: np.ndarray, label_tokens: np.ndarray, prompt_index: Optional[np.ndarray] = None
  ) -> np.ndarray:
    """`[n, labels]` log-likelihood of every label's ids (EOS included) for every input row."""
    n, k = len(tokens), len(label_tokens)
    rows_x = np.repeat(np.asarray(tokens, np.int32), k, axis=0)
    rows_y = np.tile(np.asarray(label_tokens, np.int32), (n, 1))
    rows_i = np.repeat(self._rows_index(prompt_index, n), k)
    return self.score_tokens(rows_x, rows_y, rows_i).reshape(n, k)


def own_prompt(model: t5.Transformer, variables: Mapping[str, Any]) -> dict[str, Any]:
  """The model's own method values (its prompt, per-layer prompt or prefix, a prefix's MLP
  applied) as a one-prompt bank, a multi-task prompt's as a bank of its tasks' prompts
  named by task; empty for the plain model or a prompt of length 0."""
  if not variables.get(layout.PROMPT_COLLECTION):
    return {}
  values = model.apply(
    {layout.PROMPT_COLLECTION: variables[layout.PROMPT_COLLECTION]},
    method=t5.Transformer.method_values,
  )
  if values is None or 0 in values.shape:
    return {}
  if isinstance(model.prompt, prompts_lib.MultiTaskPrompt):  # a prompt per task, by name
    return dict(zip(model.prompt.tasks, values))
  return {DEFAULT_PROMPT: values}


# What an array of each rank holds (4: a decoder prefix in PEFT's table).
_METHODS_BY_RANK = {2: "prompt", 3: "per-layer prompt", 4: "prefix", 5: "prefix"}


_METHOD_CONFIGS = {
  "prompt": "configs/prompts/from_file.gin",
  "per-layer prompt": "configs/prompts/per_layer.gin",
  "decoder prefix": "configs/prompts/prefix.gin",
  "encoder prefix": "configs/prompts/p_tuning_v2.gin",
  "multi-task prompt": "configs/prompts/multitask.gin",
}

MULTITASK_FOR_TRAINING = (
  "configs/prompts/multitask.gin is for training (its inputs lead with a task's sentinel): "
  "evaluate, infer or serve a multi-task run with its MODEL_DIR as PROMPT_FILES on the plain "
  "prompt model (docs/methods.md)"
)


def _load_values(model: t5.Transformer, path: str) -> np.ndarray:
  """The method values at PROMPT_FILE `path`, read as the model's method reads them; a file
  of another method is refused by name."""
  method, want = t5.method_shape(model)
  rank = prompt_files_lib.stored_rank(path)
  is_prefix, wants_prefix = rank in (4, 5), len(want) == 5
  if rank is not None and (is_prefix != wants_prefix or (not is_prefix and rank != len(want))):
    raise ValueError(
      f"{path} holds a {_METHODS_BY_RANK.get(rank, 'no method')}'s values; this model's method is "
      f"{t5.with_article(method)} ({_METHOD_CONFIGS[method]}), and one bank holds one method"
    )
  if model.prefix is not None:  # want: [layers, 2, P, heads, head_dim]
    return prompt_files_lib.load_prefix_file(path, want[0], want[3], model.prefix.placement)
  if isinstance(model.prompt, prompts_lib.PerLayerPrompt):  # want: [layers, P, E]
    return prompt_files_lib.load_prompt_file(path, want[0], model.prompt.mode)
  return prompt_files_lib.load_prompt_file(path)


def refuse_multitask(model: t5.Transformer) -> None:
  """Stops eval, infer and serve given a multi-task model (`MULTITASK_FOR_TRAINING`)."""
  if isinstance(model.prompt, prompts_lib.MultiTaskPrompt):
    raise ValueError(MULTITASK_FOR_TRAINING)


def is_task_bank_directory(prompt_files: Any) -> bool:
  """Whether PROMPT_FILES is one directory holding a prompt per task: a PEFT multitask
  prompt tuning (MPT) adapter or a multi-task prompt's run (`prompt_bank` names them)."""
  if not isinstance(prompt_files, (str, os.PathLike)):
    return False
  path = os.fspath(prompt_files)
  return peft.is_multitask_adapter(path) or prompt_files_lib.is_multitask(path)


def prompt_bank(prompt_files: Any) -> dict[str, Any]:
  """PROMPT_FILES as a bank: a dict stays; a list is named by position ('0', '1', ...); a
  PEFT multitask prompt tuning (MPT) adapter gives each task's prompt, named by task id;
  a multi-task prompt's run each task's, named by task. Path objects become strings."""
  if prompt_files is None:
    return {}
  prompt_files = _as_str(prompt_files)
  if is_task_bank_directory(prompt_files):
    if peft.is_multitask_adapter(prompt_files):
      return {str(t): p for t, p in enumerate(peft.read_multitask_prompts(prompt_files))}
    return _multitask_bank(prompt_files)
  if isinstance(prompt_files, str):
    return {DEFAULT_PROMPT: prompt_files}
  if isinstance(prompt_files, Mapping):
    return {str(k): _as_str(v) for k, v in prompt_files.items()}
  return {str(i): _as_str(p) for i, p in enumerate(prompt_files)}


def _as_str(prompt: Any) -> Any:
  """A path object as its string (what every reader of a bank's values takes); else as is."""
  return os.fspath(prompt) if isinstance(prompt, os.PathLike) else prompt


def _multitask_bank(path: str) -> dict[str, np.ndarray]:
  """A multi-task prompt's run as a bank of its tasks' prompts, named by task (the tasks
  of the mixture it trained on), or by task id when its run does not say."""
  table = prompt_files_lib.load_multitask_prompts(path)
  mixture = prompt_files_lib.recorded_macro(path, "MIXTURE_OR_TASK_NAME")
  if mixture is None:
    return {str(t): p for t, p in enumerate(table)}
  # seqio and TensorFlow only here: the server imports this module without them.
  from prompt_tuning.data import multitask  # pylint: disable=g-import-not-at-top

  module = prompt_files_lib.recorded_macro(path, "MIXTURE_OR_TASK_MODULE")
  names = multitask.task_names(mixture, module)
  if len(names) != len(table):
    raise ValueError(
      f"{path} holds {len(table)} tasks' prompts; its mixture {mixture} has {len(names)} tasks"
    )
  return dict(zip(names, table))


@dataclasses.dataclass(frozen=True)
class PredictorConfig:
  """What builds a Predictor: the frozen model, its prompts and how it decodes.

  What `python -m prompt_tuning.eval` and `python -m prompt_tuning.infer` take (their run
  files bind it from the macros MODEL, VOCABULARY, INITIAL_CHECKPOINT_PATH,
  TASK_FEATURE_LENGTHS, PROMPT_FILES, BATCH_SIZE, DECODING, RANDOM_SEED and
  NUM_PARTITIONS), and `gin_config.predictor` builds.

  Attributes:
    model, vocabulary: MODEL and VOCABULARY.
    initial_checkpoint_path: the frozen model (None: random, from the seed).
    task_feature_lengths: inputs are truncated to 'inputs' tokens; up to 'targets'
      tokens are decoded.
    prompt_files: PROMPT_FILES: None (the model's own prompt), a list (an ensemble) or
      a dict (one prompt per task).
    batch_size, method, seed: decoding (the seed: sampling, and random weights).
    num_partitions: the model axis of the device mesh.
  """

  model: t5.Transformer
  vocabulary: Any
  initial_checkpoint_path: Optional[str]
  task_feature_lengths: Mapping[str, int]
  prompt_files: Any = None
  batch_size: int = 32
  method: decoding.Method = decoding.Greedy()
  seed: int = 0
  num_partitions: int = 1


def build(config: PredictorConfig) -> Predictor:
  """Reads the frozen model (random from the seed when the path is None) and the prompts."""
  refuse_multitask(config.model)
  part = partitioning.Partitioner(config.num_partitions)
  variables, _ = variables_lib.init_variables(
    config.model, part, config.initial_checkpoint_path, config.seed
  )
  prompts = prompt_bank(config.prompt_files) or own_prompt(config.model, variables)
  predictor = Predictor(
    config.model,
    variables["params"],
    config.vocabulary,
    task_feature_lengths=config.task_feature_lengths,
    prompts=prompts,
    batch_size=config.batch_size,
    method=config.method,
    seed=config.seed,
    partitioner=part,
  )
  return predictor
