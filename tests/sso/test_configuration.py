"""Single sign-on's settings are checked at start-up: a half-configured client stops the server, naming what is
missing, rather than failing at someone's first sign-in."""

from __future__ import annotations

import pytest

from coderauth.tests.test_settings import _start

BOOT = "import django; django.setup(); from django.conf import settings as s; print(s.CODERAUTH_OIDC_SCOPES)"
SECRET_KEY = "s" * 50


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"CODERAUTH_OIDC_ISSUER": "https://id.example.com"}, "CODERAUTH_OIDC_CLIENT_ID"),
        (
            {"CODERAUTH_OIDC_ISSUER": "http://id.example.com", "CODERAUTH_OIDC_CLIENT_ID": "c"},
            "CODERAUTH_OIDC_CLIENT_SECRET",
        ),
        (
            {
                "CODERAUTH_OIDC_ISSUER": "http://id.example.com",
                "CODERAUTH_OIDC_CLIENT_ID": "c",
                "CODERAUTH_OIDC_CLIENT_SECRET": "s",
            },
            "https://",
        ),
        (
            {
                "CODERAUTH_OIDC_ISSUER": "https://id.example.com",
                "CODERAUTH_OIDC_CLIENT_ID": "c",
                "CODERAUTH_OIDC_CLIENT_SECRET": "s",
                "CODERAUTH_OIDC_SCOPES": "profile email",
            },
            "openid",
        ),
    ],
)
def test_a_half_configured_client_stops_start_up(environment, message):
    result = _start(BOOT, SECRET_KEY=SECRET_KEY, **environment)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line and message in last_line, last_line


@pytest.mark.parametrize("issuer", ["https://id.example.com/realms/acme", "http://127.0.0.1:9000"])
def test_an_https_issuer_or_a_loopback_one_starts(issuer):
    environment = {"CODERAUTH_OIDC_CLIENT_ID": "c", "CODERAUTH_OIDC_CLIENT_SECRET": "s"}
    result = _start(BOOT, SECRET_KEY=SECRET_KEY, CODERAUTH_OIDC_ISSUER=issuer, **environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['openid', 'profile', 'email', 'groups']"
