"""Settings of the in-process benchmark: bench/settings_bench.py plus the peers' apps (django-rest-knox and
djangorestframework-api-key, installed by `make bench-inprocess` only, never by requirements.txt)."""

from bench.settings_bench import *  # noqa: F403
from bench.settings_bench import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "knox", "rest_framework_api_key"]
ROOT_URLCONF = "bench.urls_inprocess"
# Thousands of app statuses a minute from one agent: the quota is still spent on every request (its cost is
# measured) but never refuses one.
CODERAUTH_APP_STATUSES_PER_MINUTE = 1_000_000_000
CODERAUTH_APP_STATUS_BYTES_PER_MINUTE = 1_000_000_000
