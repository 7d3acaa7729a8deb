# `make demo` and `make test` each build .venv on first use (and when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test drills fuzz lint bench vectors schemas openapi console-assets clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The one-area scenario and matrix, then an offender moving between two areas.
demo: $(STAMP)
	$(BIN)/mappa demo
	$(BIN)/mappa transfer demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# One worker per core: most end-to-end tests wait on the broker, not the CPU. Tests that
# run a Kafka cluster of their own share one worker (loadgroup), so only one such runs.
test: lint
	$(BIN)/pytest -n auto --dist loadgroup

# The fault drills alone, at full size (1,000 submissions each), printing their figures.
drills: $(STAMP)
	MAPPA_DRILL_SUBMISSIONS=1000 $(BIN)/pytest -m drill --no-cov -q -p no:randomly

# The fuzzers alone, at length (make test runs each property a few dozen times).
fuzz: $(STAMP)
	MAPPA_FUZZ_EXAMPLES=$${MAPPA_FUZZ_EXAMPLES:-5000} $(BIN)/pytest -m 'fuzz and not apache_kafka' \
		--no-cov -q -p no:randomly tests/hostile

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

# Re-copy the console's front-end files from the versions pinned in console/package-lock.json
# (npm ci, from the lock). GOV.UK Frontend's precompiled CSS looks for its fonts and images
# at /assets/; the copy points it at its own folder instead (a test checks all of this).
GOVUK_DIST := console/node_modules/govuk-frontend/dist/govuk
GOVUK_STATIC := broker/console/static/govuk
console-assets:
	cd console && npm ci --ignore-scripts --no-audit --no-fund
	rm -rf $(GOVUK_STATIC)/assets
	mkdir -p $(GOVUK_STATIC)
	cp -R $(GOVUK_DIST)/assets $(GOVUK_STATIC)/assets
	sed 's#url(/assets/#url(assets/#g' $(GOVUK_DIST)/govuk-frontend.min.css \
		> $(GOVUK_STATIC)/govuk-frontend.min.css
	cp $(GOVUK_DIST)/govuk-frontend.min.js $(GOVUK_STATIC)/govuk-frontend.min.js
	cp console/node_modules/axe-core/axe.min.js tests/browser/axe.min.js
	cp console/node_modules/axe-core/LICENSE tests/browser/axe-core-LICENSE

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage build *.egg-info
