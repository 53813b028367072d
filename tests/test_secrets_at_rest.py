"""No plaintext secret anywhere in the database after the main flow (docs/concepts.md)."""

from __future__ import annotations

import logging

import pytest
from cryptography.exceptions import InvalidTag
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from agents.models import ExternalAuthLink, GitSSHKey
from agents.services.user_data import git_ssh_private_key
from core import crypto, tokens
from tests.helpers.clients import client_for_agent_token, client_for_user
from tests.helpers.factories import PASSWORD
from tests.helpers.responses import assert_status, page_results

pytestmark = pytest.mark.django_db

ACCESS_TOKEN = "gho_secretAtRestAccessToken0123456789abcdef"
REFRESH_TOKEN = "ghr_secretAtRestRefreshToken0123456789abcdef"


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def run_main_flow(member, admin_user) -> dict[str, str]:
    """Log in, mint every kind of secret, let an agent read the owner's user data; return the plaintexts."""
    secrets = {"password": PASSWORD, "access_token": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN}
    anonymous = APIClient()
    response = anonymous.post(
        reverse("agents:user-login"), {"username": member.username, "password": PASSWORD}, format="json"
    )
    assert_status(response, 201)
    secrets["session_token"] = response.data["session_token"]
    session = _bearer(secrets["session_token"])

    response = session.post(reverse("agents:user-token-list"), {"name": "cli"}, format="json")
    assert_status(response, 201)
    secrets["user_api_token"] = response.data["token"]
    user = _bearer(secrets["user_api_token"])

    assert_status(user.get(reverse("agents:user-gitsshkey")), 200)
    admin = client_for_user(admin_user)
    response = admin.post(
        reverse("agents:external-auth-providers"),
        {"id": "github", "type": "github", "regex": r"^https://github\.com/"},
        format="json",
    )
    assert_status(response, 201)
    response = user.put(
        reverse("agents:user-external-auth", args=["github"]),
        {"access_token": ACCESS_TOKEN, "token_extra": {"refresh_token": REFRESH_TOKEN}},
        format="json",
    )
    assert_status(response, 200)

    response = user.post(reverse("agents:workspace-list"), {"name": "dev"}, format="json")
    assert_status(response, 201)
    response = user.post(reverse("agents:agent-create", args=[response.data["id"]]), {"name": "main"}, format="json")
    assert_status(response, 201)
    response = user.post(reverse("agents:agent-token-list", args=[response.data["id"]]), {"name": "ci"}, format="json")
    assert_status(response, 201)
    secrets["agent_token"] = response.data["token"]
    agent = client_for_agent_token(secrets["agent_token"])

    response = agent.post(reverse("agents:agent-child-token"), {"scopes": ["agent:connect"]}, format="json")
    assert_status(response, 201)
    secrets["child_token"] = response.data["token"]
    assert_status(client_for_agent_token(secrets["child_token"]).get(reverse("agents:agent-manifest")), 200)

    response = agent.get(reverse("agents:agent-gitsshkey"))
    assert_status(response, 200)
    secrets["ssh_private_key"] = response.data["private_key"]
    # The key's body without its PEM armour, in case something strips the header lines.
    secrets["ssh_private_key_body"] = max(response.data["private_key"].splitlines(), key=len)
    response = agent.get(reverse("agents:agent-external-auth") + "?id=github")
    assert_status(response, 200)
    assert response.data["access_token"] == ACCESS_TOKEN
    response = agent.get(reverse("agents:agent-gitauth") + "?url=https://github.com/acme/widgets.git")
    assert_status(response, 200)
    assert response.data["token_extra"] == {"refresh_token": REFRESH_TOKEN}

    # Wrong, unknown and revoked presentations are logged or audited: never with the secret.
    forged = secrets["agent_token"][:-1] + ("0" if secrets["agent_token"][-1] != "0" else "1")  # never the real token
    assert_status(client_for_agent_token(forged).get(reverse("agents:agent-manifest")), 401)
    secrets["unknown_agent_token"] = tokens.generate("agent").plaintext
    assert_status(client_for_agent_token(secrets["unknown_agent_token"]).get(reverse("agents:agent-manifest")), 401)
    secrets["unknown_user_token"] = tokens.generate("user").plaintext
    assert_status(_bearer(secrets["unknown_user_token"]).get(reverse("agents:user-me")), 401)
    assert_status(user.delete(reverse("agents:user-token-detail", args=[_token_id(user)])), 204)
    assert_status(user.get(reverse("agents:user-me")), 401)
    return secrets


def _token_id(client) -> str:
    return page_results(client.get(reverse("agents:user-token-list")))[0]["id"]


def _every_cell():
    """(table, column, value) for every cell of every table in the database, migrations' tables included."""
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608 - introspected names
            columns = [column.name for column in cursor.description]
            for row in cursor.fetchall():
                for column, value in zip(columns, row, strict=True):
                    yield table, column, value


def _as_text(value) -> str:
    if isinstance(value, memoryview | bytes | bytearray):
        return bytes(value).decode("latin-1")
    return str(value)


def test_no_plaintext_secret_anywhere_in_the_database_after_the_main_flow(member, admin_user, caplog):
    """Tokens, SSH private keys and OAuth tokens are stored as digests or ciphertext only, in every table."""
    caplog.set_level(logging.DEBUG)
    secrets = run_main_flow(member, admin_user)

    tables_read = set()
    leaks = []
    hint_seen = False
    for table, column, value in _every_cell():
        tables_read.add(table)
        text = _as_text(value)
        leaks.extend(f"{name} in {table}.{column}" for name, secret in secrets.items() if secret in text)
        hint_seen = hint_seen or (table == "agents_agenttoken" and text.endswith(secrets["agent_token"][-4:]))
    assert not leaks, leaks
    assert hint_seen, "the scan must see the agent token's display hint, or it is not reading the rows"
    assert {"agents_agenttoken", "agents_usertoken", "agents_gitsshkey", "agents_externalauthlink"} <= tables_read
    assert "audit_auditevent" in tables_read

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not [name for name, secret in secrets.items() if secret in logged]
    assert secrets["unknown_agent_token"][-4:] in logged, "the unknown token is logged by its hint"


def test_ciphertexts_are_not_the_plaintext_and_decrypt_only_in_their_own_row(member, admin_user, settings):
    """Encrypted at rest, bound to its row: a ciphertext copied elsewhere or read under another key fails."""
    secrets = run_main_flow(member, admin_user)
    key = GitSSHKey.objects.get(user=member)
    link = ExternalAuthLink.objects.get(user=member, provider_id="github")

    assert secrets["ssh_private_key"].encode() not in bytes(key.private_key_encrypted)
    assert ACCESS_TOKEN.encode() not in bytes(link.access_token_encrypted)
    assert git_ssh_private_key(key) == secrets["ssh_private_key"]
    assert (
        crypto.decrypt(link.access_token_encrypted, context=f"external-auth:{member.pk}:github:token") == ACCESS_TOKEN
    )

    with pytest.raises(InvalidTag):
        crypto.decrypt(key.private_key_encrypted, context=f"gitsshkey:{admin_user.pk}")
    with pytest.raises(InvalidTag):
        crypto.decrypt(link.access_token_encrypted, context=f"external-auth:{member.pk}:github:extra")
    settings.CODERAUTH_ENCRYPTION_KEY = "a-different-server-key"
    with pytest.raises(InvalidTag):
        git_ssh_private_key(key)


def test_encryption_is_randomised():
    """The same plaintext encrypts differently each time, so equal secrets are not visible as equal rows."""
    first = crypto.encrypt("same secret", context="c")
    second = crypto.encrypt("same secret", context="c")
    assert first != second
    assert crypto.decrypt(first, context="c") == crypto.decrypt(second, context="c") == "same secret"
