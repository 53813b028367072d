"""The OCSF format: every action maps to a class, activity, status and severity, and every event validates against
OCSF 1.3.0's own JSON Schema (the ocsf-json-schema package ships the schema; jsonschema checks it). The export's
format=ocsf gives the same events, with the JSONL export's manifest and replay semantics."""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import timedelta

import jsonschema
import pytest
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from audit import actions, chain
from audit.models import AuditEvent
from audit.streaming.ocsf import OCSF_VERSION, ocsf_event
from tests.helpers.audit import T0, make_event
from tests.helpers.responses import check_status
from tests.streaming.receivers import chain_verified

CLASS_NAMES = {
    3001: "account_change",
    3002: "authentication",
    3004: "entity_management",
    3005: "user_access",
    6003: "api_activity",
}
WORKSPACE = "4b0c2f6e-8d1a-4c3e-9b7f-2a5d6e7f8a9b"
AGENT = "90642dcc-5a0e-4e0f-9a56-7d6c1d2c1f3b"


@functools.cache
def _validator(class_uid: int, profiles: tuple[str, ...]) -> jsonschema.Draft202012Validator:
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))
    return jsonschema.Draft202012Validator(
        schema.get_class_schema(class_name=CLASS_NAMES[class_uid], profiles=list(profiles))
    )


def assert_valid_ocsf(event: dict) -> None:
    validator = _validator(event["class_uid"], tuple(event["metadata"].get("profiles", [])))
    problems = [f"{'/'.join(map(str, error.path))}: {error.message[:200]}" for error in validator.iter_errors(event)]
    assert not problems, (event["unmapped"]["coderauth"]["action"], problems)


def _row(action: str, **fields) -> dict:
    row = {
        "id": 42,
        "time": "2026-11-28T17:59:14.688719Z",
        "action": action,
        "actor_type": "agent" if action.startswith(("agent.", "agent_token.rejected")) else "user",
        "actor": "alice",
        "workspace_id": WORKSPACE,
        "agent_id": AGENT,
        "details": {},
        "ip": "10.1.2.3",
        "user_agent": "curl/8.5.0",
        "request_id": "9f1c2d3e",
        "prev_hash": "5d2e" * 16,
        **fields,
    }
    row["hash"] = chain.row_hash(row)
    return row


@pytest.mark.parametrize("action", actions.ALL)
@pytest.mark.parametrize("actor_type", ["user", "agent", "system"])
@pytest.mark.parametrize("with_request", [True, False])
def test_every_action_is_a_valid_ocsf_event(action, actor_type, with_request):
    request = {} if with_request else {"ip": None, "user_agent": "", "request_id": "", "actor": ""}
    row = _row(action, actor_type=actor_type, details={"reason": "why", "method": "GET", "scopes": ["a"]}, **request)
    assert_valid_ocsf(ocsf_event(row))


@pytest.mark.parametrize("action", ["user.login_sso", "agent.something_refused", "tokens.rotated", "access_request.x"])
def test_an_action_added_later_still_maps_to_a_valid_event(action):
    assert_valid_ocsf(ocsf_event(_row(action)))


@pytest.mark.parametrize(
    ("action", "details", "class_uid", "activity_id", "status_id", "severity_id"),
    [
        # Authentication: sign-ins, whatever the method.
        ("user.login", {"method": "password"}, 3002, 1, 1, 1),
        ("user.login", {"method": "oidc"}, 3002, 1, 1, 1),
        ("user.login", {"method": "break_glass"}, 3002, 1, 1, 1),
        ("user.login_failed", {"method": "web", "reason": "bad_credentials"}, 3002, 1, 2, 3),
        # Account Change: tokens and passwords.
        ("user_token.issued", {}, 3001, 99, 1, 1),
        ("user_token.revoked", {}, 3001, 99, 1, 1),
        ("agent_token.issued", {}, 3001, 99, 1, 1),
        ("agent_token.revoked", {}, 3001, 99, 1, 1),
        ("agent_token.rotated", {}, 3001, 99, 1, 1),
        ("agent_token.reuse_detected", {}, 3001, 99, 2, 4),
        ("user.password_changed", {"method": "web", "username": "bob"}, 3001, 3, 1, 2),
        ("user.password_changed", {"method": "admin", "username": "bob"}, 3001, 4, 1, 2),
        ("user.created", {"username": "bob"}, 3001, 1, 1, 1),
        ("user.deleted", {"username": "bob"}, 3001, 6, 1, 1),
        # API Activity: agent access and denials.
        ("agent.user_data_accessed", {"route": "gitsshkey"}, 6003, 2, 1, 1),
        ("agent.access_denied", {"route": "gitsshkey", "method": "GET"}, 6003, 2, 2, 3),
        ("agent.access_denied", {"route": "tokens", "method": "POST"}, 6003, 1, 2, 3),
        ("agent_token.rejected", {"reason": "revoked"}, 6003, 99, 2, 3),
        # User Access Management: elevation.
        ("access_request.approved", {"scopes": ["agent:gitsshkey"]}, 3005, 1, 1, 2),
        ("access_request.revoked", {"scopes": ["agent:gitsshkey"]}, 3005, 2, 1, 1),
        ("access_request.denied", {"scopes": ["agent:gitsshkey"]}, 3005, 99, 2, 1),
        # Entity Management: the rest.
        ("workspace.mode_changed", {"from": "default", "to": "no-user-data"}, 3004, 3, 1, 1),
        ("permission_mode.deleted", {"mode": "ci"}, 3004, 4, 1, 1),
        ("audit.archived", {}, 3004, 4, 1, 1),
    ],
)
def test_class_activity_status_and_severity(action, details, class_uid, activity_id, status_id, severity_id):
    event = ocsf_event(_row(action, details=details))
    assert (event["class_uid"], event["activity_id"], event["status_id"], event["severity_id"]) == (
        class_uid,
        activity_id,
        status_id,
        severity_id,
    )
    assert event["category_uid"] == class_uid // 1000
    assert event["type_uid"] == class_uid * 100 + activity_id
    assert_valid_ocsf(event)


