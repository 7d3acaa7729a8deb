# `make demo` and `make test` each build .venv on first use (and when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench vectors schemas openapi clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/mappa demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/mappa bench

# Regenerate the envelope test vectors (tests check them for drift).
vectors: $(STAMP)
	$(BIN)/python -m tests.vectors.generate --fresh

# Regenerate the message types' JSON Schemas (tests check them for drift).
schemas: $(STAMP)
	$(BIN)/mappa schemas export

# Regenerate the checked-in OpenAPI document (a test checks it for drift).
openapi: $(STAMP)
	$(BIN)/mappa api openapi > docs/openapi.json

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage build *.egg-info
