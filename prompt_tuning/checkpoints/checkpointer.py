"""Checkpoints that hold only what changed, written atomically with orbax.

A prompt-tuning checkpoint holds the train state (prompt, its optimizer state,
step, RNG) plus a JSON record (data position, base checkpoint or random-init
seed, what trains); never the frozen model. A model-tuning state holds every
weight, so the same code saves the whole model then.

Orbax writes each step into a temporary directory and renames it when
complete, so a process killed mid-save leaves no half-written checkpoint as the
latest. Each save also writes every trained prompt as
`MODEL_DIR/numpy_checkpoints/checkpoint_<step>/<flattened.variable.path>.npy`
(`[P, E]` float32), itself written to a temporary directory and renamed, with
any further arrays the caller hands in under their relative names (the trainer's
`best/` prompt, so that a resumed run knows its best evaluation's prompt).
"""

import os
import shutil
import tempfile
from typing import Any, Mapping, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp

from prompt_tuning.checkpoints import layout

# A train state: a pytree with `step` (int scalar) and `trainable` (flat
# `{path: array}`) among its fields or keys, such as
# `training.train_state.TrainState`.
State = Any


def _field(state: State, name: str) -> Any:
  return state[name] if isinstance(state, Mapping) else getattr(state, name)


class Checkpointer:
  """Saves and restores train states under `MODEL_DIR/checkpoints`.

  Attributes:
    model_dir: the run's directory.
  """

  def __init__(self, model_dir: str, keep: Optional[int] = None):
    """Args: model_dir: the run's directory; keep: checkpoints kept (None: all)."""
    # Absolute: orbax refuses relative paths, and a run's command may name one
    # relative to where it runs (the archives' rerun commands do).
    self.model_dir = os.path.abspath(os.fspath(model_dir))
    try:
      os.makedirs(self.model_dir, exist_ok=True)
      probe = tempfile.NamedTemporaryFile(dir=self.model_dir, prefix=".write_test_")
      probe.close()
    except OSError as e:
      raise PermissionError(
        f"MODEL_DIR {self.model_dir} is not writable ({e.strerror}); "
        "choose a directory you can write to"
      ) from None
    # A save killed midway leaves only a temporary directory, which latest_step
    # ignores and the next start removes.
    options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=False, cleanup_tmp_directories=True
    )
    self._manager = ocp.CheckpointManager(
      layout.checkpoints_dir(self.model_dir),
      options=options,
      item_names=(layout.STATE_ITEM, layout.RECORD_ITEM),
    )
    self._keep = keep

  def latest_step(self) -> Optional[int]:
    """The newest complete checkpoint's step, or None."""
    self._manager.reload()
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    self._manager.reload()
    return sorted(self._manager.all_steps())

  def save(
    self,
    state: State,
    record: dict[str, Any],
    extra_arrays: Optional[Mapping[str, np.ndarray]] = None,
  ) -> int:
    """Writes `state` and the JSON-serializable `record` at `state.step`; returns the step.

    `extra_arrays` (`{relative .npy path: array}`) go into the step's numpy
    checkpoint directory beside its prompts (when a prompt trains).
    """
    step = int(jax.device_get(_field(state, "step")))
    self._write_numpy_prompts(step, _field(state, "trainable"), extra_arrays or {})
    self._manager.save(
      step,
      args=ocp.args.Composite(
        **{
          layout.STATE_ITEM: ocp.args.StandardSave(state),
          layout.RECORD_ITEM: ocp.args.JsonSave(record),
        }
      ),
      force=True,
    )
    self._manager.wait_until_finished()
    self._prune_numpy()
    return step

  def restore(
    self, step: int, abstract_state: State, shardings: Optional[State] = None
  ) -> tuple[State, dict[str, Any]]:
    """Reads the state at `step` onto `shardings` (structure from `abstract_state`)."""
    if shardings is not None:
      abstract_state = jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_state, shardings
      )
    restored = self._manager.restore(
      step,
      args=ocp.args.Composite(
        **{
          layout.STATE_ITEM: ocp.args.StandardRestore(abstract_state),
          layout.RECORD_ITEM: ocp.args.JsonRestore(),
        }
      ),
    )
    return restored[layout.STATE_ITEM], dict(restored[layout.RECORD_ITEM])

  def _write_numpy_prompts(
    self, step: int, variables: dict[str, Any], extra_arrays: Mapping[str, np.ndarray]
  ) -> None:
    prompts = {k: v for k, v in variables.items() if layout.is_prompt(k)}
    if not prompts or jax.process_index() > 0:  # prompts are replicated: one host writes
      return
    root = layout.numpy_dir(self.model_dir)
    os.makedirs(root, exist_ok=True)
    final = layout.numpy_step_dir(self.model_dir, step)
    for stale in os.listdir(root):  # left by a process killed while writing
      if stale.startswith(".tmp_checkpoint_"):
        shutil.rmtree(os.path.join(root, stale), ignore_errors=True)
    tmp = tempfile.mkdtemp(dir=root, prefix=f".tmp_checkpoint_{step}_")
    for path, value in prompts.items():
      np.save(
        os.path.join(tmp, layout.numpy_prompt_name(path)),
        np.asarray(jax.device_get(value), np.float32),
      )
    for name, value in extra_arrays.items():
      os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
      np.save(os.path.join(tmp, name), np.asarray(value, np.float32))
    if os.path.exists(final):
      shutil.rmtree(final)
    os.rename(tmp, final)

  def _prune_numpy(self) -> None:
    """Keeps the numpy prompts of the checkpoints orbax kept."""
    if self._keep is None or jax.process_index() > 0:
      return
    root = layout.numpy_dir(self.model_dir)
    if not os.path.isdir(root):  # nothing trained is a prompt (model tuning without one)
      return
    kept = set(self.all_steps())
    for name in os.listdir(root):
      step = layout.numpy_step(name)
      if step is not None and step not in kept:
        shutil.rmtree(os.path.join(root, name))
