"""Prompt tuning at scale (Lester et al., 2021) on JAX/Flax, without t5x."""

import setuptools

# Versions seen installing together from nothing on Python 3.11 (2026-11).
INSTALL_REQUIRES = [
    "absl-py>=2.1",
    "clu>=0.0.12,<0.1",
    "flax>=0.12.8,<0.13",
    "gin-config>=0.5,<0.6",
    "jax>=0.10.2,<0.11",
    "ml_dtypes>=0.5",  # bfloat16 on the host (jax needs it too)
    "numpy>=1.26,<3",
    "optax>=0.2.8,<0.3",
    "orbax-checkpoint>=0.12.8,<0.13",
    "safetensors>=0.5,<0.9",  # Hugging Face checkpoints
    "sentencepiece>=0.2,<0.3",
    "seqio==0.0.20",
    # seqio needs tensorflow-text, which requires the `tensorflow` distribution
    # itself; asking for tensorflow-cpu too would install two copies into one
    # package directory.
    "tensorflow>=2.21,<2.22",
    "tensorflow-datasets>=4.9.10,<4.10",
    "tensorboard>=2.21,<2.22",  # clu's summary writer needs it; tensorflow no longer pulls it in
    "tensorstore>=0.1.70",
    "matplotlib>=3.11,<3.12",  # the sweeps' plots
    # python -m prompt_tuning.serve: the HTTP server and its metrics.
    "fastapi>=0.165,<0.166",
    "uvicorn>=0.55,<0.56",
    "prometheus-client>=0.26,<0.27",
    # t5 0.9.4's data and evaluation modules (its GLUE/SuperGLUE preprocessors,
    # postprocessors and metrics, span corruption) import these. t5 itself is
    # installed with --no-deps (see the Makefile): its declared dependencies
    # pull seqio-nightly and tfds-nightly, which would overwrite seqio and
    # tensorflow-datasets in the same package directories.
    "babel>=2.18,<3",
    "editdistance>=0.8,<0.9",
    "immutabledict>=4.3",
    "nltk>=3.10,<4",
    "rouge_score==0.1.2",
    "sacrebleu>=2.6,<3",
    "scikit-learn>=1.9,<2",
]
T5_PACKAGE = "t5==0.9.4"  # installed with --no-deps
# The sweeps' `ray` executor (python -m prompt_tuning.sweep --executor=ray).
RAY_REQUIRES = ["ray>=2.60,<2.61"]
# The server on Ray Serve replicas (python -m prompt_tuning.serve --ray_replicas=N).
SERVE_REQUIRES = ["ray[serve]>=2.60,<2.61"]

# scripts/load_test.py (the server's load test); make test does not install it.
LOAD_REQUIRES = ["locust>=2.47,<2.48"]

TEST_REQUIRES = [
    "peft>=0.21.2,<0.22",
    "pytest>=8",
    "pytest-timeout>=2.4,<3",
    "pytest-xdist>=3.8,<4",  # make test runs the files on two workers
    "ruff==0.17.6",  # make lint / lint-check (CI): one formatter, one version
    "gcp-storage-emulator==2026.7.19",  # a GCS server on localhost for the gs:// tests
    "torch==2.13.0",
    "transformers>=5.23,<5.24",
    "openai>=3.63,<3.64",  # the official client, against the server
    "httpx2>=2.17,<3",  # the openai client's HTTP library: plain requests in the server's tests
] + SERVE_REQUIRES  # a local Ray instance runs the Ray executor's and Ray Serve's tests

setuptools.setup(
    name="prompt_tuning",
    version="0.1.0",
    description=(
        "Prompt tuning of frozen T5.1.1 models (Lester et al., 2021) on "
        "JAX/Flax, configured with gin, sharded over jax.sharding meshes."
    ),
    license="Apache 2.0",
    packages=setuptools.find_namespace_packages(include=["prompt_tuning", "prompt_tuning.*"]),
    include_package_data=True,
    package_data={"prompt_tuning": ["configs/**/*.gin", "data/wordnet/*",
                                    "data/wordnet_tiny/*", "data/wordnet_family/*",
                                    "data/wordnet_family/*/*/*"]},
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require={
        "test": TEST_REQUIRES,
        "ray": RAY_REQUIRES,
        "serve": SERVE_REQUIRES,
        "load": LOAD_REQUIRES,
    },
)
