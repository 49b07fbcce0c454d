"""A second stop signal exits at once, leaving no autograph-generated modules behind."""

import os
import signal
import sys

import pytest
import tensorflow as tf

from prompt_tuning.training import trainer


class _Exited(Exception):
  pass


def _plus_one_above_zero(x):  # autograph converts it: a module in the temp directory
  if x > 0:
    return x + 1
  return x


def test_a_second_signal_exits_at_once_and_removes_the_autograph_files(monkeypatch):
  list(tf.data.Dataset.range(3).map(_plus_one_above_zero))
  generated = [
    m.__file__ for n, m in list(sys.modules.items()) if n.startswith("__autograph_generated_file")
  ]
  assert generated and all(os.path.exists(f) for f in generated)
  codes = []

  def exit_now(code):  # what os._exit would do, without ending the test's process
    codes.append(code)
    raise _Exited

  monkeypatch.setattr(trainer.os, "_exit", exit_now)
  stop = trainer._StopSignals()  # pylint: disable=protected-access
  stop._handle(signal.SIGINT, None)  # pylint: disable=protected-access
  assert stop.signal == signal.SIGINT and not codes  # the first: save, then stop
  assert all(os.path.exists(f) for f in generated)
  with pytest.raises(_Exited):
    stop._handle(signal.SIGINT, None)  # pylint: disable=protected-access
  assert codes == [128 + signal.SIGINT]
  assert not [f for f in generated if os.path.exists(f)]
