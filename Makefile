# The README's two commands live here: `make demo` and `make test`. `make test` runs the unit
# tests twice: on the Python core, then on the core compiled with mypyc (as the image runs it).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint validate

$(BIN)/hourglass: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/hourglass

setup: $(BIN)/hourglass

demo: setup
	$(BIN)/hourglass demo

validate: setup
	$(BIN)/hourglass validate playbooks/

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup
	scripts/ensure-redis
	scripts/ensure-compose
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q
	$(BIN)/python -m bench.compiled --pytest -q tests/unit
