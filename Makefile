# The two commands of the README: `make run` and `make test`. Everything else is a helper.
# Only Python 3.11 and make are needed: the embedded PostgreSQL comes from the pgserver
# package unless DATABASE_URL points at a server.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
export XDG_RUNTIME_DIR ?= /tmp

.PHONY: run test browser install db-start db-stop demo-reset lint format bench bench-export bench-auth clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

install: $(STAMP)

# Run the app on http://$(HOST):$(PORT) with an idempotent demo.
run: install
	@DEBUG=$${DEBUG:-true} scripts/with-database.sh sh -c '\
		$(BIN)/python manage.py migrate --no-input && \
		$(BIN)/python manage.py seed_demo --url http://$(HOST):$(PORT)/ && \
		exec $(BIN)/python manage.py runserver $(HOST):$(PORT)'

# The browser tests drive Debian's Chromium through Playwright; no browser is ever downloaded.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium)

# The whole suite against a throwaway database (pytest-django creates and drops it).
test: install browser lint
	@scripts/with-database.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

demo-reset: install
	@DEBUG=$${DEBUG:-true} scripts/with-database.sh $(BIN)/python manage.py seed_demo --reset --url http://$(HOST):$(PORT)/

db-start: install
	@$(BIN)/python -m coderauth.embedded_db start

db-stop:
	@test -x $(BIN)/python && $(BIN)/python -m coderauth.embedded_db stop || true

# Export 1,000,000 audit rows as CSV through the real endpoint (gunicorn) next to a plain COPY;
# uses its own database (coderauth_bench) on the server of DATABASE_URL and drops it after.
bench-export: install
	@scripts/with-database.sh $(BIN)/python bench/export_bench.py $(BENCH_ARGS)

# The agent route's hot path against DRF's plaintext TokenAuthentication, over HTTP (gunicorn, one sync
# worker; wrk when installed, else httpx); uses its own database (coderauth_bench_auth) and drops it after.
bench-auth: install
	@scripts/with-database.sh $(BIN)/python bench/agent_auth_bench.py $(BENCH_AUTH_ARGS)

# Every benchmark; the figures are recorded in docs/benchmarks.md.
bench: bench-export bench-auth

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean: db-stop
	rm -rf $(VENV) .pgdata .pytest_cache .ruff_cache
