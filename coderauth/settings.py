"""Settings, read from the environment with django-environ (see .env.example). Tests use coderauth/settings_test.py."""

from __future__ import annotations

import hashlib
import hmac
import warnings
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set the SECRET_KEY environment variable (required when DEBUG is off).")
    SECRET_KEY = "insecure-development-key-never-use-in-production"


def _derived_key(purpose: str) -> str:
    """A per-purpose key derived from SECRET_KEY, so one secret is enough to run."""
    return hmac.new(SECRET_KEY.encode(), f"coderauth:{purpose}".encode(), hashlib.sha256).hexdigest()


ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "core.http.errors.csrf_failure"

INSTALLED_APPS = [
    # Before django.contrib.auth: the first app wins a command name, and agents' `changepassword` audits the
    # change and revokes the user's sessions and tokens.
    "agents",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "policies",
    "audit",
    "ui",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    # Cache-Control: no-store on every response of a view that hands out a token or a secret.
    "core.http.no_store.NoStoreSecretsMiddleware",
    # Static files straight from the app process (after collectstatic), compressed and cacheable.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Times every request by its URL name and status class, for Prometheus (GET /metrics; docs/operations.md).
    "core.http.metrics.RequestMetricsMiddleware",
    "core.http.middleware.RequestContextMiddleware",
    "core.http.middleware.ApiErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "coderauth.urls"
WSGI_APPLICATION = "coderauth.wsgi.application"
ASGI_APPLICATION = "coderauth.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL always. `make run`, `make test` and `make manage` point DATABASE_URL at the embedded server when the
# environment does not set one; without it, guessing a server would quietly use the wrong database.
if not env.str("DATABASE_URL", default=""):
    raise ImproperlyConfigured(
        "Set DATABASE_URL (postgres://...), or run through `make run`, `make test` or `make manage ARGS=...`, "
        "which start the embedded PostgreSQL."
    )
DATABASES = {"default": env.db("DATABASE_URL")}
_socket_host = DATABASES["default"].get("OPTIONS", {}).pop("host", None)
if _socket_host and not DATABASES["default"].get("HOST"):
    DATABASES["default"]["HOST"] = _socket_host
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...).")
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str("TEST_DATABASE_NAME", default="test_coderauth")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Throttle counters must be visible to every app process, so they live
# in the database rather than in process memory.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "coderauth_cache",
        # Past MAX_ENTRIES live rows Django drops a third of them, live throttle counters included: Django's
        # default of 300 would let anyone who spreads guesses over many usernames wipe the counters.
        "OPTIONS": {"MAX_ENTRIES": 100_000},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").exists() else []
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Compressed copies, no manifest: pages render even before collectstatic has run (tests, runserver).
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Before collectstatic (runserver, tests) STATIC_ROOT does not exist yet; runserver serves from the app
# folders itself, so WhiteNoise's warning about it is noise there.
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# Web UI sessions: secure cookies outside DEBUG, an 8-hour working day.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("TRUST_X_FORWARDED_PROTO", default=False) else None
)

# Hardening: HTTPS, HSTS and the Content-Security-Policy.
# HTTPS is on by default outside DEBUG: plain HTTP is redirected to HTTPS, and browsers are told (HSTS) to use
# nothing else for a year. Behind a TLS proxy, set TRUST_X_FORWARDED_PROTO too, or every request looks like plain
# HTTP and is redirected forever. `make run` (DEBUG, http://127.0.0.1) runs without it, and so do the tests
# (settings_test.py: their client and live server speak plain HTTP).
SERVED_OVER_HTTPS = env.bool("SERVED_OVER_HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=SERVED_OVER_HTTPS)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 86400 if SERVED_OVER_HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading binds the whole registrable domain into browsers for months: the domain owner's decision, so it is
# off unless asked for, and Django's reminder about it (security.W021) is silenced rather than answered for them.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = ["security.W021"]
# No inline script or style anywhere in the UI: everything comes from this origin's static files. The API docs
# pages add the little they need in core/http/schema_views.py.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "base-uri": ["'none'"],
        "object-src": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
}

DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

