# `make run` serves the demo org; `make test` runs the checks. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test setup lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(FLASK) db upgrade
	$(FLASK) demo
	@echo
	@echo "StratLink is serving the demo org at http://$(HOST):$(PORT)"
	@echo "Sign in: open the page and pick any demo user (a rep, a manager, the VP or the admin)."
	@echo
	$(FLASK) run --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/ingest.py --rows 100000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
