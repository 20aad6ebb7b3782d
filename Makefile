# The README's two commands: `make run` and `make test`. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_DIR ?= $(HOME)/.lanner

.PHONY: run test test-unit test-ha bench lint format infra-up infra-down infra-status clean ui

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[ha,dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/lanner server local --flows-dir examples/flows --data-dir $(DATA_DIR)

# Provisions Kafka and Elasticsearch (cached under ~/.cache/lanner/infra) before the suites.
test: $(STAMP)
	$(BIN)/python -m tests.infra fetch
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -p no:cacheprovider

# Only the suites on real Kafka and Elasticsearch (tests/ha); services start on first use.
test-ha: $(STAMP)
	$(BIN)/python -m tests.infra fetch
	$(BIN)/python -m pytest -p no:cacheprovider tests/ha

bench: $(STAMP)
	$(BIN)/python -m tests.bench

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
	rm -rf $(VENV) build *.egg-info
