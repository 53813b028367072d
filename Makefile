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

.PHONY: run manage test check-reliability check-mutants browser screenshots install db-start db-stop demo-reset lint format bench bench-export bench-auth clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

install: $(STAMP)

# Run the app on http://$(HOST):$(PORT) with an idempotent demo. A DATABASE_URL whose database
# does not exist yet gets it created. With CODERAUTH_ELEVATION_WEBHOOK_URL set, the webhook worker
# (deliver_webhooks) runs beside the server and is stopped when the server ends.
run: install
	@DEBUG=$${DEBUG:-true} scripts/with-database.sh --create-database sh -c '\
		$(BIN)/python manage.py migrate --no-input && \
		$(BIN)/python manage.py seed_demo --url http://$(HOST):$(PORT)/ || exit; \
		[ -n "$${CODERAUTH_ELEVATION_WEBHOOK_URL:-}" ] || exec $(BIN)/python manage.py runserver $(HOST):$(PORT); \
		$(BIN)/python manage.py deliver_webhooks & worker=$$!; \
		trap "kill $$worker 2>/dev/null; wait $$worker" EXIT; trap "exit 130" INT; trap "exit 143" TERM; \
		$(BIN)/python manage.py runserver $(HOST):$(PORT)'

# Any manage.py command against the database and the development defaults of `make run`, e.g.
#   make manage ARGS="createsuperuser"    make manage ARGS="verify_audit"    make manage ARGS="shell"
# Pending migrations are applied first, as `make run` does. While `make run` is up it shares its
# embedded PostgreSQL and leaves it running.
manage: install
	@DEBUG=$${DEBUG:-true} scripts/with-database.sh --create-database sh -c '\
		{ $(BIN)/python manage.py migrate --check -v 0 >/dev/null 2>&1 || $(BIN)/python manage.py migrate --no-input; } && \
		exec $(BIN)/python manage.py "$$@"' manage $(ARGS)

# The browser tests drive Debian's Chromium through Playwright; no browser is ever downloaded.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null || test -x /usr/bin/chromium || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium)

# The whole suite against a throwaway database (pytest-django creates and drops it).
test: install browser lint
	@scripts/with-database.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

# The long runs: races on every write path, database faults, two app servers, long schema fuzzing.
check-reliability: install browser
	@scripts/with-database.sh $(BIN)/python -m pytest -m reliability $(PYTEST_ARGS)

# Mutation testing of the guards (scripts/mutants.py): each mutant must make the suite fail. Not run in CI
# (about 20 minutes); docs/security.md records the kill rate.
check-mutants: install
	@scripts/with-database.sh $(BIN)/python scripts/mutants.py $(MUTANTS_ARGS)

# Regenerate docs/screenshots/*.png: the browser tests seed a demo and photograph its pages.
screenshots: install browser
	@CODERAUTH_SCREENSHOTS=1 scripts/with-database.sh $(BIN)/python -m pytest tests/browser/test_screenshots.py -q

demo-reset: install
	@DEBUG=$${DEBUG:-true} scripts/with-database.sh --create-database $(BIN)/python manage.py seed_demo --reset --url http://$(HOST):$(PORT)/

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
