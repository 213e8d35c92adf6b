# mockbench: the two commands a user needs are `make up` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STATE ?= .mockbench/state
SCENARIO ?= hidden-documents
ARGS ?=

.PHONY: install up test lint bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed ## create .venv and install mockbench with its test extras

up: install ## start every door on localhost with the default scenario (fresh world each time)
	$(BIN)/mockbench up --state $(STATE) --reset --scenario $(SCENARIO) $(ARGS)

test: install ## the whole test suite
	$(BIN)/python -m pytest $(ARGS)

lint: install
	$(BIN)/ruff check mockbench tests benchmarks

docs: install ## regenerate docs/scenarios.md from the scenario schema
	$(BIN)/python -m mockbench.scenarios.docs > docs/scenarios.md

bench: install ## performance figures (QUICK=1 for a short run)
	$(BIN)/python benchmarks/core.py $(if $(QUICK),--quick,) --json benchmarks/results/core.json
	$(BIN)/python benchmarks/pfi.py $(if $(QUICK),--quick,) --json benchmarks/results/pfi.json
	$(BIN)/python benchmarks/dmp.py $(if $(QUICK),--quick,) --json benchmarks/results/dmp.json

clean:
	rm -rf $(VENV) .mockbench *.egg-info
