# The two commands of the README: `make demo` and `make test`. The venv is made once and reused;
# it is re-installed only when requirements.txt or requirements-dev.txt changes. The other targets are described in
# docs/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help setup demo test test-fast lint docs gpu-check clean-runs kaggle-bundle kaggle-push kaggle-status kaggle-output
.DEFAULT_GOAL := help

help:  ## this list of targets (what `make` alone prints)
	@echo "make TARGET, where TARGET is one of:"
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-z-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP)  ## create .venv and install requirements-dev.txt: a run's needs and the test tools

# requirements-dev.txt: requirements.txt (what a run needs, all the Kaggle kernel installs) and the test and lint
# tools; a change to either installs again.
# pip compiles every installed file on one core; compileall does the same on every core (a quarter of the install's
# time on 2 cores), so that no process compiles torch's modules again where bytecode is not written back. Like pip,
# it skips the few files that do not compile (a package's Python 2 examples): its exit code is not the install's.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -r requirements-dev.txt
	$(PY) -m compileall -q -j 0 $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") > /dev/null || true
	touch $(STAMP)

demo: $(STAMP)  ## the whole pipeline on generated data, offline, on a CPU -> runs/demo/
	$(PY) -m utils.pipeline --profile demo --run-dir runs/demo

# The kit's own modules are compiled first: where bytecode is not written back (PYTHONDONTWRITEBYTECODE), every
# process of the suite would compile them again.
test: $(STAMP)  ## the whole test suite (CPU, offline)
	$(PY) -m compileall -q utils tests benchmarks > /dev/null
	$(PY) -m pytest -n auto --dist worksteal

# The edit-test loop: every test that starts no process, notebook or compiler (those are marked slow)
test-fast: $(STAMP)  ## the quick tier: no processes, notebooks or compilers
	$(PY) -m pytest -m "not slow" -n auto --dist worksteal

# One GPU check (docs/performance.md, "Checking a GPU"): every GPU figure and target in one table,
# runs/gpu_check.md (and runs/gpu_check.json); the 5-minute form: make gpu-check GPU_CHECK_ARGS=--quick
gpu-check: $(STAMP)  ## every GPU figure and target in one table (docs/performance.md)
	$(PY) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

# From benchmarks/measured/: docs/performance.md's figures, each result file's full table (<name>.md beside it)
# and docs/results.md's report excerpt
docs: $(STAMP)  ## render the docs' measured tables and report excerpt from benchmarks/measured/
	$(PY) benchmarks/render_docs.py

lint: $(STAMP)  ## ruff check and format check
	$(PY) -m ruff check utils tests benchmarks
	$(PY) -m ruff format --check utils tests benchmarks

# Kaggle (docs/kaggle.md): e.g. make kaggle-push KAGGLE_ARGS="-p cartoon_dataset=owner/slug -p movie_dataset=owner/slug"
kaggle-bundle: $(STAMP)  ## the Kaggle kernel's files (KAGGLE_ARGS="-p ...")
	$(PY) -m utils.kaggle bundle $(KAGGLE_ARGS)

kaggle-push: $(STAMP)  ## push the kernel to Kaggle (docs/kaggle.md)
	$(PY) -m utils.kaggle push $(KAGGLE_ARGS)

kaggle-status: $(STAMP)  ## follow the pushed kernel until it ends
	$(PY) -m utils.kaggle status $(KAGGLE_ARGS)

kaggle-output: $(STAMP)  ## fetch the kernel's output
	$(PY) -m utils.kaggle output $(KAGGLE_ARGS)

clean-runs:  ## delete runs/
	rm -rf runs
