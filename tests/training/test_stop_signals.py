"""A second stop signal exits at once, leaving no autograph-generated modules behind."""

import os
import signal
import subprocess
import sys
import textwrap

from tests import conftest

# Converts a tf.data function (as seqio's preprocessors do), then takes two SIGINTs with the
# trainer's handlers armed: the first asks for a save, the second exits at once.
SCRIPT = textwrap.dedent(
  """
  import os, signal, sys, tempfile
  import tensorflow as tf
  from prompt_tuning.training import trainer

  def plus_one_above_zero(x):
    if x > 0:
      return x + 1
    return x

  list(tf.data.Dataset.range(3).map(plus_one_above_zero))
  generated = [n for n in os.listdir(tempfile.gettempdir()) if n.startswith("__autograph")]
  assert generated, "no autograph module was generated: the test proves nothing"
  stop = trainer._StopSignals()
  stop.arm()
  os.kill(os.getpid(), signal.SIGINT)
  assert stop.signal == signal.SIGINT
  os.kill(os.getpid(), signal.SIGINT)
  sys.exit("the second signal did not exit")
  """
)


def test_a_second_signal_exits_at_once_and_removes_the_autograph_files(tmp_path):
  script = tmp_path / "script.py"  # autograph converts only functions whose source it reads
  script.write_text(SCRIPT)
  own_tmp = tmp_path / "tmp"
  own_tmp.mkdir()
  env = dict(os.environ, TMPDIR=str(own_tmp), JAX_PLATFORMS="cpu")
  proc = subprocess.run(
    [sys.executable, str(script)],
    cwd=conftest.REPO_ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 128 + signal.SIGINT, proc.stderr[-3000:]
  assert not [n for n in os.listdir(own_tmp) if n.startswith("__autograph_generated")]
