"""The training loop: prompt tuning (or model tuning) of a T5.1.1 model.

`train` is what `configs/runs/prompt_finetune.gin` binds as RUN and
`python -m prompt_tuning.train` calls. It trains what WHAT_TRAINS selects (the
prompt by default) on a seqio task or mixture over a (data, model) mesh,
checkpointing only what changed; rerunning with the same MODEL_DIR resumes from
its latest checkpoint on the same data stream and dropout keys.
"""

import dataclasses
import json
import os
import shutil
import signal
import threading
import time
from typing import Any, Callable, Mapping, Optional

from absl import logging
from clu import metric_writers
import jax
from jax.experimental import multihost_utils
import numpy as np
import seqio

from prompt_tuning import partitioning
from prompt_tuning.checkpoints import checkpointer
from prompt_tuning.checkpoints import layout
from prompt_tuning.checkpoints import readers
from prompt_tuning.checkpoints import variables as variables_lib
from prompt_tuning.data import autograph
from prompt_tuning.data import registry
from prompt_tuning.models import t5
from prompt_tuning.training import data as data_lib
from prompt_tuning.training import early_stopping
from prompt_tuning.training import optimizers
from prompt_tuning.training import settings
from prompt_tuning.training import train_state
from prompt_tuning.training import trainable


class _TeacherForcedEvaluation:
  """Teacher-forced loss and token accuracy on the task's validation split."""

  def __init__(
    self,
    model,
    part,
    state_shardings,
    frozen,
    name,
    task_feature_lengths,
    batch_size,
    use_cached,
    **loss_options,
  ):
    frozen_shardings = {k: v.sharding for k, v in frozen.items()}
    self._step = train_state.jit_eval_step(
      train_state.make_eval_step(model, **loss_options), part, state_shardings, frozen_shardings
    )
    self._part, self._frozen = part, frozen
    rows = batch_size // jax.process_count()
    self._empty = {  # a batch of padding (zero loss weight)
      "encoder_input_tokens": np.zeros((rows, task_feature_lengths["inputs"]), np.int32),
      **{
        k: np.zeros((rows, task_feature_lengths["targets"]), np.int32)
        for k in ("decoder_input_tokens", "decoder_target_tokens", "decoder_loss_weights")
      },
    }
    self._batches = lambda: data_lib.batches(
      name,
      task_feature_lengths,
      batch_size,
      split="validation",
      shard=seqio.ShardInfo(jax.process_index(), jax.process_count()),
      use_cached=use_cached,
      one_pass=True,
    )

  def __call__(self, trainable_vars: dict[str, Any]) -> dict[str, float]:
    totals: dict[str, float] = {}
    batches = list(self._batches())
    if jax.process_count() > 1:  # every host runs as many steps as the one with the most data
      most = int(np.max(multihost_utils.process_allgather(np.int32(len(batches)))))
      batches += [self._empty] * (most - len(batches))
    with self._part.context():
      for batch in batches:
        sums = jax.device_get(
          self._step(trainable_vars, self._frozen, self._part.global_batch(batch))
        )
        for k, v in sums.items():
          totals[k] = totals.get(k, 0.0) + float(v)
    tokens = max(totals.get("tokens", 0.0), 1e-8)
    return {
      "loss": totals.get("loss", 0.0) / tokens,
      "z_loss": totals.get("z_loss", 0.0) / tokens,
      "accuracy": totals.get("correct", 0.0) / tokens,
      "target_tokens": tokens,
    }


class TrainingInterrupted(KeyboardInterrupt):
  """SIGINT or SIGTERM stopped training after saving the current step.

  A KeyboardInterrupt, so that whoever handles Ctrl-C handles it; `exit_code`
  is the shell's convention for the signal (130 for SIGINT, 143 for SIGTERM).
  """

  def __init__(self, signum: int, step: int, model_dir: str):
    name = signal.Signals(signum).name
    super().__init__(
      f"{name} stopped training at step {step}; its checkpoint is saved in "
      f"{model_dir}: rerun the same command to resume"
    )
    self.exit_code = 128 + signum


