# Two commands do everything on a fresh machine (see README):
#   make run    set up, then start the CDS Hooks service + SMART page + demo EHR on 127.0.0.1 (SQLite store)
#   make test   set up (Python venv, Chromium from Debian, the FHIR test server from npm), then run every test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FHIR_SERVER_DIR := sandbox/fhir_server_js

.PHONY: setup run test test-deps chromium fhir-server-deps bench load score clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

PORT ?= 8530
run: setup fhir-server-deps
	$(BIN)/cds97530 serve --host 127.0.0.1 --port $(PORT) --demo

# PostgreSQL tests (replicas, shared jti cache) run against the machine's server when it answers.
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
test: setup test-deps
	@if [ -z "$$CDS97530_TEST_DATABASE_URL" ] && $(BIN)/python -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1',5432)))" 2>/dev/null; then \
	  export CDS97530_TEST_DATABASE_URL='$(PG_URL)'; fi; \
	$(BIN)/python -m pytest

test-deps: chromium fhir-server-deps

# Debian's Chromium for the browser tests (Playwright never downloads a browser here).
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = "0" ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || echo "chromium install failed: browser tests will skip"; \
	else echo "chromium absent and not root: browser tests will skip"; fi

# The real FHIR R4 server (Medplum's fhir-router, in-memory) used by the integration tests.
fhir-server-deps:
	@if [ -f $(FHIR_SERVER_DIR)/package.json ]; then cd $(FHIR_SERVER_DIR) && npm ci --no-audit --no-fund --loglevel=error; fi

score: setup
	$(PYTHON) ../shared/tools/score_cases.py ../shared/cases/dev.jsonl --cli $(BIN)/cds97530 --show-misses

bench: setup
	$(BIN)/python benchmarks/bench_engine.py
	$(BIN)/python benchmarks/bench_cds.py

load: setup fhir-server-deps
	CDS97530_TEST_DATABASE_URL=$${CDS97530_TEST_DATABASE_URL:-$(PG_URL)} $(BIN)/python benchmarks/load_cds.py --replicas 2 --seconds 60 --concurrency 8

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis $(FHIR_SERVER_DIR)/node_modules
