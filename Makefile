# The README's two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= $(HOME)/.lanner

.PHONY: run test test-unit test-ha test-faults bench lint format infra-up infra-down infra-status clean ui ui-test chromium prometheus
UI := webserver/ui
CHROMIUM := /usr/bin/chromium

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[ha,dev]'
	@touch $(STAMP)

install: $(STAMP)

# The web UI: `npm ci` from the committed lock, then `vite build` into webserver/static/ui. Each
# step runs again only when its inputs changed (a fresh clone runs both), which saves their
# 15-60 s on every later `make test`.
UI_DEPS := $(UI)/node_modules/.ci-done
UI_BUILT := webserver/static/ui/index.html
UI_SOURCES := $(shell find $(UI)/src -type f 2>/dev/null) $(UI)/index.html $(UI)/vite.config.ts \
	$(UI)/tsconfig.json

$(UI_DEPS): $(UI)/package.json $(UI)/package-lock.json
	cd $(UI) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(UI_BUILT): $(UI_DEPS) $(UI_SOURCES)
	cd $(UI) && npx vite build --logLevel warn
	@touch $@

ui: $(UI_BUILT)

# Type check and Vitest component tests of the UI.
ui-test: ui
	cd $(UI) && npm run --silent typecheck && npx vitest run

# The end-to-end tests drive Debian's chromium, never a browser Playwright downloads.
chromium:
	@test -x $(CHROMIUM) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

# The metrics test (tests/ha/test_prometheus_kafka.py) starts Debian's prometheus on a free port.
PROMETHEUS := /usr/bin/prometheus
prometheus:
	@test -x $(PROMETHEUS) || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus)

run: $(STAMP) ui
	$(BIN)/lanner server local --flows-dir examples/flows --data-dir $(DATA_DIR)

# Provisions Kafka and Elasticsearch and builds helm (cached under ~/.cache/lanner/infra) before
# the suites.
test: $(STAMP) ui-test chromium prometheus
	$(BIN)/python -m tests.infra fetch
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -p no:cacheprovider

# Only the suites on real Kafka and Elasticsearch (tests/ha); services start on first use.
test-ha: $(STAMP) prometheus
	$(BIN)/python -m tests.infra fetch
	$(BIN)/python -m pytest -p no:cacheprovider tests/ha

# The fault-injection suite (tests/faults, marker `faults`, left out of `make test` by pyproject's
# addopts): its own Kafka broker and Elasticsearch node, every component a process, faults under
# load; prints the table of figures and invariants (also written to build/faults-report.md).
test-faults: $(STAMP)
	$(BIN)/python -m tests.infra fetch
	$(BIN)/python -m pytest -p no:cacheprovider -m faults tests/faults --durations=10

bench: $(STAMP)
	$(BIN)/python -m tests.infra fetch
	$(BIN)/python -m tests.bench
	$(BIN)/python -m tests.bench.history
	$(BIN)/python -m tests.bench.indexer_lag
	$(BIN)/python -m tests.bench.scheduler

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

infra-up: $(STAMP)
	$(BIN)/python -m tests.infra up

infra-down: $(STAMP)
	$(BIN)/python -m tests.infra down

infra-status: $(STAMP)
	$(BIN)/python -m tests.infra status

clean:
	rm -rf $(VENV) build *.egg-info webserver/static/ui $(UI)/node_modules
