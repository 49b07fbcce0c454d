# make install: create .venv and install the package (editable) with test extras.
# make test:    run the test suite (installs first when .venv is missing).
# make demo:    prompt-tune the bundled tiny model on the bundled WordNet task (CPU, minutes).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install test demo lint clean

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade -q pip
	$(PY) -m pip install -q -e '.[test]'
	# t5 without its declared dependencies (they would replace seqio and
	# tensorflow-datasets with nightly builds); setup.py lists what it imports.
	$(PY) -m pip install -q --no-deps 't5==0.9.4'
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest tests

demo: $(VENV)/.installed
	$(PY) scripts/demo.py

lint: $(VENV)/.installed
	$(PY) -m pip install -q 'ruff>=0.6'
	$(VENV)/bin/ruff format --line-length 100 --indent-width 2 prompt_tuning tests scripts
	$(VENV)/bin/ruff check --select E9,F prompt_tuning tests scripts

clean:
	rm -rf $(VENV) build *.egg-info
