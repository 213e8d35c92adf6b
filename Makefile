# mockbench: the two commands a user needs are `make up` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STATE ?= .mockbench/state
SCENARIO ?= hidden-documents
ARGS ?=
# make test over two processes (pytest-xdist): the whole suite took 179 s instead of 342 s on two cores.
# WORKERS=0 runs it in this process alone.
WORKERS ?= 2
# The ANS corpus beside the clone, as CI lays it out (../shared/corpus); without it the corpus tests skip and
# pytest's summary says why.
MOCKBENCH_CORPUS ?= $(abspath $(wildcard ../shared/corpus))
export MOCKBENCH_CORPUS

.PHONY: install install-test up test lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed ## create .venv and install mockbench (the runtime only)

install-test: $(VENV)/.installed-test ## add the test extras (pytest, the real clients, the browser driver...)

up: install ## start every door on localhost with the default scenario (fresh world each time)
	$(BIN)/mockbench up --state $(STATE) --reset --scenario $(SCENARIO) $(ARGS)

test: install-test ## the whole test suite
	$(BIN)/python -m pytest -n $(WORKERS) $(ARGS)

lint: install-test ## ruff, the import contract of docs/architecture.md (the layers), mypy (tests/test_types.py)
	$(BIN)/ruff check mockbench tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_architecture.py tests/test_types.py

docs: install ## regenerate docs/scenarios.md from the scenario schema
	$(BIN)/python -m mockbench.scenarios.docs > docs/scenarios.md

bench: install-test ## mockbench side by side with its peers, installed into .bench/ (QUICK=1: under two minutes)
	$(BIN)/python -m benchmarks.harness $(if $(QUICK),--quick,) $(ARGS)

clean:
	rm -rf $(VENV) .mockbench *.egg-info
