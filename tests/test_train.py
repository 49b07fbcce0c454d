"""`python -m prompt_tuning.train` end to end on the tiny model and a user's own task."""

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest

from prompt_tuning import host
from tests import conftest

USER_TASKS = textwrap.dedent('''
    """A user's own seqio task from a Python list (what MIXTURE_OR_TASK_MODULE imports)."""
    import os
    import signal

    import seqio
    import tensorflow as tf

    VOCAB = seqio.SentencePieceVocabulary(os.environ["T5_VOCAB"])
    WORDS = ["great", "awful", "lovely", "boring", "superb", "dreadful", "fine", "bad"]
    EXAMPLES = [{"inputs": f"review {i}: the film was {w}",
                 "targets": "positive" if i % 2 == 0 else "negative"}
                for i, w in enumerate(WORDS * 4)]

    def dataset_fn(split, shuffle_files, seed=None):
      del shuffle_files, seed
      stop = os.environ.pop("SIGNAL_WHEN_TRAINING_DATA_STARTS", None)
      if split == "train" and stop:  # as a user or a scheduler would, once the loop runs
        os.kill(os.getpid(), getattr(signal, stop))
      return tf.data.Dataset.from_tensor_slices(
          {k: [e[k] for e in EXAMPLES] for k in ("inputs", "targets")})

    seqio.TaskRegistry.add(
        "user_sentiment",
        source=seqio.FunctionDataSource(dataset_fn, splits=["train", "validation"]),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        output_features={"inputs": seqio.Feature(VOCAB, add_eos=True),
                         "targets": seqio.Feature(VOCAB, add_eos=True)},
        metric_fns=[])

    seqio.TaskRegistry.add(  # the same data in bytes: not the model's vocabulary
        "user_sentiment_bytes",
        source=seqio.FunctionDataSource(dataset_fn, splits=["train", "validation"]),
        preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
        output_features={"inputs": seqio.Feature(seqio.ByteVocabulary(), add_eos=True),
                         "targets": seqio.Feature(seqio.ByteVocabulary(), add_eos=True)},
        metric_fns=[])
''')


def _command(tmp_path, model_dir, steps, *extra, env=None):
  env = {
    **os.environ,
    "T5_VOCAB": str(conftest.VOCAB_PATH),
    "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
    **(env or {}),
  }
  cmd = [
    sys.executable,
    "-m",
    "prompt_tuning.train",
    "--gin_file=configs/test/tiny.gin",
    "--gin_file=configs/runs/prompt_finetune.gin",
    f"--gin.MODEL_DIR='{model_dir}'",
    "--gin.MIXTURE_OR_TASK_NAME='user_sentiment'",
    "--gin.MIXTURE_OR_TASK_MODULE='user_tasks'",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 16, 'targets': 4}",
    f"--gin.TRAIN_STEPS={steps}",
    "--gin.INITIAL_CHECKPOINT_PATH=None",
    f"--gin.SENTENCEPIECE_MODEL_FILE='{conftest.VOCAB_PATH}'",
    "--gin.EVAL_PERIOD=3",
    "--gin.BATCH_SIZE=4",
    "--gin.CHECKPOINT_PERIOD=2",
    "--gin.DROPOUT_RATE=0.1",
    *extra,
  ]
  return cmd, env


def _train(tmp_path, model_dir, steps, *extra, env=None):
  cmd, env = _command(tmp_path, model_dir, steps, *extra, env=env)
  return subprocess.run(
    cmd, cwd=conftest.REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
  )


def _best_prompt(model_dir):
  return np.load(os.path.join(model_dir, "best", "encoder.prompt.prompt.npy"))


def _assert_same_best(model_dir, straight):
  """The run kept the straight run's best evaluation and prompt."""
  assert (model_dir / "best" / "best.json").read_text() == (
    straight / "best" / "best.json"
  ).read_text()
  np.testing.assert_array_equal(_best_prompt(model_dir), _best_prompt(straight))


def _prompt(model_dir, step):
  return np.load(
    os.path.join(model_dir, "numpy_checkpoints", f"checkpoint_{step}", "encoder.prompt.prompt.npy")
  )


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
  """The user task trained 6 steps in one go: `(tmp_path, its final prompt)`.

  Each way of stopping (stop and rerun, SIGKILL inside a save, Ctrl-C) must end,
  after the same command again, on this prompt.
  """
  if not conftest.VOCAB_PATH.exists():
    pytest.skip(conftest.MISSING_VOCABULARY)
  tmp_path = tmp_path_factory.mktemp("user_task")
  (tmp_path / "user_tasks.py").write_text(USER_TASKS)
  straight = tmp_path / "straight"
  temp = tmp_path / "temp"  # the command's temporary directory: no log is left there
  temp.mkdir()
  done = _train(tmp_path, straight, 6, env={"TMPDIR": str(temp)})
  assert done.returncode == 0, done.stderr[-3000:]
  assert f"prompt={straight}/numpy_checkpoints/checkpoint_6" in done.stdout
  operative = (straight / "config.gin").read_text()
  assert "trainer.train.train_steps = %TRAIN_STEPS" in operative and "TRAIN_STEPS = 6" in operative
  assert "MODEL/t5.T5Config.mlp_dim = %MLP_DIM" in operative
  assert "eval at step 3: accuracy=" in done.stderr and "eval at step 6:" in done.stderr
  assert any(name.startswith("events.out.tfevents") for name in os.listdir(straight))
  assert "compiled train step: argument=" in done.stderr
  # Before its first step the run says how many it takes.
  said = done.stderr.index("TRAIN_STEPS=6: this run trains 6 steps")
  assert said < done.stderr.index("eval at step 3")
  assert "checkpoint_manager.py" not in done.stderr  # orbax's INFO lines need --verbose
  full_log = done.stderr.split("the full log, the libraries' INFO lines included: ")[1].split()[0]
  assert full_log == str(straight / "train.full.log")  # in MODEL_DIR, not the temporary dir
  with open(full_log) as f:
    text = f.read()
  assert "checkpoint_manager.py" in text  # ... and go to the log file
  assert "] parameters: " in text  # with what was logged before MODEL_DIR existed
  assert not [n for n in os.listdir(temp) if n.startswith("prompt_tuning.")]
  final = _prompt(straight, 6)
  assert final.shape == (4, 16) and final.dtype == np.float32
  assert not np.array_equal(final, _prompt(straight, 2))
  # The best evaluation (no decoded metric: the lowest teacher-forced loss) and its prompt.
  losses = {
    r["step"]: r["eval/loss"]
    for r in map(json.loads, open(straight / "metrics.jsonl"))
    if "eval/loss" in r
  }
  best = json.loads((straight / "best" / "best.json").read_text())
  assert sorted(losses) == [3, 6] and best == {
    "step": min(losses, key=lambda s: (losses[s], s)),
    "metric": "loss",
    "mode": "min",
    "value": losses[best["step"]],
  }
  if best["step"] == 6:
    np.testing.assert_array_equal(_best_prompt(straight), final)
  return tmp_path, final