REST_FRAMEWORK = {
    # Deny by default: every view needs an authenticated principal unless it opts out.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "agents.authentication.UserTokenAuthentication",
        "agents.authentication.UserSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.http.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "core.http.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "core.http.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "coderauth API",
    "DESCRIPTION": "Least-privilege control plane for workspace agents. See the README.",
    "VERSION": "2.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v2",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# coderauth's own settings. Keys derive from SECRET_KEY unless set on their own, so
# rotating one does not force rotating the others.
CODERAUTH_TOKEN_DIGEST_KEY = env.str("CODERAUTH_TOKEN_DIGEST_KEY", default="") or _derived_key("token-digest")
CODERAUTH_ENCRYPTION_KEY = env.str("CODERAUTH_ENCRYPTION_KEY", default="") or _derived_key("encryption")
# Key rotation (docs/operations.md, "Rotating keys"): keys that were current before, comma-separated, still
# read while `rotate_keys` moves everything to the current key. Tokens stored under a previous digest key
# authenticate (and move to the current key on first use); ciphertexts under a previous encryption key decrypt.
CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS = env.list("CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS", default=[])
CODERAUTH_ENCRYPTION_KEY_PREVIOUS = env.list("CODERAUTH_ENCRYPTION_KEY_PREVIOUS", default=[])
CODERAUTH_DEFAULT_PERMISSION_MODE = env.str("CODERAUTH_DEFAULT_PERMISSION_MODE", default="default")
CODERAUTH_SESSION_TOKEN_LIFETIME = timedelta(
    seconds=env.int("CODERAUTH_SESSION_TOKEN_LIFETIME_SECONDS", default=24 * 3600)
)
CODERAUTH_USER_TOKEN_LIFETIME = timedelta(seconds=env.int("CODERAUTH_USER_TOKEN_LIFETIME_SECONDS", default=30 * 86400))
CODERAUTH_USER_TOKEN_MAX_LIFETIME = timedelta(
    seconds=env.int("CODERAUTH_USER_TOKEN_MAX_LIFETIME_SECONDS", default=365 * 86400)
)
CODERAUTH_AGENT_TOKEN_LIFETIME = timedelta(
    seconds=env.int("CODERAUTH_AGENT_TOKEN_LIFETIME_SECONDS", default=30 * 86400)
)
CODERAUTH_AGENT_TOKEN_MAX_LIFETIME = timedelta(
    seconds=env.int("CODERAUTH_AGENT_TOKEN_MAX_LIFETIME_SECONDS", default=365 * 86400)
)
CODERAUTH_CHILD_TOKEN_LIFETIME = timedelta(seconds=env.int("CODERAUTH_CHILD_TOKEN_LIFETIME_SECONDS", default=3600))
# last_used_at is written at most this often per token, never once per request.
CODERAUTH_LAST_USED_RESOLUTION = timedelta(seconds=env.int("CODERAUTH_LAST_USED_RESOLUTION_SECONDS", default=60))
# The agent token lookup is a prepared statement (planned once per connection). Turn it off behind a pooler
# that cannot keep prepared statements, such as PgBouncer before 1.21 in transaction mode.
CODERAUTH_PREPARED_AGENT_LOOKUP = env.bool("CODERAUTH_PREPARED_AGENT_LOOKUP", default=True)
# Audit trust anchors (docs/operations.md, "The audit signing key"): the Ed25519 private key with which
# archive_audit and audit_checkpoint sign, kept outside the database (archive_audit refuses to run without
# it), and the public keys verify_audit trusts (old keys stay listed after a rotation).
CODERAUTH_AUDIT_SIGNING_KEY_FILE = env.str("CODERAUTH_AUDIT_SIGNING_KEY_FILE", default="")
CODERAUTH_AUDIT_PUBLIC_KEYS_FILE = env.str("CODERAUTH_AUDIT_PUBLIC_KEYS_FILE", default="")
# Streaming the audit log to a SIEM (docs/audit.md, "Streaming to a SIEM"): comma-separated sink URLs that
# `manage.py stream_audit` sends every sealed event to, in id order (syslog+udp://, syslog+tcp://, syslog+tls://,
# https://; audit/streaming/sinks.py). A bad URL stops `migrate`, `check` and the worker (system check
# coderauth.E010). None: nothing is streamed.
CODERAUTH_AUDIT_SINKS = env.list("CODERAUTH_AUDIT_SINKS", default=[])
# The key of the HMAC-SHA256 signature the https:// sinks' receiver checks (required with one, 32 characters or more).
CODERAUTH_AUDIT_STREAM_HMAC_SECRET = env.str("CODERAUTH_AUDIT_STREAM_HMAC_SECRET", default="")
# Plain http:// sinks beyond loopback send the audit log unencrypted: only when asked for.
CODERAUTH_AUDIT_STREAM_ALLOW_HTTP = env.bool("CODERAUTH_AUDIT_STREAM_ALLOW_HTTP", default=False)
# After a failed delivery a sink waits this many seconds, doubling per failure up to the maximum (jittered).
CODERAUTH_AUDIT_STREAM_RETRY_SECONDS = env.float("CODERAUTH_AUDIT_STREAM_RETRY_SECONDS", default=2.0)
CODERAUTH_AUDIT_STREAM_RETRY_MAX_SECONDS = env.float("CODERAUTH_AUDIT_STREAM_RETRY_MAX_SECONDS", default=300.0)


# Request budgets (core/http/throttles.py; docs/operations.md, "Request budgets"): 429 with Retry-After beyond.
def _rate(name: str, default: str) -> str:
    rate = env.str(name, default=default)
    count, _, period = rate.partition("/")
    if not count.isdigit() or int(count) < 1 or period[:1] not in ("s", "m", "h", "d"):
        raise ImproperlyConfigured(f"{name} must look like 10/min (a count per s, min, hour or day), not {rate!r}.")
    return rate


# Password attempts (sign-in, and password changes that ask for the current one), in the shared cache:
# per client address (an IPv6 client by its /64), and per username from any number of addresses.
CODERAUTH_LOGIN_THROTTLE_RATE = _rate("CODERAUTH_LOGIN_THROTTLE_RATE", "10/min")
CODERAUTH_LOGIN_USERNAME_THROTTLE_RATE = _rate("CODERAUTH_LOGIN_USERNAME_THROTTLE_RATE", "10/min")
# Agent requests per token, in each app process's memory (the agent hot path stays one SQL query).
CODERAUTH_AGENT_THROTTLE_RATE = _rate("CODERAUTH_AGENT_THROTTLE_RATE", "600/min")

# Limits under abuse (docs/security.md, "Limits"): what one agent token, or one user, can make the server hold or do.
# Reports per agent, counted in fixed one-minute windows shared by every app process; 429 with Retry-After beyond.
CODERAUTH_AGENT_LOG_LINES_PER_MINUTE = env.int("CODERAUTH_AGENT_LOG_LINES_PER_MINUTE", default=1000)
CODERAUTH_AGENT_LOG_BYTES_PER_MINUTE = env.int("CODERAUTH_AGENT_LOG_BYTES_PER_MINUTE", default=1024 * 1024)
# One log line's `output`, in UTF-8 bytes (400 beyond).
CODERAUTH_AGENT_LOG_LINE_MAX_BYTES = env.int("CODERAUTH_AGENT_LOG_LINE_MAX_BYTES", default=16 * 1024)
CODERAUTH_APP_STATUSES_PER_MINUTE = env.int("CODERAUTH_APP_STATUSES_PER_MINUTE", default=60)
CODERAUTH_APP_STATUS_BYTES_PER_MINUTE = env.int("CODERAUTH_APP_STATUS_BYTES_PER_MINUTE", default=64 * 1024)
# How long reports are kept; `manage.py purge_reports` deletes older ones (run it daily).
CODERAUTH_AGENT_LOG_RETENTION = timedelta(days=env.int("CODERAUTH_AGENT_LOG_RETENTION_DAYS", default=7))
CODERAUTH_APP_STATUS_RETENTION = timedelta(days=env.int("CODERAUTH_APP_STATUS_RETENTION_DAYS", default=30))
# Child tokens an agent may hold alive at once, and how deep a chain of children may go (a user-issued token is
# depth 0; the MCP server's working token is depth 2). 409 beyond either.
CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS = env.int("CODERAUTH_AGENT_MAX_LIVE_CHILD_TOKENS", default=50)
CODERAUTH_AGENT_TOKEN_MAX_DEPTH = env.int("CODERAUTH_AGENT_TOKEN_MAX_DEPTH", default=4)
# List pages (every list of the API is keyset-paginated): `page_size` defaults to this, and may go up to the max.
CODERAUTH_PAGE_SIZE = env.int("CODERAUTH_PAGE_SIZE", default=50)
CODERAUTH_MAX_PAGE_SIZE = env.int("CODERAUTH_MAX_PAGE_SIZE", default=500)
# Audit exports running at once, per user and in total over every app process (429 beyond), and how long a
# download may stall (the client reads nothing) before the server cuts it off.
CODERAUTH_EXPORTS_PER_USER = env.int("CODERAUTH_EXPORTS_PER_USER", default=1)
CODERAUTH_EXPORTS_TOTAL = env.int("CODERAUTH_EXPORTS_TOTAL", default=2)
CODERAUTH_EXPORT_STALL_SECONDS = env.int("CODERAUTH_EXPORT_STALL_SECONDS", default=30)
# Just-in-time elevation (docs/elevation.md): an agent asks for agent scopes its mode does not allow, for a while.
# The longest duration a request may ask for, and how long a request may wait for a decision before it expires.
CODERAUTH_ELEVATION_MAX_SECONDS = env.int("CODERAUTH_ELEVATION_MAX_SECONDS", default=3600)
CODERAUTH_ELEVATION_PENDING_SECONDS = env.int("CODERAUTH_ELEVATION_PENDING_SECONDS", default=3600)
# Who decides: "owners" (admins and the workspace's owner) or "admins" (admins only).
CODERAUTH_ELEVATION_APPROVERS = env.str("CODERAUTH_ELEVATION_APPROVERS", default="owners")
if CODERAUTH_ELEVATION_APPROVERS not in ("owners", "admins"):
    raise ImproperlyConfigured("CODERAUTH_ELEVATION_APPROVERS must be 'owners' or 'admins'.")
# Requests per agent (refused ones count), in the shared cache; 429 with Retry-After beyond.
CODERAUTH_ELEVATION_REQUEST_RATE = _rate("CODERAUTH_ELEVATION_REQUEST_RATE", "10/min")
# Where each new request and each decision is POSTed (comma-separated URLs; none: no webhook), and the secret of
# the X-Coderauth-Signature HMAC-SHA256 header over the body (derived from SECRET_KEY when unset).
CODERAUTH_ELEVATION_WEBHOOK_URL = env.list("CODERAUTH_ELEVATION_WEBHOOK_URL", default=[])
CODERAUTH_ELEVATION_WEBHOOK_SECRET = env.str("CODERAUTH_ELEVATION_WEBHOOK_SECRET", default="") or _derived_key(
    "elevation-webhook"
)

# A password change revokes the user's other API login sessions and API tokens and ends their other web sessions.
CODERAUTH_PASSWORD_CHANGE_REVOKES = env.bool("CODERAUTH_PASSWORD_CHANGE_REVOKES", default=True)

# Single sign-on for the web UI (docs/operations.md, "Single sign-on"): OpenID Connect's authorization-code flow
# with PKCE, configured by discovery from the issuer. No issuer: no SSO (no button, and its routes answer 404).
CODERAUTH_OIDC_ISSUER = env.str("CODERAUTH_OIDC_ISSUER", default="")
CODERAUTH_OIDC_CLIENT_ID = env.str("CODERAUTH_OIDC_CLIENT_ID", default="")
CODERAUTH_OIDC_CLIENT_SECRET = env.str("CODERAUTH_OIDC_CLIENT_SECRET", default="")
# The button's label: "Sign in with <name>".
CODERAUTH_OIDC_NAME = env.str("CODERAUTH_OIDC_NAME", default="single sign-on")
CODERAUTH_OIDC_SCOPES = env.str("CODERAUTH_OIDC_SCOPES", default="openid profile email groups").split()
# Roles come from this claim at every sign-in (demotions too): a group of the admin list makes an admin, else one of
# the auditor list an auditor, else the user is a member.
CODERAUTH_OIDC_GROUPS_CLAIM = env.str("CODERAUTH_OIDC_GROUPS_CLAIM", default="groups")
CODERAUTH_OIDC_ADMIN_GROUPS = env.list("CODERAUTH_OIDC_ADMIN_GROUPS", default=[])
CODERAUTH_OIDC_AUDITOR_GROUPS = env.list("CODERAUTH_OIDC_AUDITOR_GROUPS", default=[])
if CODERAUTH_OIDC_ISSUER:
    if not (CODERAUTH_OIDC_CLIENT_ID and CODERAUTH_OIDC_CLIENT_SECRET):
        raise ImproperlyConfigured(
            "Set CODERAUTH_OIDC_CLIENT_ID and CODERAUTH_OIDC_CLIENT_SECRET: CODERAUTH_OIDC_ISSUER is set."
        )
    _issuer = urlsplit(CODERAUTH_OIDC_ISSUER)
    # OpenID Connect requires HTTPS; plain HTTP only to a provider on this machine (development and the tests).
    _loopback = _issuer.hostname in ("127.0.0.1", "localhost", "::1")
    if not (_issuer.scheme == "https" or (_issuer.scheme == "http" and _loopback)):
        raise ImproperlyConfigured("CODERAUTH_OIDC_ISSUER must be an https:// URL (http:// only on loopback).")
    if "openid" not in CODERAUTH_OIDC_SCOPES:
        raise ImproperlyConfigured("CODERAUTH_OIDC_SCOPES must include openid.")
# Off: no password sign-in in the web UI, /admin/login/ or POST /api/v2/users/login (403). Admins can still get in
# with `manage.py break_glass_signin`. API tokens keep working.
CODERAUTH_PASSWORD_LOGIN = env.bool("CODERAUTH_PASSWORD_LOGIN", default=True)

# Health endpoints (docs/operations.md#health-checks-and-database-outages). GET /readyz runs these checks, dotted
# paths to functions returning a list of problems (empty: ready); the audit one is also the database round trip.
CODERAUTH_READINESS_CHECKS = ["audit.health.audit_log_append_problems"]
# Probes speak plain HTTP to the process. Redirected to HTTPS they would read a 301 as success (any 2xx or 3xx).
# Prometheus scrapes each process too; a redirect would not keep the token off the wire, its request carried it.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
# A database that drops packets (a partition) instead of refusing them: answer 503 after this many seconds rather
# than hold a worker until gunicorn kills it. A connect_timeout in DATABASE_URL's query string wins.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
    "connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=5)
)

