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

.PHONY: run manage test check-reliability check-mutants browser pgbouncer wrk oidc-provider screenshots install db-start db-stop demo-reset lint format bench bench-export bench-auth bench-inprocess bench-scale bench-http bench-writes clean

$(STAMP): requirements.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=python3 ...'"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $(STAMP)

install: $(STAMP)

# Run the app on http://$(HOST):$(PORT) with an idempotent demo. A DATABASE_URL whose database
# does not exist yet gets it created. The audit sealer (seal_audit) runs beside the server, with
# CODERAUTH_ELEVATION_WEBHOOK_URL set the webhook worker (deliver_webhooks) too, and with CODERAUTH_AUDIT_SINKS set
# the audit streamer (stream_audit); all stop with it.
run: install
	@DEBUG=$${DEBUG:-true} scripts/with-database.sh --create-database sh -c '\
		$(BIN)/python manage.py migrate --no-input && \
		$(BIN)/python manage.py seed_demo --url http://$(HOST):$(PORT)/ || exit; \
		$(BIN)/python manage.py seal_audit & workers=$$!; \
		if [ -n "$${CODERAUTH_ELEVATION_WEBHOOK_URL:-}" ]; then \
			$(BIN)/python manage.py deliver_webhooks & workers="$$workers $$!"; fi; \
		if [ -n "$${CODERAUTH_AUDIT_SINKS:-}" ]; then \
			$(BIN)/python manage.py stream_audit & workers="$$workers $$!"; fi; \
		trap "kill $$workers 2>/dev/null; wait $$workers" EXIT; trap "exit 130" INT; trap "exit 143" TERM; \
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

# The pooler tests (tests/reliability/test_pgbouncer.py) start Debian's PgBouncer on loopback as the current user;
# the package's own service is never used.
pgbouncer:
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq pgbouncer)

# The single sign-on tests (tests/sso/) start the certified OpenID Provider of npm's oidc-provider package on
# loopback; npm installs the version pinned in tests/sso/provider/package-lock.json into .cache/oidc-provider/.
# Without node those tests skip, saying why.
OIDC_PROVIDER_HOME := .cache/oidc-provider
oidc-provider: $(OIDC_PROVIDER_HOME)/.installed
$(OIDC_PROVIDER_HOME)/.installed: tests/sso/provider/package.json tests/sso/provider/package-lock.json
	@if command -v npm >/dev/null; then \
		mkdir -p $(OIDC_PROVIDER_HOME) && cp tests/sso/provider/package.json tests/sso/provider/package-lock.json $(OIDC_PROVIDER_HOME)/ && \
		(cd $(OIDC_PROVIDER_HOME) && npm ci --silent --no-audit --no-fund) && touch $@; \
	else echo "npm not found: the single sign-on tests will skip"; fi

# The HTTP benchmarks (bench-auth, bench-http) drive gunicorn with Debian's wrk.
wrk:
	@command -v wrk >/dev/null || \
		($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq wrk)

# The whole suite against a throwaway database (pytest-django creates and drops it).
test: install browser pgbouncer oidc-provider lint
	@scripts/with-database.sh $(BIN)/python -m pytest $(PYTEST_ARGS)

# The long runs: races on every write path, database faults, two app servers, long schema fuzzing.
check-reliability: install browser pgbouncer
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
# Each bench-* target prints its results as Markdown; BENCH_WRITE=--write (set by `make bench`) also
# replaces the bench's own section of docs/benchmarks.md.
bench-export: install
	@scripts/with-database.sh $(BIN)/python bench/export_bench.py $(BENCH_ARGS) $(BENCH_WRITE)

# The agent route's hot path against DRF's plaintext TokenAuthentication, over HTTP (gunicorn, one sync
# worker; wrk when installed, else httpx); uses its own database (coderauth_bench_auth) and drops it after.
bench-auth: install wrk
	@scripts/with-database.sh $(BIN)/python bench/agent_auth_bench.py $(BENCH_AUTH_ARGS) $(BENCH_WRITE)

# The agent routes in one process (Django's test client) next to a view without authentication and three peers:
# DRF TokenAuthentication, django-rest-knox, djangorestframework-api-key. The peers and the profiler are installed
# here for the bench only, never through requirements.txt. Database coderauth_bench_inprocess, dropped after.
bench-inprocess: install
	@$(BIN)/python -m pip install --quiet django-rest-knox djangorestframework-api-key pyinstrument
	@scripts/with-database.sh $(BIN)/python bench/inprocess_bench.py $(BENCH_INPROCESS_ARGS) $(BENCH_WRITE)

# The big lists, the audit filters, the permissions report and a mode change on a database seeded by seed_scale
# (10,000 workspaces, 20,000 agents, 100,000 tokens, 1,000,000 audit events; BENCH_SCALE_ARGS="--events 100000"
# for a quick run); uses its own database (coderauth_bench_scale) and drops it after.
bench-scale: install
	@scripts/with-database.sh $(BIN)/python bench/scale_bench.py $(BENCH_SCALE_ARGS) $(BENCH_WRITE)

# /healthz, the agent manifest and app-status under gunicorn (3 sync workers) and wrk at 1, 8 and 32
# connections, 30 s a cell (BENCH_HTTP_ARGS="--duration 5" for a quick run); database coderauth_bench_http.
bench-http: install wrk
	@scripts/with-database.sh $(BIN)/python bench/http_load_bench.py $(BENCH_HTTP_ARGS) $(BENCH_WRITE)

# Audited writes/s (token issue, mode change) at 1, 8 and 32 concurrent clients, with and without the audit
# row, and the wait for the audit chain's lock; database coderauth_bench_writes.
bench-writes: install
	@scripts/with-database.sh $(BIN)/python bench/audited_writes_bench.py $(BENCH_WRITES_ARGS) $(BENCH_WRITE)

# Every benchmark in turn (about 20 minutes), each with --write: it rewrites each bench's section of
# docs/benchmarks.md. A bench that misses its target exits 1; the others still run, and `make bench` then
# fails naming them. The BENCH_*_ARGS variables still apply.
BENCHES := bench-export bench-auth bench-inprocess bench-http bench-writes bench-scale
bench: install wrk
	@failed=""; \
	for target in $(BENCHES); do \
		echo "== make $$target"; \
		$(MAKE) --no-print-directory $$target BENCH_WRITE=--write || failed="$$failed $$target"; \
	done; \
	if [ -n "$$failed" ]; then echo "make bench: failed or missed a target:$$failed" >&2; exit 1; fi; \
	echo "make bench: every benchmark met its target"

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean: db-stop
	rm -rf $(VENV) .pgdata .pytest_cache .ruff_cache $(OIDC_PROVIDER_HOME)