def test_common_fields_carry_the_event_id_time_actor_address_and_chain():
    row = _row("agent.access_denied", actor=AGENT, details={"route": "gitsshkey", "method": "GET", "reason": "mode"})
    event = ocsf_event(row)

    assert event["time"] == 1795888754688  # 2026-11-28T17:59:14.688Z in milliseconds
    assert event["metadata"]["uid"] == "42" and event["metadata"]["version"] == "1.3.0"
    assert event["metadata"]["product"]["name"] == "coderauth" and event["metadata"]["correlation_uid"] == "9f1c2d3e"
    assert event["actor"] == {"user": {"uid": AGENT, "type": "Agent", "type_id": 99}}
    assert event["src_endpoint"] == {"ip": "10.1.2.3"}
    assert event["api"]["operation"] == "GET gitsshkey"
    assert event["status_detail"] == "mode"
    assert event["unmapped"]["coderauth"] == json.loads(chain.archive_line(row))
    assert chain_verified([event["unmapped"]["coderauth"]])


def test_sign_in_names_the_user_and_the_method():
    event = ocsf_event(_row("user.login", actor_type="user", actor="alice", details={"method": "oidc"}))
    assert event["user"] == {"name": "alice", "type": "User", "type_id": 1}
    assert (event["auth_protocol_id"], event["auth_protocol"]) == (4, "OpenID")
    assert event["service"] == {"name": "coderauth"}


def test_access_request_names_the_agent_and_the_scopes():
    event = ocsf_event(_row("access_request.approved", details={"scopes": ["agent:gitsshkey", "agent:external-auth"]}))
    assert event["user"]["uid"] == AGENT
    assert event["privileges"] == ["agent:gitsshkey", "agent:external-auth"]
    assert event["actor"]["user"]["name"] == "alice"


# --- GET /api/v2/audit/export?format=ocsf -------------------------------------------------------------------------


def _export(client, **params):
    response = client.get(reverse("audit:audit-export"), {"format": "ocsf", **params})
    return response, check_status(response, 200)


@pytest.mark.django_db
def test_export_in_ocsf_has_one_valid_event_per_row_and_a_manifest(auditor_client):
    made = [
        make_event("user.login", actor_type="user", actor="alice", details={"method": "web"}),
        make_event("agent.access_denied", actor_type="agent", actor=AGENT, details={"route": "gitsshkey"}),
        make_event("workspace.created", details={"name": "demo"}),
    ]

    response, body = _export(auditor_client, action="user.login,agent.access_denied,workspace.created")

    lines = body.decode().splitlines()
    events, manifest = [json.loads(line) for line in lines[:-1]], json.loads(lines[-1])["manifest"]
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"].endswith('.ocsf.jsonl"')
    assert [event["metadata"]["uid"] for event in events] == [str(event.id) for event in made]
    assert [event["class_uid"] for event in events] == [3002, 6003, 3004]
    for event in events:
        assert_valid_ocsf(event)
    assert chain_verified([event["unmapped"]["coderauth"] for event in events])
    assert manifest["format"] == "ocsf" and manifest["rows"] == 3
    assert manifest["sha256"] == hashlib.sha256("".join(line + "\n" for line in lines[:-1]).encode()).hexdigest()


@pytest.mark.django_db
def test_export_in_ocsf_replays_identically_and_its_manifest_endpoint_agrees(auditor_client):
    for number in range(3):
        make_event("user.created", at=T0 + timedelta(minutes=number), details={"username": f"u{number}"})
    until = (T0 + timedelta(hours=1)).isoformat()

    _, first = _export(auditor_client, until=until, action="user.created")
    make_event("user.created", details={"username": "later"})
    _, replay = _export(auditor_client, until=until, action="user.created")
    endpoint = auditor_client.get(
        reverse("audit:audit-export-manifest"), {"format": "ocsf", "until": until, "action": "user.created"}
    ).json()

    assert replay == first
    assert endpoint == json.loads(first.decode().splitlines()[-1])


@pytest.mark.django_db
def test_export_in_ocsf_maps_the_rows_the_log_holds(auditor_client):
    event = make_event(
        "agent.user_data_accessed", actor_type="agent", actor=AGENT, agent_id=AGENT, details={"route": "gitsshkey"}
    )
    row = AuditEvent.objects.filter(pk=event.pk).values(*chain.FIELDS).get()

    _, body = _export(auditor_client, action="agent.user_data_accessed")

    assert json.loads(body.decode().splitlines()[0]) == ocsf_event(row)


def test_the_openapi_schema_offers_ocsf():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    parameters = schema["paths"]["/api/v2/audit/export"]["get"]["parameters"]
    export_format = next(parameter for parameter in parameters if parameter["name"] == "format")
    assert export_format["schema"]["enum"] == ["csv", "jsonl", "ocsf"]