class _StopSignals:
  """Turns the first SIGINT/SIGTERM during the training loop into a request to stop.

  Before `arm()` (set-up, compilation) the signals keep their usual effect. After
  it, the first one sets `signal` and the loop saves its current step and stops;
  a second one exits at once (what is being written stays a temporary directory,
  which the next run removes). Cluster schedulers preempt with SIGTERM, so this
  is also the preemption path. Only the main thread can install handlers;
  elsewhere signals keep their usual effect.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.signal: Optional[int] = None
    self._previous: dict[int, Any] = {}

  def __enter__(self) -> "_StopSignals":
    return self

  def arm(self) -> None:
    if threading.current_thread() is not threading.main_thread():
      return
    for signum in self.SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)

  def agreed(self, sync: bool) -> Optional[int]:
    """The signal that stops training at this step, the same on every host.

    One host's signal (a scheduler that preempts one process of a job) stops
    them all at the same step, so that they save it together: with several
    hosts, the steps where the loop syncs with the devices anyway (`sync`, its
    console lines) all-gather the signal numbers; other steps go on.
    """
    if jax.process_count() == 1:
      return self.signal
    if not sync:
      return None
    signals = multihost_utils.process_allgather(np.int32(self.signal or 0))
    return int(np.max(signals)) or None

  def _handle(self, signum, frame) -> None:
    del frame
    if self.signal is not None:  # the second one: now, leaving no autograph files
      autograph.remove_generated_files()
      os._exit(128 + signum)  # pylint: disable=protected-access
    self.signal = signum
    logging.warning(
      "%s: saving the current step, then stopping (again to stop at once)",
      signal.Signals(signum).name,
    )

  def __exit__(self, *exc) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


class _LeaveAsFound:
  """Undoes what a run wrote into MODEL_DIR when it fails before its first checkpoint.

  A misconfigured run (a missing checkpoint, a task without a split, an
  interrupted compile) then leaves MODEL_DIR as it was: removed if the run
  created it, else without the entries the run added and with its config.gin
  as it was. `keep()` is called once a checkpoint is saved.
  """

  def __init__(self, model_dir: str):
    self._dir = os.fspath(model_dir)
    self._existed = os.path.isdir(self._dir)
    self._entries = set(os.listdir(self._dir)) if self._existed else set()
    config = layout.config_file(self._dir)
    self._config = open(config, "rb").read() if os.path.isfile(config) else None
    self._kept = False

  def __enter__(self) -> "_LeaveAsFound":
    return self

  def keep(self) -> None:
    self._kept = True

  def __exit__(self, exc_type, exc, tb) -> None:
    if exc_type is None or self._kept or jax.process_index() > 0:
      return
    if not self._existed:
      shutil.rmtree(self._dir, ignore_errors=True)
      return
    for name in set(os.listdir(self._dir)) - self._entries:
      path = os.path.join(self._dir, name)
      shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
    if self._config is not None:
      with open(layout.config_file(self._dir), "wb") as f:
        f.write(self._config)


class _Summaries:
  """The run's summaries: TensorBoard's (through clu's writer) and MODEL_DIR/metrics.jsonl.

  metrics.jsonl holds the same scalars as JSON lines, which sweeps read: one
  `{"event": "start", "step", "time", "parameters_total", "parameters_model"
  (without the prompt), "parameters_trainable", ...}` line per run segment (a
  resumed run appends one), then `{"step", "time", "train/loss", ...}` for each
  summary. Steps redone after a resume appear again: readers keep a step's last
  line. Each line is appended and closed at once, so a killed run leaves whole
  lines. Only the first host writes it.
  """

  def __init__(self, model_dir: str, first_host: bool):
    self._writer = metric_writers.create_default_writer(
      model_dir, just_logging=not first_host, asynchronous=False
    )
    self._path = layout.metrics_file(model_dir) if first_host else None

  def _append(self, record: Mapping[str, Any]) -> None:
    if self._path is not None:
      with open(self._path, "a") as f:
        f.write(json.dumps(record) + "\n")

  def start(self, step: int, **fields: Any) -> None:
    self._append({"event": "start", "step": step, "time": time.time(), **fields})

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    self._writer.write_scalars(step, scalars)
    self._append({"step": step, "time": time.time(), **{k: float(v) for k, v in scalars.items()}})

  def flush(self) -> None:
    self._writer.flush()


def _check_batch_split(batch_size: int, part: partitioning.Partitioner) -> None:
  data = part.data_size
  if batch_size % data:
    raise ValueError(
      f"BATCH_SIZE={batch_size} does not split over the mesh's data axis of "
      f"{data} devices ({part.mesh.size} devices / NUM_PARTITIONS="
      f"{part.mesh.size // data}); use a multiple of {data}"
    )


def _check_finite(loss: Any, step: int, last_saved: Optional[int]) -> None:
  """Stops a diverged run before anything is saved from it."""
  loss = float(loss)
  if not np.isfinite(loss):
    raise FloatingPointError(
      f"loss is {loss} at step {step}; stopped without saving. The last good checkpoint "
      f"(step {last_saved}) stays the latest; lower the learning rate or check the data"
    )


@dataclasses.dataclass(frozen=True)
class _Schedule:
  """When the loop logs, evaluates and saves: every period's multiple, and the last step.

  A period of None never comes (no evaluation: EVAL_PERIOD None, or no validation split).
  """

  train_steps: int
  log_period: int
  eval_period: Optional[int]
  checkpoint_period: int

  def _due(self, period: Optional[int], step: int) -> bool:
    return period is not None and (step % period == 0 or step == self.train_steps)

  def log(self, step: int) -> bool:
    """A console line and the train summaries (and, with several hosts, a sync)."""
    return self._due(self.log_period, step)

  def evaluate(self, step: int) -> bool:
    return self._due(self.eval_period, step)

  def save(self, step: int) -> bool:
    """A checkpoint (a stop signal saves its step besides)."""
    return self._due(self.checkpoint_period, step)


def steps_of_this_run(train_steps: int, checkpoint_step: Optional[int]) -> tuple[int, str]:
  """TRAIN_STEPS as the number of this run's steps, and the line that says so.

  Here a run's steps count from 0, whatever it starts from. t5x carries on the
  step of the checkpoint it starts from, so in the original codebase
  `TRAIN_STEPS=1_150_000` on a step-1,100,000 t5x checkpoint means 50,000 steps
  of tuning. From a t5x checkpoint (`checkpoint_step`, None for other formats)
  whose step is below TRAIN_STEPS, TRAIN_STEPS is read as the original reads it,
  and the line says so with the value that means the same here.
  """
  if checkpoint_step and train_steps > checkpoint_step:
    steps = train_steps - checkpoint_step
    return steps, (
      f"TRAIN_STEPS={train_steps} is above the t5x checkpoint's step "
      f"{checkpoint_step}: read as the original codebase reads it, the step to "
      f"stop at counted from the checkpoint's, so this run trains {steps} steps "
      f"(here TRAIN_STEPS counts this run's steps: TRAIN_STEPS={steps} says the "
      "same)"
    )
  return train_steps, f"TRAIN_STEPS={train_steps}: this run trains {train_steps} steps"


def train(
  *,
  model: t5.Transformer,
  train_steps: int,
  data: settings.DataSettings,
  checkpoints: settings.CheckpointSettings,
  optimization: settings.OptimizationSettings = settings.OptimizationSettings(),
  evaluation: settings.EvaluationSettings = settings.EvaluationSettings(),
  random_seed: int = 0,
  num_partitions: int = 1,
  log_period: int = 10,
  on_start: Optional[Callable[[], None]] = None,
) -> dict[str, Any]:
  """Trains until `train_steps` steps (of this run's state) are done.

  Args:
    model: the model (MODEL), with its prompt.
    train_steps: TRAIN_STEPS, this run's steps (a resumed run counts the steps done;
      see `steps_of_this_run` for a t5x checkpoint's).
    data, checkpoints, optimization, evaluation: what it trains on, where it starts
      from and saves, how it optimizes, when it evaluates (`settings`).
    random_seed: RANDOM_SEED: the random init, the data order and dropout.
    num_partitions: NUM_PARTITIONS, the size of the mesh's model axis.
    log_period: steps between console lines and summaries.
    on_start: called once on the first host after set-up (the entry point
      writes the operative gin config here).

  Returns:
    The last step's metrics, the step, the path of the last numpy prompt, and
    the best evaluation's record (`early_stopping`; its prompt is in
    `MODEL_DIR/best/`), or None without evaluations.
  """
  settings.check_positive("TRAIN_STEPS", train_steps)
  settings.check_positive("LOG_PERIOD", log_period)
  settings.check_positive("NUM_PARTITIONS", num_partitions)
  model_dir = checkpoints.model_dir
  initial_checkpoint_path = checkpoints.initial_checkpoint_path
  mixture_or_task_name, task_feature_lengths = data.mixture_or_task_name, data.task_feature_lengths
  batch_size, what_trains = data.batch_size, optimization.what_trains
  part = partitioning.Partitioner(num_partitions)
  _check_batch_split(batch_size, part)
  with _LeaveAsFound(model_dir) as run_dir, _StopSignals() as stop:
    registry.import_task_module(data.mixture_or_task_module)
    registry.check_vocabulary(mixture_or_task_name, data.vocabulary, model.config.vocab_size)
    ckpt = checkpointer.Checkpointer(model_dir, checkpoints.keep_checkpoints)
    optimizer = optimization.optimizer or optimizers.adafactor()

    variables, shardings = variables_lib.init_variables(
      model, part, initial_checkpoint_path, random_seed
    )
    train_steps, steps_line = steps_of_this_run(
      train_steps, initial_checkpoint_path and readers.t5x_step(initial_checkpoint_path)
    )
    state, frozen, state_shardings, jitted = train_state.setup_step(
      model,
      part,
      optimizer,
      variables,
      shardings,
      what_trains,
      random_seed,
      **optimization.loss_options(),
    )
    del variables
    num_frozen = sum(int(np.prod(v.shape)) for v in frozen.values())
    num_trainable = sum(int(np.prod(v.shape)) for v in state.trainable.values())
    num_prompt = sum(
      int(np.prod(v.shape)) for k, v in {**frozen, **state.trainable}.items() if layout.is_prompt(k)
    )
    logging.info(
      "parameters: %d total, %d trainable (%s)",
      num_frozen + num_trainable,
      num_trainable,
      what_trains,
    )

    record = {
      "base_checkpoint": initial_checkpoint_path,
      "init_seed": random_seed,
      "what_trains": what_trains,
      "data_position": 0,
      "best": None,
    }
    best = early_stopping.BestEvaluation(model_dir, write=jax.process_index() == 0)
    latest = ckpt.latest_step()
    if latest is not None:
      state, saved = ckpt.restore(latest, jax.eval_shape(lambda: state), state_shardings)
      for key in ("base_checkpoint", "init_seed", "what_trains"):
        if saved.get(key) != record[key]:
          raise ValueError(
            f"MODEL_DIR {model_dir} holds a run with {key}={saved.get(key)!r}, "
            f"this one has {record[key]!r}; use a new MODEL_DIR"
          )
      record["data_position"] = saved["data_position"]
      record["best"] = saved.get("best")
      if saved.get("pending_eval") is not None:
        record["pending_eval"] = saved["pending_eval"]
      logging.info("resuming from step %d (batch %d of the data)", latest, record["data_position"])

    batches = data_lib.batches(
      mixture_or_task_name,
      task_feature_lengths,
      batch_size,
      seed=random_seed,
      start=record["data_position"],
      shard=seqio.ShardInfo(jax.process_index(), jax.process_count()),
      use_cached=data.use_cached_tasks,
    )
    eval_period, infer_eval = evaluation.eval_period, evaluation.infer_eval
    evaluate, infer_eval_fn = None, None
    if eval_period and not registry.has_split(mixture_or_task_name, "validation"):
      logging.warning("%s has no validation split; EVAL_PERIOD is ignored", mixture_or_task_name)
    elif eval_period:
      evaluate = _TeacherForcedEvaluation(
        model,
        part,
        state_shardings,
        frozen,
        mixture_or_task_name,
        task_feature_lengths,
        batch_size,
        data.use_cached_tasks,
        z_loss=optimization.z_loss,
        label_smoothing=optimization.label_smoothing,
      )
    if evaluate is not None and infer_eval is not None:
      infer_eval_fn = infer_eval(
        part, layout.inference_eval_dir(model_dir) if jax.process_index() == 0 else None
      )
    best.restore(
      record["best"], None if latest is None else layout.numpy_step_dir(model_dir, latest)
    )
    if on_start is not None and jax.process_index() == 0:
      on_start()
    writer = _Summaries(model_dir, first_host=jax.process_index() == 0)
    step = int(state.step)
    logging.info(
      "%s%s", steps_line, f"; {train_steps - step} to go from step {step}" if step else ""
    )
    writer.start(
      step,
      train_steps=train_steps,
      parameters_total=num_frozen + num_trainable,
      parameters_model=num_frozen + num_trainable - num_prompt,
      parameters_trainable=num_trainable,
      what_trains=what_trains,
    )
    metrics: dict[str, Any] = {}
    last_saved = latest
    step_fn = None

    def run_evaluation(step: int, state: train_state.TrainState) -> None:
      eval_metrics = evaluate(state.trainable)
      if infer_eval_fn is not None:
        eval_metrics.update(infer_eval_fn(step, trainable.merge(state.trainable, frozen)))
      if hasattr(optimization.regularizer, "report"):  # e.g. a wayward prompt's nearest tokens
        reported, text = optimization.regularizer.report({**frozen, **state.trainable})
        eval_metrics.update(reported)
        logging.info("nearest tokens at step %d: %s", step, text)
      logging.info(
        "eval at step %d: %s",
        step,
        " ".join(f"{k}={v:.4f}" for k, v in sorted(eval_metrics.items())),
      )
      writer.write_scalars(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
      if best.update(step, eval_metrics, state.trainable):
        record["best"] = best.record

    if record.pop("pending_eval", None) == step and evaluate is not None:
      run_evaluation(step, state)  # the stopped run's, left to this one
    schedule = _Schedule(
      train_steps,
      log_period,
      eval_period if evaluate is not None else None,
      checkpoints.checkpoint_period,
    )
    tick, tick_step = time.time(), step
    stop.arm()  # from here a SIGINT/SIGTERM saves the current step and stops
    while step < train_steps:
      batch = part.global_batch(next(batches))
      if step_fn is None:
        step_fn, memory = train_state.compile_train_step(jitted, part, state, frozen, batch)
        logging.info("compiled train step: %s", memory)
        tick = time.time()
      step_start = time.time()
      state, metrics = step_fn(state, frozen, batch)
      step += 1
      record["data_position"] += 1
      if schedule.log(step):
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        step_time = time.time() - step_start
        _check_finite(metrics["loss"], step, last_saved)
        elapsed = time.time() - tick
        steps_per_s = (step - tick_step) / max(elapsed, 1e-9)
        tokens = batch["encoder_input_tokens"].size + batch["decoder_target_tokens"].size
        logging.info(
          "step %d/%d loss=%.4f accuracy=%.3f %.2f steps/s %.0f tokens/s ETA %.0fs",
          step,
          train_steps,
          metrics["loss"],
          metrics["accuracy"],
          steps_per_s,
          steps_per_s * tokens,
          (train_steps - step) / max(steps_per_s, 1e-9),
        )
        scalars = {
          **{f"train/{k}": v for k, v in metrics.items()},
          "train/steps_per_second": steps_per_s,
          "train/tokens_per_second": steps_per_s * tokens,
          "train/step_time_seconds": step_time,
        }
        rate = optimization.learning_rate
        if rate is not None:
          scalars["train/learning_rate"] = float(rate(step - 1) if callable(rate) else rate)
        writer.write_scalars(step, scalars)
        tick, tick_step = time.time(), step
      due_eval = schedule.evaluate(step)
      # Any host's signal stops every host at the same step. One that lands on an evaluation
      # step leaves that evaluation to the resumed run, which makes it first.
      signum = stop.agreed(sync=due_eval or schedule.log(step))
      if due_eval and signum and step < train_steps:
        record["pending_eval"] = step
        logging.info("the evaluation of step %d is left to the resumed run", step)
      elif due_eval:
        run_evaluation(step, state)
        signum = signum or stop.agreed(sync=True)  # one that came during the evaluation
      if schedule.save(step) or signum:
        _check_finite(metrics["loss"], step, last_saved)
        last_saved = ckpt.save(state, record, best.checkpoint_arrays())
        run_dir.keep()
      if signum and step < train_steps:
        writer.flush()
        raise TrainingInterrupted(signum, step, model_dir)
    writer.flush()
    trains_a_prompt = any(layout.is_prompt(k) for k in state.trainable)
    return {
      "step": step,
      "metrics": {k: float(v) for k, v in metrics.items()},
      "checkpoint_dir": layout.checkpoint_step_dir(model_dir, step),
      # the step's prompt as .npy files: only a run that trains one writes them
      "numpy_checkpoint_dir": layout.numpy_step_dir(model_dir, step) if trains_a_prompt else None,
      "best": best.record,
    }
