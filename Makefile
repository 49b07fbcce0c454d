# make install: create .venv and install the package (editable) with test extras.
# make test:    run the test suite (installs first when .venv is missing).
# make demo:    prompt-tune the bundled tiny model on the bundled WordNet task (CPU, minutes).
# make sweep-demo: the mini sweep (prompt length x initialization x 2 seeds) on the same.
# make figures: redraw docs/scaling.md's figures and print its tables from results/ (no training).
# make scaling: the miniature Figure 1 (prompt vs model tuning across the bundled WordNet
#               family), one seed, the supersense task (CPU, 2 cores, ~25 minutes).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

SWEEP_DIR ?= build/sweep_demo
SCALING_DIR ?= build/scaling/figure1

.PHONY: install test demo sweep-demo scaling figures lint lint-check clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade -q pip
	$(PY) -m pip install -q -e '.[test]'
	# t5 without its declared dependencies (they would replace seqio and
	# tensorflow-datasets with nightly builds); setup.py lists what it imports.
	$(PY) -m pip install -q --no-deps 't5==0.9.4'
	touch $@

install: $(VENV)/.installed

# Test files are spread over PYTEST_WORKERS processes (pytest-xdist; a file's
# tests stay together, sharing their fixtures).
PYTEST_WORKERS ?= 2

test: $(VENV)/.installed
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile tests

demo: $(VENV)/.installed
	$(PY) scripts/demo.py

# Resumes (or skips, when done) the points already in SWEEP_DIR; rm -r it to start over.
sweep-demo: $(VENV)/.installed
	$(PY) -m prompt_tuning.sweep --sweep_file=configs/sweeps/wordnet_mini.gin \
	  --sweep_dir=$(SWEEP_DIR)

# A slice of configs/sweeps/wordnet_scaling_figure1.gin (docs/scaling.md): its points are
# those of the whole sweep, which the same SCALING_DIR then completes without rerunning them.
scaling: $(VENV)/.installed
	$(PY) -m prompt_tuning.sweep --sweep_file=configs/sweeps/wordnet_scaling_figure1.gin \
	  --sweep_dir=$(SCALING_DIR) --only=task=supersense --only=RANDOM_SEED=0
	@cat $(SCALING_DIR)/summary.md

# docs/scaling.md's figures and tables, redrawn from the shipped archives (results/), no training.
figures: $(VENV)/.installed
	$(PY) scripts/scaling_figures.py

# Formats and checks the code (settings: ruff.toml); lint-check only checks, as CI does.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff format prompt_tuning tests scripts
	$(VENV)/bin/ruff check prompt_tuning tests scripts

lint-check: $(VENV)/.installed
	$(VENV)/bin/ruff format --check prompt_tuning tests scripts
	$(VENV)/bin/ruff check prompt_tuning tests scripts

clean:
	rm -rf $(VENV) build *.egg-info
