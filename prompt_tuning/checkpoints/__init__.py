"""The loading layer: every on-disk format this project reads or writes.

* `layout`: a training run's directory (checkpoints, numpy prompts, config.gin).
* `checkpointer`: this project's orbax checkpoints of a run's train state.
* `readers`: a frozen model's parameters from INITIAL_CHECKPOINT_PATH (this
  project's, Hugging Face, t5x legacy and t5x Orbax), onto a mesh;
  `variables` creates or reads a model's variables onto their shards.
* `t5x`, `huggingface`: those formats' names and files; `storage`: local and
  gs:// paths through one mechanism (tensorstore's kvstores).
* `convert`: whole-checkpoint conversion; `peft` and `prompt_files`: prompts in
  every accepted form (.npy, numpy checkpoint directories, MODEL_DIRs, PEFT
  adapters).

It sits below `training/` and `inference/` and above `models/` (which takes
arrays, never paths) and `partitioning`.
"""
