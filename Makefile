# Ledgerlink — what people type. `make run` for the demo, `make test` for the whole suite,
# `make test-fast` for the tier without browser, worker processes, fault injection or slow tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app app
HOST ?= 127.0.0.1
PORT ?= 5000
VENDOR := portal/static/vendor
# pytest-xdist workers: each gets a database and a redis-server of its own (tests/conftest.py).
TEST_WORKERS ?= 2
FAST_TIER := not (e2e or workers or faults or slow)

.PHONY: run test test-fast worker lint fmt install vendor migrate bench proof lock clean \
	system-run system-test system-test-fast

# System packages first (scripts/system-packages installs what is missing, or says in one line
# what to run): nothing else is installed or created before they are there.
system-run:
	@PYTHON=$(PYTHON) scripts/system-packages run
system-test:
	@PYTHON=$(PYTHON) scripts/system-packages test
system-test-fast:
	@PYTHON=$(PYTHON) scripts/system-packages test-fast

# Python packages from the lock files (exact versions and hashes, see requirements/), then the
# project itself without its dependencies. The demo's venv holds only what the demo needs; the
# tests' adds pytest, Playwright, hypothesis, schemathesis and the providers' client libraries.
define venv_from
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r $(1)
	PYTHONWARNINGS=ignore $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
endef

$(VENV)/.run-installed: requirements/run.txt pyproject.toml | system-run
	$(call venv_from,requirements/run.txt)
	touch $@

$(VENV)/.test-installed: requirements/test.txt pyproject.toml | system-test-fast
	$(call venv_from,requirements/test.txt)
	touch $@ $(VENV)/.run-installed

install: $(VENV)/.test-installed

# Front-end libraries for the portal; the tests also drive the npm bexio client (a devDependency).
$(VENDOR)/.installed: package.json package-lock.json | system-run
	npm ci --omit=dev --no-audit --no-fund --loglevel=error
	mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js $(VENDOR)/htmx.min.js
	cp node_modules/@picocss/pico/css/pico.min.css $(VENDOR)/pico.min.css
	touch $@

node_modules/.dev-installed: package.json package-lock.json $(VENDOR)/.installed | system-test-fast
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

vendor: $(VENDOR)/.installed

migrate: install
	$(FLASK) db upgrade

# The demo: SQLite in instance/, jobs on an in-process fake Redis run by a worker thread,
# and the provider sandboxes mounted under /sandbox on the same server.
run: system-run $(VENV)/.run-installed $(VENDOR)/.installed
	@LEDGERLINK_EMBEDDED_WORKER=false $(FLASK) db upgrade 2>&1 | grep -v '^INFO' || true
	@LEDGERLINK_EMBEDDED_WORKER=false $(FLASK) seed demo --if-empty
	@LEDGERLINK_EMBEDDED_WORKER=false $(FLASK) seed connections --if-empty
	@LEDGERLINK_EMBEDDED_WORKER=false $(FLASK) seed staff
	@echo "Ledgerlink is starting on http://$(HOST):$(PORT)/  (sandboxes at http://$(HOST):$(PORT)/sandbox/)"
	LEDGERLINK_MOUNT_SANDBOX=true LEDGERLINK_SANDBOX_URL=http://$(HOST):$(PORT)/sandbox \
		$(BIN)/waitress-serve --host $(HOST) --port $(PORT) --threads 8 --call app:create_app

# The whole suite: PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set, else a SQLite file
# and private redis-servers. TEST_WORKERS=0 runs it in one process.
test: system-test $(VENV)/.test-installed node_modules/.dev-installed
	@started=$$SECONDS; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --junitxml=test-results/junit.xml $(PYTEST_ARGS); \
	status=$$?; echo "make test: $$((SECONDS - started)) s"; exit $$status

# The fast tier, for daily work: no browser, no worker processes, no fault injection, nothing slow.
test-fast: system-test-fast $(VENV)/.test-installed node_modules/.dev-installed
	@started=$$SECONDS; \
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile -m "$(FAST_TIER)" $(PYTEST_ARGS); \
	status=$$?; echo "make test-fast: $$((SECONDS - started)) s"; exit $$status

# The proof suite (fault matrix, refresh races, bad input, security, journeys) and the benchmarks,
# with a Markdown report in proof/out/REPORT.md. PROOF_SCALE=ci for the small sizes CI uses.
proof: system-test install node_modules/.dev-installed
	$(BIN)/python proof/run.py $(PROOF_ARGS)

# A real worker process (needs REDIS_URL); run as many as you like, on any machine.
worker: system-run $(VENV)/.run-installed
	@test -n "$$REDIS_URL" || { echo "Set REDIS_URL (and DATABASE_URL) for a worker process."; exit 2; }
	$(BIN)/rq worker --with-scheduler -w jobs.worker.LedgerlinkWorker -S rq.serializers.JSONSerializer \
		-u "$$REDIS_URL" sync history default

# Ruff's checks and format, then the type checker over portal/ and jobs/ ([tool.mypy] in pyproject.toml).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# Re-resolve the lock files from pyproject.toml's ranges (uv, in a venv of its own; see README).
# Versions already locked are kept unless UPGRADE=--upgrade.
LOCK = $(VENV)-lock/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock" $(UPGRADE)
lock:
	test -x $(VENV)-lock/bin/uv || { $(PYTHON) -m venv $(VENV)-lock && $(VENV)-lock/bin/pip install --quiet 'uv>=0.5,<1'; }
	$(LOCK) --extra test --extra embedded -o requirements/test.txt pyproject.toml requirements/build.in
	$(LOCK) --extra embedded -c requirements/test.txt -o requirements/run.txt pyproject.toml requirements/build.in
	$(LOCK) -c requirements/test.txt -o requirements/production.txt pyproject.toml requirements/build.in

clean:
	rm -rf $(VENV) $(VENV)-lock node_modules $(VENDOR) .pytest_cache .ruff_cache .mypy_cache
