"""Settings no run can use are one-line errors before the trainer creates anything."""

import pytest

from prompt_tuning import partitioning
from prompt_tuning.training import settings
from prompt_tuning.training import trainer

LENGTHS = {"inputs": 16, "targets": 4}


def test_usable_settings_pass():
  settings.DataSettings("task", LENGTHS, batch_size=8)
  settings.CheckpointSettings("/tmp/run", checkpoint_period=5, keep_checkpoints=None)
  settings.OptimizationSettings(learning_rate=0.3)
  settings.OptimizationSettings(learning_rate=lambda step: 0.1)  # a schedule
  settings.EvaluationSettings(eval_period=None)


@pytest.mark.parametrize(
  "make,message",
  [
    (
      lambda: settings.EvaluationSettings(eval_period=0),
      "EVAL_PERIOD=0; it must be a positive integer or None",
    ),
    (
      lambda: settings.CheckpointSettings("d", keep_checkpoints=-1),
      "KEEP_CHECKPOINTS=-1; it must be a positive integer or None",
    ),
    (
      lambda: settings.CheckpointSettings("d", checkpoint_period=2.5),
      "CHECKPOINT_PERIOD=2.5; it must be a positive integer",
    ),
    (
      lambda: settings.DataSettings("t", LENGTHS, batch_size=True),
      "BATCH_SIZE=True; it must be a positive integer",
    ),
    (
      lambda: settings.DataSettings("t", {"inputs": 16}),
      r"TASK_FEATURE_LENGTHS=\{'inputs': 16\}; give both lengths",
    ),
    (
      lambda: settings.DataSettings("t", {"inputs": 16, "targets": -4}),
      r"TASK_FEATURE_LENGTHS\['targets'\]=-4; it must be a positive integer",
    ),
    (
      lambda: settings.OptimizationSettings(learning_rate=float("nan")),
      "LEARNING_RATE=nan; it must be a positive number",
    ),
    (
      lambda: settings.OptimizationSettings(learning_rate="0.3"),
      "LEARNING_RATE='0.3'; it must be a positive number",
    ),
  ],
)
def test_unusable_settings_are_one_line_errors(make, message):
  with pytest.raises(ValueError, match=message):
    make()


@pytest.mark.parametrize(
  "change,message",
  [
    ({"train_steps": 0}, "TRAIN_STEPS=0; it must be a positive integer"),
    ({"train_steps": 2.5}, "TRAIN_STEPS=2.5; it must be a positive integer"),
    ({"log_period": True}, "LOG_PERIOD=True; it must be a positive integer"),
    ({"num_partitions": 0}, "NUM_PARTITIONS=0; it must be a positive integer"),
  ],
)
def test_the_trainers_own_arguments_are_one_line_errors_before_anything_is_made(
  change, message, tmp_path
):
  model_dir = tmp_path / "run"
  arguments = dict(
    model=None,  # never reached
    train_steps=10,
    data=settings.DataSettings("task", LENGTHS),
    checkpoints=settings.CheckpointSettings(str(model_dir)),
  )
  with pytest.raises(ValueError, match=message):
    trainer.train(**{**arguments, **change})
  assert not model_dir.exists()


def test_a_batch_the_data_axis_cannot_split_is_one_line():
  part = partitioning.Partitioner(2)  # 8 simulated devices: a data axis of 4
  trainer._check_batch_split(8, part)  # pylint: disable=protected-access
  with pytest.raises(
    ValueError,
    match=r"BATCH_SIZE=6 does not split over the mesh's data axis "
    r"of 4 devices \(8 devices / NUM_PARTITIONS=2\); use a multiple of 4",
  ):
    trainer._check_batch_split(6, part)  # pylint: disable=protected-access


@pytest.mark.parametrize(
  "train_steps,checkpoint_step,steps,says",
  [
    # The original codebase's sst2-demo.sh: TRAIN_STEPS counts from the t5x checkpoint's step.
    (
      1_150_000,
      1_100_000,
      50_000,
      "read as the original codebase reads it, the step to stop "
      "at counted from the checkpoint's, so this run trains 50000 steps (here TRAIN_STEPS "
      "counts this run's steps: TRAIN_STEPS=50000 says the same)",
    ),
    (30_000, 1_100_000, 30_000, "TRAIN_STEPS=30000: this run trains 30000 steps"),  # this one's
    (1_100_000, 1_100_000, 1_100_000, "this run trains 1100000 steps"),  # not below: this one's
    (500, None, 500, "TRAIN_STEPS=500: this run trains 500 steps"),  # not a t5x checkpoint
    (500, 0, 500, "TRAIN_STEPS=500: this run trains 500 steps"),  # a t5x checkpoint at step 0
  ],
)
def test_train_steps_from_a_t5x_checkpoint_below_them_count_from_its_step(
  train_steps, checkpoint_step, steps, says
):
  got, line = trainer.steps_of_this_run(train_steps, checkpoint_step)
  assert got == steps
  assert says in line


def test_the_schedule_logs_evaluates_and_saves_at_each_periods_multiples_and_the_last_step():
  schedule = trainer._Schedule(  # pylint: disable=protected-access
    train_steps=10, log_period=3, eval_period=None, checkpoint_period=4
  )
  steps = range(1, 11)
  assert [s for s in steps if schedule.log(s)] == [3, 6, 9, 10]
  assert [s for s in steps if schedule.save(s)] == [4, 8, 10]
  assert not [s for s in steps if schedule.evaluate(s)]  # no evaluation: never
  every_fifth = trainer._Schedule(10, 1, 5, 100)  # pylint: disable=protected-access
  assert [s for s in steps if every_fifth.evaluate(s)] == [5, 10]
  assert [s for s in steps if every_fifth.save(s)] == [10]