@pytest.mark.integration
@pytest.mark.slow
def test_user_task_trains_saves_numpy_prompt_and_resumes_exactly(straight_run):
  tmp_path, final = straight_run
  # Stopped after 4 steps, then the same command with the full step count.
  resumed = tmp_path / "resumed"
  first = _train(tmp_path, resumed, 4, "--verbose")
  assert first.returncode == 0, first.stderr[-3000:]
  assert "checkpoint_manager.py" in first.stderr
  second = _train(tmp_path, resumed, 6)
  assert second.returncode == 0, second.stderr[-3000:]
  assert "resuming from step 4" in second.stderr
  np.testing.assert_array_equal(_prompt(resumed, 6), final)


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_inside_a_save_then_the_same_command_ends_on_the_straight_runs_prompt(straight_run):
  tmp_path, final = straight_run
  # SIGKILL while orbax writes a checkpoint (its temporary directory exists and
  # is left behind); the rerun of the same command ends on the same prompt.
  for attempt in range(3):
    killed = tmp_path / f"killed_{attempt}"
    cmd, env = _command(tmp_path, killed, 6, "--gin.CHECKPOINT_PERIOD=1")
    proc = subprocess.Popen(
      cmd, cwd=conftest.REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    # The entry point restarts itself once with glibc's huge-page tunable (same pid);
    # wait for that exec, so the kill reaches the training process. Where the C library
    # has no such tunable (not glibc) there is no restart to wait for.
    if attempt == 0 and host.huge_pages_environment(dict(env)) is not None:
      while b"hugetlb" not in open(f"/proc/{proc.pid}/environ", "rb").read():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    # Poll for orbax's temporary directory; the short sleep leaves the cores to the
    # process being watched (a save lasts far longer than one poll).
    while not _saving(killed, after_step=1):
      assert proc.poll() is None and time.time() < deadline, "training ended before the kill"
      time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    if _saving(killed, after_step=1):
      break  # the kill landed inside a save
  else:
    pytest.fail("three kills all missed a save")
  rerun = _train(tmp_path, killed, 6, "--gin.CHECKPOINT_PERIOD=1")
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "resuming from step" in rerun.stderr
  assert not [n for n in os.listdir(killed / "checkpoints") if "tmp" in n]
  np.testing.assert_array_equal(_prompt(killed, 6), final)
  _assert_same_best(killed, tmp_path / "straight")


@pytest.mark.integration
@pytest.mark.slow
def test_ctrl_c_on_an_evaluation_step_saves_it_and_the_same_command_ends_on_the_same_prompt(
  straight_run,
):
  """Ctrl-C (SIGINT) once the loop runs: the current step is saved, the process says so on
  one line and exits 130; the same command then finishes on the straight run's prompt.

  The signal lands on an evaluation step (every step is one here). That evaluation ran (12 s
  on a real task) before the stop; now the run stops at once and the resumed run makes it
  first: every evaluation is made once."""
  tmp_path, final = straight_run
  stopped = tmp_path / "stopped"
  own_tmp = tmp_path / "tmp"  # the process's temporary files, to see what it leaves
  own_tmp.mkdir()
  every_step = ("--gin.CHECKPOINT_PERIOD=1", "--gin.EVAL_PERIOD=1")
  interrupted = _train(
    tmp_path,
    stopped,
    6,
    *every_step,
    env={"TMPDIR": str(own_tmp), "SIGNAL_WHEN_TRAINING_DATA_STARTS": "SIGINT"},
  )
  err = interrupted.stderr
  assert interrupted.returncode == 130, err[-3000:]
  errors = [line for line in err.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "SIGINT stopped training at step 1;" in errors[0], err[-3000:]
  assert "Traceback" not in err
  assert "eval at step" not in err
  # TensorFlow's autograph removes its generated modules at exit; the one-line exit skips
  # that (twenty files in /tmp per stopped sweep), so it removes them itself.
  assert not [n for n in os.listdir(own_tmp) if n.startswith("__autograph_generated")]
  assert max(int(n) for n in os.listdir(stopped / "checkpoints")) == 1
  rerun = _train(tmp_path, stopped, 6, *every_step)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "resuming from step 1" in rerun.stderr
  assert re.findall(r"eval at step (\d+):", rerun.stderr) == ["1", "2", "3", "4", "5", "6"]
  np.testing.assert_array_equal(_prompt(stopped, 6), final)
  # The best evaluation over both runs (no decoded metric: the lowest teacher-forced loss)
  # and, with a checkpoint at every step, that step's prompt.
  losses = {
    r["step"]: r["eval/loss"]
    for r in map(json.loads, open(stopped / "metrics.jsonl"))
    if "eval/loss" in r
  }
  best = json.loads((stopped / "best" / "best.json").read_text())
  assert sorted(losses) == [1, 2, 3, 4, 5, 6]
  assert best["step"] == min(losses, key=lambda s: (losses[s], s)), (best, losses)
  assert best["value"] == losses[best["step"]]
  np.testing.assert_array_equal(_best_prompt(stopped), _prompt(stopped, best["step"]))


def _saving(model_dir, after_step):
  """Whether orbax is writing (or was killed writing) a checkpoint after `after_step`."""
  root = model_dir / "checkpoints"
  try:
    names = os.listdir(root)
  except FileNotFoundError:
    return False
  return any("tmp" in n and int(n.split(".")[0]) > after_step for n in names)


def _two_hosts(tmp_path, run_dir, steps, *extra):
  """Two training processes (one CPU device each) on loopback, as two hosts of a cluster."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  procs = []
  for host_id in range(2):
    cmd, env = _command(tmp_path, run_dir, steps, "--multiprocess", *extra)
    env.update(
      JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
      JAX_NUM_PROCESSES="2",
      JAX_PROCESS_ID=str(host_id),
    )
    procs.append(
      subprocess.Popen(
        cmd,
        cwd=conftest.REPO_ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
      )
    )
  return procs


@pytest.mark.integration
@pytest.mark.slow
def test_two_hosts_train_one_prompt(tmp_path, t5_vocab_path):
  """Two processes (one CPU device each) on loopback, as two hosts of a cluster."""
  (tmp_path / "user_tasks.py").write_text(USER_TASKS)
  run_dir = tmp_path / "two_hosts"
  procs = _two_hosts(tmp_path, run_dir, 4)
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  # Both hosts report the same (replicated) final loss and prompt; one host wrote it.
  assert outs[0][0].splitlines()[-1] == outs[1][0].splitlines()[-1]
  assert f"prompt={run_dir}/numpy_checkpoints/checkpoint_4" in outs[0][0]
  assert "eval at step 3: accuracy=" in outs[0][1]
  assert _prompt(run_dir, 4).shape == (4, 16)
  assert sorted(os.listdir(run_dir / "checkpoints")) == ["2", "4"]


# Host 1 leaves last: its process exit waits a few seconds, as on a loaded machine. The
# coordinator (host 0) must not go first: a host whose coordinator is gone aborts (SIGABRT).
SLOW_TO_LEAVE = textwrap.dedent('''
    import os
    import time
    if os.environ.get("JAX_PROCESS_ID") == "1":
      _exit = os._exit
      def _slow_exit(code):
        time.sleep(5)
        _exit(code)
      os._exit = _slow_exit
''')


@pytest.mark.integration
@pytest.mark.slow
def test_a_signal_to_one_host_stops_every_host_at_the_same_step(tmp_path, t5_vocab_path):
  """Preemption of one process of a job: all hosts save the same step and stop."""
  (tmp_path / "user_tasks.py").write_text(USER_TASKS)
  (tmp_path / "sitecustomize.py").write_text(SLOW_TO_LEAVE)
  run_dir = tmp_path / "two_hosts"
  procs = _two_hosts(
    tmp_path, run_dir, 100000, "--gin.EVAL_PERIOD=None", "--gin.CHECKPOINT_PERIOD=100000"
  )
  for line in procs[0].stderr:  # host 0 logs the steps
    if "step 20/100000" in line:
      break
  procs[1].send_signal(signal.SIGTERM)  # host 1 only
  outs = [p.communicate(timeout=300) for p in procs]
  lines = [[e for e in err.splitlines() if e.startswith("error: ")] for _, err in outs]
  assert [p.returncode for p in procs] == [143, 143], [err[-6000:] for _, err in outs]
  steps = {int(line[0].split(" at step ")[1].split(";")[0]) for line in lines}
  assert len(steps) == 1, lines  # the same step on both hosts
  assert sorted(os.listdir(run_dir / "checkpoints")) == [str(steps.pop())]


# What the trainer holds at its last evaluation, saved by the function it is handed as
# `infer_eval` (the hook the run file uses for decoding-based evaluation).
CAPTURE_MODULE = textwrap.dedent('''
    import os
    import numpy as np
    from flax import traverse_util

    def factory():
      def make(partitioner, output_dir):
        def capture(step, variables):
          flat = traverse_util.flatten_dict(dict(variables), sep="/")
          np.savez(os.environ["CAPTURE_FILE"], step=step,
                   **{k: np.asarray(v) for k, v in flat.items()})
          return {}
        return capture
      return make
''')
CAPTURE_GIN = textwrap.dedent('''
    from __gin__ import dynamic_registration
    from prompt_tuning.training import settings
    import capture_variables
    settings.EvaluationSettings.infer_eval = @capture_variables.factory()
''')


@pytest.mark.integration
@pytest.mark.slow
def test_prompt_tuning_from_a_model_tuned_checkpoint(tmp_path, t5_vocab_path, monkeypatch):
  from prompt_tuning.checkpoints import convert  # pylint: disable=g-import-not-at-top

  (tmp_path / "user_tasks.py").write_text(USER_TASKS)
  base = tmp_path / "model_tuned"
  tuned = _train(
    tmp_path,
    base,
    2,
    "--gin.WHAT_TRAINS='all'",
    "--gin.LEARNING_RATE=1e-3",
    "--gin.PROMPT_LENGTH=0",
    "--gin.EVAL_PERIOD=None",
  )
  assert tuned.returncode == 0, tuned.stderr[-3000:]
  # Its last line names what it saved: no prompt trains, so the checkpoint, not a prompt path.
  last = tuned.stdout.strip().splitlines()[-1]
  assert last.startswith("train: step=2 ") and "prompt=" not in last, last
  assert os.path.isdir(last.split("checkpoint=")[1]), last
  # Host copies of the frozen model, read from disk before prompt tuning from it.
  before = convert.read_all(str(base))
  (tmp_path / "capture_variables.py").write_text(CAPTURE_MODULE)
  (tmp_path / "capture.gin").write_text(CAPTURE_GIN)
  held = tmp_path / "held.npz"
  prompted = _train(
    tmp_path,
    tmp_path / "prompt",
    2,
    f"--gin.INITIAL_CHECKPOINT_PATH='{base}'",
    f"--gin_file={tmp_path / 'capture.gin'}",
    env={"CAPTURE_FILE": str(held)},
  )
  assert prompted.returncode == 0, prompted.stderr[-3000:]
  assert "parameters: " in prompted.stderr and ", 64 trainable (prompt)" in prompted.stderr
  assert _prompt(tmp_path / "prompt", 2).shape == (4, 16)
  # The frozen weights the trainer held at its last step, and the checkpoint on disk after
  # the run, are bitwise the copies taken before; the prompt it held is the one it saved.
  held = np.load(held)
  assert int(held["step"]) == 2
  after = convert.read_all(str(base))
  assert set(after) == set(before) and len(before) > 10
  for name, value in before.items():
    assert held[f"params/{name}"].dtype == value.dtype
    np.testing.assert_array_equal(held[f"params/{name}"], value, err_msg=name)
    np.testing.assert_array_equal(after[name], value, err_msg=name)
  np.testing.assert_array_equal(
    held["prompt/encoder/prompt/prompt"], _prompt(tmp_path / "prompt", 2)
  )
  wider = _error_in_this_process(
    tmp_path,
    monkeypatch,
    tmp_path / "wider",
    f"--gin.INITIAL_CHECKPOINT_PATH='{base}'",
    "--gin.MLP_DIM=64",
  )
  assert (
    "has shape (16, 32) in INITIAL_CHECKPOINT_PATH" in wider and "model wants (16, 64)" in wider
  )
  assert not (tmp_path / "wider").exists()


def _error_in_this_process(tmp_path, monkeypatch, model_dir, *extra):
  """The one line `python -m prompt_tuning.train` prints for a command that fails: train.main
  run in this process, its error put as cli.run puts it. (A process per command paid the
  imports of JAX, TensorFlow and seqio each time: 8 commands, 64 s of the suite.)"""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top
  import gin  # pylint: disable=g-import-not-at-top
  import seqio  # pylint: disable=g-import-not-at-top
  from prompt_tuning import cli  # pylint: disable=g-import-not-at-top
  from prompt_tuning import train  # pylint: disable=g-import-not-at-top

  devices = len(jax.devices())  # this worker's (conftest: 8 CPU devices): a batch they split
  cmd, env = _command(tmp_path, model_dir, 2, f"--gin.BATCH_SIZE={devices}", *extra)
  monkeypatch.setenv("T5_VOCAB", env["T5_VOCAB"])
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.chdir(conftest.REPO_ROOT)
  argv = cli.rewrite_gin_args(cmd[2:])  # [program, flags...]
  # What the command changes in its process, restored for this worker's next tests: the
  # logging handlers and filters cli puts on, its module state.
  root_handlers = list(logging.getLogger().handlers)
  absl_filters = list(absl_logging.get_absl_handler().filters)
  for name in ("_buffer", "_output_directory"):  # as in a fresh process
    monkeypatch.setattr(cli, name, None)
  monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))  # the entry point may add
  # As in a fresh process: only the tasks the command's module registers (they go when the
  # registries are put back; the module is imported afresh by the next test that names it).
  monkeypatch.setattr(seqio.TaskRegistry, "_REGISTRY", {})
  monkeypatch.setattr(seqio.MixtureRegistry, "_REGISTRY", {})
  monkeypatch.delitem(sys.modules, "user_tasks", raising=False)
  was_parsed = flags.FLAGS.is_parsed()
  gin.clear_config()
  try:
    with flagsaver.flagsaver():
      flags.FLAGS.unparse_flags()
      try:
        train.main(flags.FLAGS(argv))
      finally:
        flags.FLAGS.unparse_flags()
        if was_parsed:
          flags.FLAGS.mark_as_parsed()
  except (*cli.USER_ERRORS, OSError) as e:
    return f"error: {cli.describe_failure(e)}"
  finally:
    gin.clear_config()
    logging.getLogger().handlers[:] = root_handlers
    absl_logging.get_absl_handler().filters[:] = absl_filters
    sys.modules.pop("user_tasks", None)
  pytest.fail("the command ran without an error")


@pytest.mark.integration
@pytest.mark.slow
def test_clear_errors(tmp_path, t5_vocab_path, monkeypatch, capfd, caplog):
  (tmp_path / "user_tasks.py").write_text(USER_TASKS)
  # One command as a user runs it: a misspelled macro stops the run on one line (no
  # traceback), before anything is written (it would change nothing).
  bad = _train(tmp_path, tmp_path / "e", 2, "--gin.PROMPT_LENGHT=5")
  assert bad.returncode != 0
  errors = [line for line in bad.stderr.splitlines() if line.startswith("error: ")]
  assert errors == [
    "error: the gin config sets PROMPT_LENGHT (did you mean PROMPT_LENGTH?), "
    "which nothing in this run reads; a misspelled or stray setting would "
    "change nothing, so fix or remove it (the macros a run reads are in its "
    "run file's header and configs/models/*.gin)"
  ], bad.stderr[-2000:]
  assert "Traceback" not in bad.stderr
  assert not (tmp_path / "e").exists()
  # The others in this process: the line each prints, and MODEL_DIR not made. (The trainer's
  # other settings checks, TRAIN_STEPS and NUM_PARTITIONS among them, end the same way; their
  # messages are tested in-process: tests/training/test_settings.py, test_partitioning.py.)
  devices = len(jax.devices())  # this worker's (conftest: 8 CPU devices)
  for settings, line in [
    (
      ["--gin.MIXTURE_OR_TASK_NAME='user_sentimnt'"],
      "error: no seqio task or mixture named 'user_sentimnt'; "
      "close names: ['user_sentiment', 'user_sentiment_bytes']",
    ),
    (
      ["--gin.MIXTURE_OR_TASK_MODULE='no_such_tasks'"],
      "error: MIXTURE_OR_TASK_MODULE='no_such_tasks' does not import",
    ),
    (
      ["--gin.MIXTURE_OR_TASK_NAME='user_sentiment_bytes'"],
      "error: task 'user_sentiment_bytes' feature 'inputs' uses ByteVocabulary",
    ),
    (
      ["--gin.INITIAL_CHECKPOINT_PATH='/no/such/ckpt'"],
      "error: INITIAL_CHECKPOINT_PATH /no/such/ckpt does not exist",
    ),
    (
      ["--gin.BATCH_SIZE=3"],
      f"error: BATCH_SIZE=3 does not split over the mesh's data axis of {devices} devices "
      f"({devices} devices / NUM_PARTITIONS=1); use a multiple of {devices}",
    ),
    (
      ["--gin.SENTENCEPIECE_MODEL_FILE='/no/such/spm.model'"],
      "error: cannot read the SentencePiece vocabulary /no/such/spm.model",
    ),
    (
      ["--gin.TEST_SPLIT='test'"],
      "error: TEST_SPLIT='test': no task of user_sentiment "
      "has metrics to compute on it; set TEST_SPLIT to None",
    ),
  ]:
    with caplog.at_level(logging.DEBUG):
      error = _error_in_this_process(tmp_path, monkeypatch, tmp_path / "f", *settings)
    assert error.startswith(line) and "\n" not in error, error
    # Nothing else on the console: no traceback printed or logged on the way.
    assert "Traceback" not in capfd.readouterr().err
    assert not [r for r in caplog.records if r.exc_info], line
    caplog.clear()
    assert not (tmp_path / "f").exists(), line
    if "ByteVocabulary" in line:
      assert "but the model's VOCABULARY is SentencePieceVocabulary(" in error, error
