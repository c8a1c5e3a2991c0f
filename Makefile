# The two commands of the README: `make demo` and `make test`. The venv is made once and reused;
# it is re-installed only when requirements.txt changes. The other targets are described in docs/.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint docs gpu-check clean-runs kaggle-bundle kaggle-push kaggle-status kaggle-output

setup: $(STAMP)

# pip compiles every installed file on one core; compileall does the same on every core (a quarter of the install's
# time on 2 cores), so that no process compiles torch's modules again where bytecode is not written back. Like pip,
# it skips the few files that do not compile (a package's Python 2 examples): its exit code is not the install's.
$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --no-compile -r requirements.txt
	$(PY) -m compileall -q -j 0 $$($(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])") > /dev/null || true
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m utils.pipeline --profile demo --run-dir runs/demo

test: $(STAMP)
	$(PY) -m pytest -n auto --dist worksteal

# The edit-test loop: every test that starts no process, notebook or compiler (those are marked slow)
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" -n auto --dist worksteal

# One GPU check (docs/performance.md, "Checking a GPU"): every GPU figure and target in one table,
# runs/gpu_check.md (and runs/gpu_check.json); the 5-minute form: make gpu-check GPU_CHECK_ARGS=--quick
gpu-check: $(STAMP)
	$(PY) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

# The measured tables of docs/performance.md, rendered from benchmarks/measured/*.json (docs/development.md)
docs: $(STAMP)
	$(PY) benchmarks/render_docs.py

lint: $(STAMP)
	$(PY) -m ruff check utils tests benchmarks
	$(PY) -m ruff format --check utils tests benchmarks

# Kaggle (docs/kaggle.md): e.g. make kaggle-push KAGGLE_ARGS="-p cartoon_dataset=owner/slug -p movie_dataset=owner/slug"
kaggle-bundle: $(STAMP)
	$(PY) -m utils.kaggle bundle $(KAGGLE_ARGS)

kaggle-push: $(STAMP)
	$(PY) -m utils.kaggle push $(KAGGLE_ARGS)

kaggle-status: $(STAMP)
	$(PY) -m utils.kaggle status $(KAGGLE_ARGS)

kaggle-output: $(STAMP)
	$(PY) -m utils.kaggle output $(KAGGLE_ARGS)

clean-runs:
	rm -rf runs
