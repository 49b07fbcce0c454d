"""The modules TensorFlow's autograph generates for tf.data functions, removed on a hard exit.

Autograph writes each Python function it converts (seqio's preprocessors' map functions) to
`__autograph_generated_file*.py` in the temporary directory and removes them from an exit
handler. A process that leaves by `os._exit` (the one-line exits, a second Ctrl-C) runs no
exit handler, so it removes them itself.
"""

import os
import sys


def remove_generated_files() -> None:
  """Removes this process's autograph-generated modules from the temporary directory."""
  for name, module in list(sys.modules.items()):
    path = getattr(module, "__file__", None)
    if name.startswith("__autograph_generated_file") and path:
      try:
        os.remove(path)
      except OSError:
        pass  # gone already
