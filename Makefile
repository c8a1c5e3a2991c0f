# The two commands of the README: `make demo` and `make test`. The venv is made once and reused;
# it is re-installed only when requirements.txt changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint clean-runs

setup: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m utils.pipeline --profile demo --run-dir runs/demo

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check utils tests benchmarks
	$(PY) -m ruff format --check utils tests benchmarks

clean-runs:
	rm -rf runs