# Prometheus metrics (docs/operations.md#metrics). GET /metrics answers only `Authorization: Bearer <this token>`;
# unset, it answers 404 as if it did not exist. Long and random, like every bearer secret.
CODERAUTH_METRICS_TOKEN = env.str("CODERAUTH_METRICS_TOKEN", default="")
if CODERAUTH_METRICS_TOKEN and len(CODERAUTH_METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("CODERAUTH_METRICS_TOKEN must be at least 32 characters long (or unset).")
# Where gunicorn's workers keep their counts, which every scrape sums (coderauth/gunicorn.py empties it at each
# start). Unset: a new directory under the system's temporary directory for each run, removed when gunicorn exits.
CODERAUTH_METRICS_DIR = env.str("CODERAUTH_METRICS_DIR", default="")
# Scrape-time collectors: dotted paths to functions returning metric families (prometheus_client), run at each
# scrape, for figures read from the database rather than counted in each process (core/metrics.py).
# The audit stream's lag and deliveries per sink come from its cursor table.
CODERAUTH_METRICS_COLLECTORS: list[str] = ["audit.streaming.metrics.audit_stream_metrics"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every request's full URL at INFO; a webhook URL often carries its receiver's secret.
        "httpx": {"level": "WARNING"},
        # Authlib logs the PKCE code verifier of each single sign-on at DEBUG.
        "authlib": {"level": "WARNING"},
    },
}
