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

bench: install ## mockbench side by side with its peers, installed into .bench/ (QUICK=1: under two minutes)
	$(BIN)/python -m benchmarks.harness $(if $(QUICK),--quick,) $(ARGS)

clean:
	rm -rf $(VENV) .mockbench *.egg-info
