"""Production settings pass Django's deployment checklist, and HTTPS (redirect, HSTS) is on without being asked for,
while `make run` (DEBUG, plain HTTP on 127.0.0.1) keeps working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

BASE_DIR = Path(__file__).resolve().parents[2]
PRODUCTION = {"DEBUG": "false", "SECRET_KEY": "p" + "roduction-key-" * 5, "ALLOWED_HOSTS": "coderauth.example.com"}
PRINT_HTTPS = (
    "import django; django.setup(); from django.conf import settings as s; "
    "print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD)"
)
HTTPS_VARIABLES = (
    "SERVED_OVER_HTTPS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "TRUST_X_FORWARDED_PROTO",
)


def _run(argv: list[str], **overrides: str) -> subprocess.CompletedProcess:
    """A fresh interpreter with the product settings (not the tests'), the given variables and a DATABASE_URL;
    variables that would change the outcome are dropped from the inherited environment first."""
    env = {key: value for key, value in os.environ.items() if key not in HTTPS_VARIABLES and key != "DEBUG"}
    env.setdefault("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
    env.update({"DJANGO_SETTINGS_MODULE": "coderauth.settings", **overrides})
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, *argv], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def test_deploy_check_is_clean_with_only_the_production_variables():
    """`manage.py check --deploy` reports nothing at WARNING level with DEBUG off, SECRET_KEY and ALLOWED_HOSTS:
    HSTS, the HTTPS redirect, secure cookies, nosniff, DENY framing and the rest hold by default."""
    result = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout


def test_deploy_check_fails_when_https_is_turned_off():
    """The check above can fail: declaring the site plain HTTP brings back Django's HSTS and redirect warnings."""
    result = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION, SERVED_OVER_HTTPS="false"
    )
    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


def test_production_defaults_redirect_and_send_a_year_of_hsts():
    result = _run(["-c", PRINT_HTTPS], **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", str(365 * 86400), "True", "False"]


def test_make_run_defaults_stay_on_plain_http():
    """DEBUG (what `make run` and `make manage` set) with nothing else: no redirect, no HSTS."""
    result = _run(["-c", PRINT_HTTPS], DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:2] == ["False", "0"]


def test_each_https_setting_can_be_set_on_its_own():
    result = _run(
        ["-c", PRINT_HTTPS],
        **PRODUCTION,
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="600",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        SECURE_HSTS_PRELOAD="true",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "600", "False", "True"]


@pytest.fixture
def production_https(settings):
    """The production defaults, behind a TLS proxy that sets X-Forwarded-Proto (TRUST_X_FORWARDED_PROTO=true)."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 365 * 86400
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


def test_plain_http_is_redirected_to_https(production_https):
    response = Client().get("/api/v2/users/me", headers={"Host": "testserver"})
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/api/v2/users/me"


def test_https_through_the_proxy_is_served_with_hsts(production_https):
    response = Client().get("/login/", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
