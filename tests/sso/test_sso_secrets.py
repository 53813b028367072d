"""No secret of a single sign-on (the client secret, the authorization code, the PKCE verifier, the ID token, the
provider's access token) reaches a log line, stdout or stderr, an audit row, or the session once it is done.

The tokens are the ones the real provider issued: the test watches what coderauth's OpenID client received (a spy
on Authlib's code exchange, passing everything through)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

from authlib.integrations.django_client import DjangoOAuth2App
from django.contrib.sessions.models import Session
from django.db import connection

from audit import chain
from audit.models import AuditEvent
from tests.sso.harness import ADMIN_GROUP
from tests.test_no_secrets_in_logs import every_log_record, leaks


def test_sso_sign_in_logs_and_audits_no_secret(sso, monkeypatch, capfd):
    """Security regression: every logger at DEBUG (SQL and its parameters included), stdout and stderr, every audit
    row and every stored session hold none of the sign-in's secrets, in whole or in 16-character pieces."""
    received: list[dict] = []
    exchange = DjangoOAuth2App.fetch_access_token

    def watched_exchange(self, *args, **kwargs):
        token = exchange(self, *args, **kwargs)
        received.append({"code_verifier": kwargs["code_verifier"], **token})
        return token

    monkeypatch.setattr(DjangoOAuth2App, "fetch_access_token", watched_exchange)
    sso.provider.accounts(alice={"sub": "sub-alice", "preferred_username": "alice", "groups": [ADMIN_GROUP]})
    connection.force_debug_cursor = True
    try:
        # coderauth's side only: the test's own HTTP client, playing the browser at the provider, logs the redirect
        # that carries the code (as a browser's history would); that part runs outside the capture.
        with every_log_record() as starting:
            authorization_url = sso.start()
        callback = sso.provider.sign_in(authorization_url, login="alice")
        capfd.readouterr()
        with every_log_record() as finishing:
            assert sso.client.get(callback).status_code == 302
            assert sso.client.get(callback).status_code == 400  # a replay, refused and audited too
    finally:
        connection.force_debug_cursor = False
    output = capfd.readouterr()

    [token] = received
    found = {
        "client_secret": sso.provider.client_secret,
        "code": dict(parse_qsl(urlsplit(callback).query))["code"],
        "code_verifier": token["code_verifier"],
        "id_token": token["id_token"],
        "access_token": token["access_token"],
    }
    logs = starting.getvalue() + finishing.getvalue() + output.out + output.err
    assert not leaks(found, logs), leaks(found, logs)
    audit = "\n".join(json.dumps(chain.canonical_fields(row)) for row in AuditEvent.objects.values(*chain.FIELDS))
    assert not leaks(found, audit), leaks(found, audit)
    sessions = "\n".join(json.dumps(session.get_decoded()) for session in Session.objects.all())
    assert not leaks(found, sessions), leaks(found, sessions)
    # The capture saw the flow: SQL at DEBUG and the refused replay.
    assert "django.db.backends" in logs and "audit_auditevent" in logs
    assert "Bad Request: /sso/callback/" in logs
    assert AuditEvent.objects.filter(action="user.login", details__method="oidc").count() == 1
