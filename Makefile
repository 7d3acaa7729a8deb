# `make demo` and `make test` each build .venv on first use (and when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-data console test drills fuzz lint bench vectors schemas openapi console-assets java clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The one-area scenario and matrix, then an offender moving between two areas.
demo: $(STAMP)
	$(BIN)/mappa demo
	$(BIN)/mappa transfer demo
	@echo "The web console on a demo deployment: make console (mappa serve --demo; Ctrl-C stops it)"

# The annual MAPPA report (docs/statistics.md) from generated data that reproduces two
# areas' published 2013-14 tables, each at full scale on its own embedded broker.
TABLES := broker/statistics/data/published-tables.json
demo-data: $(STAMP)
	$(BIN)/mappa demo-data annual --area staffordshire --year 2013-14 --tables $(TABLES) \
		--not-applicable zero
	$(BIN)/mappa demo-data annual --area hampshire --year 2013-14 --tables $(TABLES)

# The web console on a fresh demo deployment: prints its address and a sign-in per role.
console: $(STAMP)
	$(BIN)/mappa serve --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# One worker more than the cores: end-to-end tests spend about a quarter of their time
# waiting on brokers and servers, which a third worker fills (on 2 cores, pytest 13.5
# minutes rather than 16). Tests that run a Kafka cluster of their own share one worker
# (loadgroup), so only one such runs.
WORKERS ?= $(shell $(PYTHON) -c 'import os; print((os.cpu_count() or 1) + 1)')
test: lint
	$(BIN)/pytest -n $(WORKERS) --dist loadgroup

# The fault drills alone, at full size (1,000 submissions each), printing their figures.
drills: $(STAMP)
	MAPPA_DRILL_SUBMISSIONS=1000 $(BIN)/pytest -m drill --no-cov -q -p no:randomly

# The fuzzers alone, at length (make test runs each property a few dozen times).
fuzz: $(STAMP)
	MAPPA_FUZZ_EXAMPLES=$${MAPPA_FUZZ_EXAMPLES:-5000} $(BIN)/pytest -m 'fuzz and not apache_kafka' \
		--no-cov -q -p no:randomly tests/hostile

bench: $(STAMP)
	$(BIN)/mappa bench

# The Java library alone (sdk/java, Maven from Maven Central): build it and run its JUnit
# suites over every envelope and receipt vector. `make test` does this too.
java:
	cd sdk/java && mvn -B -q test

# Regenerate the envelope test vectors (tests check them for drift).
vectors: $(STAMP)
	$(BIN)/python -m tests.vectors.generate --fresh

# Regenerate the message types' JSON Schemas (tests check them for drift).
schemas: $(STAMP)
	$(BIN)/mappa schemas export

# Regenerate the checked-in OpenAPI document (a test checks it for drift).
openapi: $(STAMP)
	$(BIN)/mappa api openapi > docs/openapi.json

# Rebuild the console's front-end files from the versions pinned in console/package-lock.json
# (npm ci, from the lock). The stylesheet is compiled by dart-sass (pinned there too) from
# console/mappa.scss: GOV.UK Frontend's Sass without the GOV.UK brand's font, which is for
# services on GOV.UK only (broker/console/static/govuk/NOTICE.md). Its JavaScript and
# axe-core's are copied as they are. A test checks all of this.
GOVUK_DIST := console/node_modules/govuk-frontend/dist/govuk
GOVUK_STATIC := broker/console/static/govuk
console-assets:
	cd console && npm ci --ignore-scripts --no-audit --no-fund
	rm -rf $(GOVUK_STATIC)/assets
	mkdir -p $(GOVUK_STATIC)
	cd console && node_modules/.bin/sass --load-path=node_modules --style=compressed \
		--no-source-map --quiet-deps --silence-deprecation=import \
		mappa.scss ../$(GOVUK_STATIC)/govuk-frontend.min.css
	cp $(GOVUK_DIST)/govuk-frontend.min.js $(GOVUK_STATIC)/govuk-frontend.min.js
	cp console/node_modules/axe-core/axe.min.js tests/browser/axe.min.js
	cp console/node_modules/axe-core/LICENSE tests/browser/axe-core-LICENSE

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage build *.egg-info sdk/java/target
