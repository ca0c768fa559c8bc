# Ledgerlink — what people type. `make run` for the demo, `make test` for the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000
VENDOR := portal/static/vendor

.PHONY: run test worker lint fmt install vendor migrate bench proof clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

$(VENDOR)/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp node_modules/@picocss/pico/css/pico.min.css $(VENDOR)/pico.min.css
	touch $@

vendor: $(VENDOR)/.installed

migrate: install
	$(FLASK) db upgrade

# The demo: SQLite in instance/, jobs on an in-process fake Redis run by a worker thread,
# and the provider sandboxes mounted under /sandbox on the same server.
run: install vendor
	@LEDGERLINK_EMBEDDED_WORKER=false $(FLASK) db upgrade 2>&1 | grep -v '^INFO' || true
	@LEDGERLINK_EMBEDDED_WORKER=false $(FLASK) seed demo --if-empty
	@LEDGERLINK_EMBEDDED_WORKER=false $(FLASK) seed staff
	@echo "Ledgerlink is starting on http://$(HOST):$(PORT)/  (sandboxes at http://$(HOST):$(PORT)/sandbox/)"
	LEDGERLINK_MOUNT_SANDBOX=true LEDGERLINK_SANDBOX_URL=http://$(HOST):$(PORT)/sandbox \
		$(BIN)/waitress-serve --host $(HOST) --port $(PORT) --threads 8 --call app:create_app

# The whole suite: PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set, else embedded.
test: install vendor
	$(BIN)/python -m pytest --junitxml=test-results/junit.xml $(PYTEST_ARGS)

# The proof suite (fault matrix, refresh races, bad input, security, journeys) and the benchmarks,
# with a Markdown report in proof/out/REPORT.md. PROOF_SCALE=ci for the small sizes CI uses.
proof: install vendor
	$(BIN)/python proof/run.py $(PROOF_ARGS)

# A real worker process (needs REDIS_URL); run as many as you like, on any machine.
worker: install
	@test -n "$$REDIS_URL" || { echo "Set REDIS_URL (and DATABASE_URL) for a worker process."; exit 2; }
	$(BIN)/rq worker --with-scheduler -w jobs.worker.LedgerlinkWorker -S rq.serializers.JSONSerializer \
		-u "$$REDIS_URL" sync history default

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) node_modules $(VENDOR) .pytest_cache .ruff_cache
