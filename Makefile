# Routine tasks. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
JOBSCHED := ../$(BIN)/jobsched

.PHONY: demo test lint typecheck pytest faults bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The example shop app on the embedded SQLite default (examples/jobsched.db); safe to run again.
# --verbose logs each job's outcome; the summary line adds them up.
demo: $(VENV)/.installed
	cd examples && unset JOBSCHED_DATABASE_URL JOBSCHED_APP && \
	  $(JOBSCHED) migrate && \
	  ../$(BIN)/python schedule_demo_jobs.py && \
	  $(JOBSCHED) --verbose --app shop run-due && \
	  $(JOBSCHED) list

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

faults: $(STAMP)
	JOBSCHED_FAULT_ROUNDS=$${JOBSCHED_FAULT_ROUNDS:-20} $(BIN)/pytest -m faults $(PYTEST_ARGS)

# Every workload for each implementation, medians of 5 runs (BENCH_ARGS="--tiny" for a smoke run).
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache
