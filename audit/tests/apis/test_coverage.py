"""Every action of docs/audit.md is recorded by the REST flow that causes it, with its fields and no secret."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from audit import actions, chain
from audit.models import AuditEvent
from audit.services import audit_record
from core import tokens
from tests.helpers.audit import record_events, sealed
from tests.helpers.factories import PASSWORD

USER_AGENT = "coverage-test/1.0"
CLIENT_IP = "203.0.113.7"
EXTERNAL_ACCESS_TOKEN = "gho_coverageSecretAccessToken0123456789"
EXTERNAL_EXTRA_SECRET = "refresh-coverageSecretRefresh0123456789"
HOSTILE_REASON = "tighten\nFORGED 2026-01-01 user.login admin\r\x1b[31m\x7f done\u2028"


def _client(token: str | None = None) -> APIClient:
    client = APIClient(HTTP_USER_AGENT=USER_AGENT, REMOTE_ADDR=CLIENT_IP)
    if token:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _ok(response, status: int):
    assert response.status_code == status, response.content[:2000]
    return response.json() if response.content else None


@pytest.fixture
def flow(admin_user, member, workspace, agent):
    """Drive every audited flow through the API; each step carries its own X-Request-ID."""
    secrets: list[str] = []

    def call(client, method, url, request_id, data=None, status=200, **extra):
        response = getattr(client, method)(url, data, format="json", headers={"X-Request-ID": request_id}, **extra)
        return _ok(response, status)

    anonymous = _client()
    login = reverse("agents:user-login")
    _ok(
        anonymous.post(
            login,
            {"username": member.username, "password": "wrong"},
            format="json",
            headers={"X-Request-ID": "req-login-failed"},
        ),
        401,
    )
    session = call(anonymous, "post", login, "req-login", {"username": member.username, "password": PASSWORD}, 201)
    secrets.append(session["session_token"])
    owner = _client(session["session_token"])

    api_token = call(owner, "post", reverse("agents:user-token-list"), "req-user-token-issue", {"name": "ci"}, 201)
    secrets.append(api_token["token"])
    call(
        owner,
        "delete",
        reverse("agents:user-token-detail", args=[api_token["id"]]),
        "req-user-token-revoke",
        status=204,
    )

    admin_session = call(
        anonymous, "post", login, "req-admin-login", {"username": admin_user.username, "password": PASSWORD}, 201
    )
    secrets.append(admin_session["session_token"])
    admin = _client(admin_session["session_token"])
    modes = reverse("policies:permission-mode-list")
    mode_url = reverse("policies:permission-mode-detail", args=["git-only"])
    call(
        admin,
        "post",
        modes,
        "req-mode-create",
        {"name": "git-only", "description": "git", "scopes": ["agent:connect", "agent:gitsshkey"]},
        201,
    )
    call(admin, "patch", mode_url, "req-mode-update", {"scopes": ["agent:connect", "agent:report", "agent:gitsshkey"]})
    call(admin, "delete", mode_url, "req-mode-delete", status=204)
    call(
        admin,
        "post",
        reverse("agents:external-auth-providers"),
        "req-provider",
        {"id": "github", "type": "github", "regex": r"github\.com"},
        201,
    )

    issued = call(
        owner,
        "post",
        reverse("agents:agent-token-list", args=[agent.id]),
        "req-agent-token-issue",
        {"name": "agent"},
        201,
    )
    secrets.append(issued["token"])
    call(
        owner,
        "put",
        reverse("agents:user-external-auth", args=["github"]),
        "req-link",
        {"access_token": EXTERNAL_ACCESS_TOKEN, "token_extra": {"refresh_token": EXTERNAL_EXTRA_SECRET}},
    )
    secrets += [EXTERNAL_ACCESS_TOKEN, EXTERNAL_EXTRA_SECRET]

    agent_client = _client(issued["token"])
    key = call(agent_client, "get", reverse("agents:agent-gitsshkey"), "req-gitsshkey")
    secrets.append(key["private_key"])
    call(agent_client, "get", reverse("agents:agent-external-auth") + "?id=github", "req-external-auth")
    call(agent_client, "get", reverse("agents:agent-gitauth") + "?url=https://github.com/acme/app", "req-gitauth")
    renewal = call(agent_client, "post", reverse("agents:agent-child-token"), "req-child-mint", {}, 201)
    successor = call(_client(renewal["token"]), "post", reverse("agents:agent-token-rotate"), "req-rotate", {}, 201)
    secrets += [renewal["token"], successor["token"]]
    call(_client(renewal["token"]), "get", reverse("agents:agent-manifest"), "req-reuse", status=401)
    call(
        owner,
        "patch",
        reverse("agents:agent-detail", args=[agent.id]),
        "req-agent-mode",
        {"permission_mode": "no-user-data", "reason": "agent needs no secrets"},
    )
    call(agent_client, "get", reverse("agents:agent-gitsshkey"), "req-denied", status=403)
    call(
        owner,
        "patch",
        reverse("agents:workspace-detail", args=[workspace.id]),
        "req-workspace-mode",
        {"permission_mode": "no-user-data", "reason": HOSTILE_REASON},
    )
    call(
        owner,
        "delete",
        reverse("agents:agent-token-detail", args=[agent.id, issued["id"]]),
        "req-agent-token-revoke",
        status=204,
    )
    call(agent_client, "get", reverse("agents:agent-manifest"), "req-rejected", status=401)
    call(owner, "put", reverse("agents:user-gitsshkey"), "req-gitsshkey-regenerate")
    created = call(owner, "post", reverse("agents:workspace-list"), "req-workspace-create", {"name": "second"}, 201)
    call(
        owner, "post", reverse("agents:agent-create", args=[created["id"]]), "req-agent-create", {"name": "helper"}, 201
    )
    new_password = "a brand new coverage passphrase 7"
    call(
        owner,
        "post",
        reverse("agents:user-password"),
        "req-password-change",
        {"current_password": PASSWORD, "new_password": new_password},
    )
    secrets.append(new_password)
    return {
        "secrets": secrets,
        "member": member,
        "admin": admin_user,
        "workspace": workspace,
        "agent": agent,
        "agent_token": issued,
        "renewal": renewal,
        "successor": successor,
    }


def _events(action: str, request_id: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, request_id=request_id))


# action, request id of the step that causes it, actor ("member"/"admin"/"agent"), details that must match
EXPECTED = [
    ("user.login_failed", "req-login-failed", "member", {"reason": "bad_credentials"}),
    ("user.login", "req-login", "member", {"method": "password"}),
    ("user_token.issued", "req-user-token-issue", "member", {"name": "ci"}),
    ("user_token.revoked", "req-user-token-revoke", "member", {"name": "ci"}),
    ("permission_mode.created", "req-mode-create", "admin", {"mode": "git-only"}),
    ("permission_mode.updated", "req-mode-update", "admin", {"mode": "git-only"}),
    ("permission_mode.deleted", "req-mode-delete", "admin", {"mode": "git-only"}),
    ("agent_token.issued", "req-agent-token-issue", "member", {"name": "agent"}),
    ("agent.user_data_accessed", "req-gitsshkey", "agent", {"route": "gitsshkey", "mode": "default"}),
    ("agent.user_data_accessed", "req-external-auth", "agent", {"route": "external-auth", "mode": "default"}),
    ("agent.user_data_accessed", "req-gitauth", "agent", {"route": "gitauth", "mode": "default"}),
    ("agent_token.rotated", "req-rotate", "agent", {"children_moved": 0}),
    ("agent_token.reuse_detected", "req-reuse", "agent", {"reason": "rotated_out_token_presented"}),
    (
        "agent.mode_changed",
        "req-agent-mode",
        "member",
        {"from": None, "to": "no-user-data", "reason": "agent needs no secrets"},
    ),
    ("agent.access_denied", "req-denied", "agent", {"scope": "agent:gitsshkey", "mode": "no-user-data"}),
    ("workspace.mode_changed", "req-workspace-mode", "member", {"from": "default", "to": "no-user-data"}),
    ("agent_token.revoked", "req-agent-token-revoke", "member", {}),
    ("agent_token.rejected", "req-rejected", "agent", {"reason": "revoked"}),
    ("external_auth_provider.created", "req-provider", "admin", {"provider": "github"}),
    ("user.external_auth_linked", "req-link", "member", {"provider": "github", "created": True}),
    ("user.gitsshkey_created", "req-gitsshkey", "agent", {}),
    ("user.gitsshkey_regenerated", "req-gitsshkey-regenerate", "member", {}),
    ("workspace.created", "req-workspace-create", "member", {"name": "second", "mode": "default"}),
    ("agent.created", "req-agent-create", "member", {"name": "helper"}),
    ("user.password_changed", "req-password-change", "member", {"method": "api", "usable_password": True}),
]


@pytest.mark.parametrize(
    ("action", "request_id", "actor", "details"), EXPECTED, ids=[f"{e[0]}:{e[1]}" for e in EXPECTED]
)
def test_flow_records_action_with_fields(flow, action, request_id, actor, details):
    events = _events(action, request_id)
    assert len(events) == 1, f"{action} for {request_id}: {len(events)} events"
    event = events[0]
    expected_actor = {
        "member": flow["member"].username,
        "admin": flow["admin"].username,
        "agent": str(flow["agent"].id),
    }[actor]
    assert event.actor == expected_actor
    assert event.actor_type == ("agent" if actor == "agent" else "user")
    assert event.ip == CLIENT_IP
    assert event.user_agent == USER_AGENT
    assert event.time is not None
    event = sealed(event)
    assert event.hash == chain.row_hash(event.chain_fields())
    for key, value in details.items():
        assert event.details.get(key) == value, (key, event.details)
    if actor == "agent" or action.startswith("agent_token") or action in ("agent.access_denied", "agent.mode_changed"):
        assert event.agent_id == flow["agent"].id
        assert event.workspace_id == flow["workspace"].id


def test_agent_decisions_carry_route_scope_and_mode(flow):
    denied = _events("agent.access_denied", "req-denied")[0]
    assert denied.details["route"] == reverse("agents:agent-gitsshkey")
    assert {"route", "scope", "mode"} <= set(denied.details)
    for request_id in ("req-gitsshkey", "req-external-auth", "req-gitauth"):
        accessed = _events("agent.user_data_accessed", request_id)[0]
        assert {"route", "mode"} <= set(accessed.details)


def test_token_events_carry_only_the_display_hint(flow):
    issued = _events("agent_token.issued", "req-agent-token-issue")[0]
    assert issued.details["token_hint"] == tokens.display_hint(flow["agent_token"]["token"])
    assert issued.details["token_id"] == flow["agent_token"]["id"]
    rotated = _events("agent_token.rotated", "req-rotate")[0]
    assert rotated.details["token_hint"] == tokens.display_hint(flow["renewal"]["token"])
    assert rotated.details["new_token_hint"] == tokens.display_hint(flow["successor"]["token"])
    assert rotated.details["new_token_id"] == flow["successor"]["id"]
    reuse = _events("agent_token.reuse_detected", "req-reuse")[0]
    assert reuse.details["token_hint"] == tokens.display_hint(flow["renewal"]["token"])
    assert reuse.details["revoked_ids"] == [flow["successor"]["id"]]


def test_reason_is_neutralised(flow):
    """Log injection: a newline or control character in a reason cannot forge a second log line."""
    reason = _events("workspace.mode_changed", "req-workspace-mode")[0].details["reason"]
    assert reason.startswith("tighten FORGED")
    assert all(character.isprintable() for character in reason), repr(reason)


def test_no_secret_in_any_audit_row(flow):
    """No plaintext token, private key or OAuth secret anywhere in the log: at most a display hint."""
    dump = "\n".join(json.dumps(chain.canonical_fields(row)) for row in AuditEvent.objects.values(*chain.FIELDS))
    for secret in flow["secrets"]:
        assert secret not in dump
        assert secret[4:-4] not in dump
    assert "PRIVATE KEY" not in dump


def test_audit_archived_is_recorded(db, tmp_path, audit_signing_key):
    old = record_events(2)
    call_command(
        "archive_audit",
        "--before",
        (timezone.now() + timedelta(seconds=1)).isoformat(),
        "--to",
        str(tmp_path / "a.jsonl"),
        stdout=StringIO(),
        stderr=StringIO(),
    )
    event = AuditEvent.objects.get(action="audit.archived")
    assert event.actor_type == "system"
    assert event.details["count"] == 2
    assert event.details["archived_head"] == old[-1].hash
    assert len(event.details["sha256"]) == 64


# Actions no REST flow above can cause, and the tests that cover them instead.
COVERED_ELSEWHERE = {
    actions.AUDIT_ARCHIVED: "test_archive_records_its_own_event (above)",
    actions.AGENT_TOKEN_PURGED: "agents/tests/commands/test_purge_tokens.py",
    actions.USER_TOKEN_PURGED: "agents/tests/commands/test_purge_tokens.py",
    actions.AGENT_LOG_PURGED: "agents/tests/commands/test_purge_reports.py",
    actions.APP_STATUS_PURGED: "agents/tests/commands/test_purge_reports.py",
    actions.USER_CREATED: "agents/tests/admin/test_admin_audit.py",
    actions.USER_UPDATED: "agents/tests/admin/test_admin_audit.py",
    actions.USER_DELETED: "agents/tests/admin/test_admin_audit.py",
    actions.USER_DATA_REENCRYPTED: "agents/tests/commands/test_rotate_keys.py",
    actions.ACCESS_REQUEST_CREATED: "agents/tests/services/test_elevation.py",
    actions.ACCESS_REQUEST_APPROVED: "agents/tests/services/test_elevation.py",
    actions.ACCESS_REQUEST_DENIED: "agents/tests/services/test_elevation.py",
    actions.ACCESS_REQUEST_REVOKED: "agents/tests/services/test_elevation.py",
    actions.ACCESS_REQUEST_EXPIRED: "agents/tests/commands/test_expire_access_requests.py",
}


def test_every_catalogued_action_is_covered():
    """An action added to audit/actions.py without a flow test here (or a named test elsewhere) fails this."""
    assert {action for action, *_ in EXPECTED} | set(COVERED_ELSEWHERE) == set(actions.ALL)


def test_audit_record_refuses_an_action_missing_from_the_catalogue(db):
    """The catalogue is the one list: a name outside it is a programming error, and nothing is written."""
    with pytest.raises(ValueError, match="audit/actions.py"), transaction.atomic():
        audit_record(action="workspace.renamed", actor_type="system")
    assert not AuditEvent.objects.filter(action="workspace.renamed").exists()
