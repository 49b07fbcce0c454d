"""Test setup: 8 simulated CPU devices (before jax is imported), shared fixtures."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pathlib  # pylint: disable=g-import-not-at-top
import shutil  # pylint: disable=g-import-not-at-top
import tempfile  # pylint: disable=g-import-not-at-top

import pytest  # pylint: disable=g-import-not-at-top

# One JAX compilation cache per test session, shared with the processes the
# end-to-end tests start (they compile the same tiny-model programs again and
# again). A cached executable gives the same numbers as a fresh compile, even
# one compiled under another core count (measured: the trained prompts are
# bitwise equal); it starts empty, so a fresh clone's timing is what CI sees.
_COMPILATION_CACHE = tempfile.mkdtemp(prefix="prompt_tuning_tests_jax_cache.")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _COMPILATION_CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")


def pytest_sessionfinish(session, exitstatus):
  del session, exitstatus
  shutil.rmtree(_COMPILATION_CACHE, ignore_errors=True)


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
VOCAB_PATH = REPO_ROOT.parent / "shared" / "data" / "t5_sentencepiece.model"
# The paper's tasks read T5's vocabulary from here (offline) rather than gs://.
os.environ.setdefault("PROMPT_TUNING_T5_VOCABULARY", str(VOCAB_PATH))
# mT5's vocabulary is not available offline: the mt5_ variants of the paper's
# tasks run on a stand-in SentencePiece model (the bundled WordNet one), which
# exercises the same preprocessing with a vocabulary other than T5's.
os.environ.setdefault(
  "PROMPT_TUNING_MT5_VOCABULARY",
  str(REPO_ROOT / "prompt_tuning" / "data" / "wordnet" / "spm.model"),
)


# One policy for the shared vocabulary (T5's real SentencePiece model, which
# the tests cannot download): in CI (`CI` set) a missing file stops the run
# before any test, naming the file; locally every test module that uses it is
# skipped with that reason (shown by `-rs`), and the rest run.
MISSING_VOCABULARY = (
  f"the T5 SentencePiece model is missing: {VOCAB_PATH} (shared/data/ beside the repository)"
)
_USES_VOCABULARY = ("t5_vocab", "VOCAB_PATH", "paper_tasks", "eval_tasks")


def pytest_collection_modifyitems(config, items):
  del config
  if VOCAB_PATH.exists():
    return
  if os.environ.get("CI"):
    pytest.exit(f"{MISSING_VOCABULARY}; CI needs it", returncode=1)
  skip = pytest.mark.skip(reason=MISSING_VOCABULARY)
  sources: dict[str, str] = {}
  for item in items:
    path = str(item.path)
    if path not in sources:
      sources[path] = pathlib.Path(path).read_text()
    if any(word in sources[path] for word in _USES_VOCABULARY):
      item.add_marker(skip)


@pytest.fixture(scope="session")
def t5_vocab_path() -> str:
  if not VOCAB_PATH.exists():
    pytest.skip(MISSING_VOCABULARY)
  return str(VOCAB_PATH)


@pytest.fixture(scope="session")
def t5_vocabulary(t5_vocab_path):
  import seqio  # pylint: disable=g-import-not-at-top

  return seqio.SentencePieceVocabulary(t5_vocab_path)
