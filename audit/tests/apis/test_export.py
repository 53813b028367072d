"""GET /api/v2/audit/export (CSV, JSONL) and its manifest: streaming, formula escaping, completeness proofs."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime, timedelta
from unittest import mock

import psycopg
import pytest
from django.db import connection
from django.urls import reverse

from audit import exports
from audit.models import AuditEvent
from audit.selectors import AuditFilters
from tests.helpers.audit import EVENT_FIELDS, T0, ids, make_event
from tests.helpers.clients import client_for_agent_token
from tests.helpers.factories import PASSWORD
from tests.helpers.responses import assert_status, check_status

pytestmark = pytest.mark.django_db


def export(client, export_format: str = "csv", **params):
    response = client.get(reverse("audit:audit-export"), {"format": export_format, **params})
    body = check_status(response, 200)
    return response, body


def csv_rows(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode())))


def test_csv_export_streams_oldest_first_with_a_header(auditor_client):
    events = [make_event("user.created", details={"n": number}) for number in range(3)]
    response, body = export(auditor_client, action="user.created")
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert body.decode().splitlines()[0].split(",") == EVENT_FIELDS
    rows = csv_rows(body)
    assert [int(row["id"]) for row in rows] == [event.id for event in events]
    assert json.loads(rows[0]["details"]) == {"n": 0}
    assert rows[0]["hash"] == events[0].hash
    assert rows[0]["prev_hash"] == events[0].prev_hash
    assert rows[0]["time"].endswith("Z")
    assert datetime.fromisoformat(rows[0]["time"]) == events[0].time


def test_export_reads_through_a_server_side_cursor_in_chunks(auditor_client, monkeypatch):
    """Memory stays flat only if rows come from a named cursor a chunk at a time, never all at once."""
    monkeypatch.setattr(exports, "CHUNK_ROWS", 3)
    events = [make_event("user.created") for _ in range(10)]
    with mock.patch.object(connection, "chunked_cursor", wraps=connection.chunked_cursor) as chunked_cursor:
        response = auditor_client.get(reverse("audit:audit-export"), {"action": "user.created"})
        chunks = list(response.streaming_content)
    chunked_cursor.assert_called_once()
    assert len(chunks) == 1 + 4  # the header, then 3 + 3 + 3 + 1 rows
    assert [int(row["id"]) for row in csv_rows(b"".join(chunks))] == [event.id for event in events]


@pytest.mark.parametrize("value", ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1:A2)", "\tcmd", "\rcmd"])
def test_csv_cells_that_look_like_formulas_are_escaped(auditor_client, value):
    """CSV injection: a spreadsheet must show the text, never evaluate it."""
    AuditEvent.objects.create(
        time=T0, action="user.deleted", actor_type="user", actor=value, user_agent=value, request_id=value
    )
    _, body = export(auditor_client, action="user.deleted")
    (row,) = csv_rows(body)
    assert row["actor"] == "'" + value
    assert row["user_agent"] == "'" + value
    assert row["request_id"] == "'" + value


def test_harmless_cells_are_left_alone(auditor_client):
    AuditEvent.objects.create(time=T0, action="user.deleted", actor_type="user", actor="alice", user_agent="curl/8.5")
    _, body = export(auditor_client, action="user.deleted")
    (row,) = csv_rows(body)
    assert (row["actor"], row["user_agent"], row["actor_type"]) == ("alice", "curl/8.5", "user")


def test_python_twin_of_the_formula_guard():
    assert exports.escape_formula("=1") == "'=1"
    assert exports.escape_formula("a=1") == "a=1"


def test_jsonl_export_has_design_keys_and_a_manifest_covering_the_rows(auditor_client, agent):
    events = [make_event("user.created", agent_id=agent.id, details={"n": number}) for number in range(4)]
    response, body = export(auditor_client, "jsonl", action="user.created")
    assert response["Content-Type"].startswith("application/x-ndjson")
    lines = body.decode().splitlines(keepends=True)
    records = [json.loads(line) for line in lines[:-1]]
    assert [record["id"] for record in records] == [event.id for event in events]
    assert list(records[0]) == EVENT_FIELDS
    assert records[0]["details"] == {"n": 0}
    assert records[0]["agent_id"] == str(agent.id)
    assert records[0]["hash"] == events[0].hash
    manifest = json.loads(lines[-1])["manifest"]
    assert manifest["rows"] == 4
    assert manifest["sha256"] == hashlib.sha256("".join(lines[:-1]).encode()).hexdigest()
    assert manifest["filters"] == {"action": ["user.created"]}
    assert manifest["until"] == response["X-Audit-Export-Until"]


def test_jsonl_keeps_raw_values_unescaped(auditor_client):
    """The formula guard is for spreadsheets; JSON consumers get the recorded value."""
    AuditEvent.objects.create(time=T0, action="user.deleted", actor_type="user", actor="=1+1")
    _, body = export(auditor_client, "jsonl", action="user.deleted")
    assert json.loads(body.decode().splitlines()[0])["actor"] == "=1+1"


def test_csv_manifest_matches_the_downloaded_body_and_is_reproducible(auditor_client):
    """An auditor proves a CSV complete: the companion manifest gives its row count and SHA-256."""
    for number in range(5):
        make_event("user.created", details={"n": number})
    response, body = export(auditor_client, action="user.created")
    until = response["X-Audit-Export-Until"]
    make_event("user.created", details={"n": "after the export"})

    manifest_response = auditor_client.get(
        reverse("audit:audit-export-manifest"),
        {"format": "csv", "action": "user.created", "until": until},
    )
    assert_status(manifest_response, 200)
    manifest = manifest_response.json()["manifest"]
    assert manifest["rows"] == 5
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest["until"] == until


def test_tampered_csv_no_longer_matches_its_manifest(auditor_client):
    make_event("user.created", details={"n": 1})
    response, body = export(auditor_client, action="user.created")
    manifest = auditor_client.get(
        reverse("audit:audit-export-manifest"),
        {"action": "user.created", "until": response["X-Audit-Export-Until"]},
    ).json()["manifest"]
    edited = body.replace(b'""n"": 1', b'""n"": 2')
    assert edited != body
    assert hashlib.sha256(edited).hexdigest() != manifest["sha256"]


def test_jsonl_manifest_endpoint_agrees_with_the_manifest_line(auditor_client):
    make_event("user.created")
    response, body = export(auditor_client, "jsonl", action="user.created")
    line = json.loads(body.decode().splitlines()[-1])
    endpoint = auditor_client.get(
        reverse("audit:audit-export-manifest"),
        {"format": "jsonl", "action": "user.created", "until": response["X-Audit-Export-Until"]},
    ).json()
    assert endpoint == line


def test_file_name_carries_the_time_range(auditor_client):
    until = T0 + timedelta(days=2, hours=12)
    response, _ = export(auditor_client, since=T0.isoformat(), until=until.isoformat())
    assert response["Content-Disposition"] == (
        'attachment; filename="coderauth-audit_2026-11-01T000000Z_2026-11-03T120000Z.csv"'
    )


def test_open_ended_export_is_pinned_to_now(auditor_client):
    before = datetime.now(UTC)
    response, _ = export(auditor_client, "jsonl")
    until = datetime.fromisoformat(response["X-Audit-Export-Until"])
    assert before <= until <= datetime.now(UTC)
    stamp = until.strftime("%Y-%m-%dT%H%M%S.%fZ" if until.microsecond else "%Y-%m-%dT%H%M%SZ")
    assert response["Content-Disposition"] == f'attachment; filename="coderauth-audit_begin_{stamp}.jsonl"'


@pytest.mark.parametrize(
    "params",
    [{"action": "user.login"}, {"actor": "alice"}, {"action": ["user.login", "agent_token.issued"], "actor": "alice"}],
)
def test_export_applies_the_same_filters_as_the_list(auditor_client, params):
    make_event("user.login", actor="alice")
    make_event("user.login", actor="bob")
    make_event("agent_token.issued", actor="alice")
    listed = ids(auditor_client.get(reverse("audit:audit-list"), params))
    _, body = export(auditor_client, **params)
    assert [int(row["id"]) for row in csv_rows(body)] == sorted(listed)


@pytest.mark.parametrize(
    ("params", "field"), [({"format": "xml"}, "format"), ({"since": "soon"}, "since"), ({"agent": "x"}, "agent")]
)
def test_bad_export_input_is_a_json_400(auditor_client, params, field):
    for route in ("audit:audit-export", "audit:audit-export-manifest"):
        response = auditor_client.get(reverse(route), params)
        assert_status(response, 400)
        assert response["Content-Type"].startswith("application/json")
        assert field in response.json()


def test_no_secret_in_any_export_of_a_flow_generated_log(api_client, admin_client, auditor_client, member):
    """Tokens, the SSH private key and OAuth tokens never reach the audit log, so never an export."""
    secrets = []
    response = api_client.post(
        reverse("agents:user-login"), {"username": member.username, "password": PASSWORD}, format="json"
    )
    assert_status(response, 201)
    secrets.append(response.data["session_token"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {secrets[-1]}")
    api_client.post(reverse("agents:user-login"), {"username": member.username, "password": "wrong"}, format="json")

    response = api_client.post(reverse("agents:user-token-list"), {"name": "cli"}, format="json")
    assert_status(response, 201)
    secrets.append(response.data["token"])
    workspace_id = api_client.post(reverse("agents:workspace-list"), {"name": "dev"}, format="json").data["id"]
    response = api_client.post(reverse("agents:agent-create", args=[workspace_id]), {"name": "main"}, format="json")
    agent_id = response.data["id"]
    response = api_client.post(reverse("agents:agent-token-list", args=[agent_id]), {"name": "ci"}, format="json")
    assert_status(response, 201)
    secrets.append(response.data["token"])
    token_id = response.data["id"]
    agent = client_for_agent_token(secrets[-1])

    response = admin_client.post(
        reverse("agents:external-auth-providers"),
        {"id": "github", "type": "github", "regex": r"github\.com"},
        format="json",
    )
    assert_status(response, 201)
    access_token = "gho_" + "S3cr3tAccessToken" * 2
    secrets.append(access_token)
    response = api_client.put(
        reverse("agents:user-external-auth", args=["github"]), {"access_token": access_token}, format="json"
    )
    assert_status(response, 200)

    response = agent.get(reverse("agents:agent-gitsshkey"))
    assert_status(response, 200)
    secrets.append(response.data["private_key"])
    assert_status(agent.get(reverse("agents:agent-external-auth"), {"id": "github"}), 200)
    response = agent.post(reverse("agents:agent-child-token"), {}, format="json")
    assert_status(response, 201)
    secrets.append(response.data["token"])

    response = api_client.patch(
        reverse("agents:workspace-detail", args=[workspace_id]), {"permission_mode": "no-user-data"}, format="json"
    )
    assert_status(response, 200)
    assert_status(agent.get(reverse("agents:agent-gitsshkey")), 403)
    assert_status(api_client.delete(reverse("agents:agent-token-detail", args=[agent_id, token_id])), 204)
    assert_status(agent.get(reverse("agents:agent-manifest")), 401)

    _, csv_body = export(auditor_client)
    _, jsonl_body = export(auditor_client, "jsonl")
    actions = {json.loads(line).get("action") for line in jsonl_body.decode().splitlines()}
    assert {"user.login", "user.login_failed", "agent_token.issued", "agent.user_data_accessed"} <= actions
    assert {"agent.access_denied", "workspace.mode_changed", "agent_token.revoked", "agent_token.rejected"} <= actions
    for body in (csv_body, jsonl_body):
        text = body.decode()
        for secret in secrets:
            assert secret not in text
            # Nor any long fragment of it (a truncated token is still a leak).
            assert secret.strip()[-24:] not in text


def test_csv_lines_rendered_in_sql_parse_to_the_cells_postgres_writes(auditor_client):
    """The export builds its CSV lines in SQL for speed; they must read back exactly as COPY ... CSV of the cells."""
    AuditEvent.objects.create(
        time=T0,
        action="user.external_auth_linked",
        actor_type="user",
        actor='a,"b"\nc',
        user_agent="=x",
        request_id="",
        details={"k": 'v"q,', "n": None},
    )
    make_event("user.external_auth_linked", details={"reason": "x, y"})
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    _, body = export(auditor_client, action="user.external_auth_linked", until=until)

    filters = AuditFilters(actions=["user.external_auth_linked"], until=datetime.fromisoformat(until))
    sql, params = exports.audit_export_cells_sql(filters=filters)
    connection.ensure_connection()
    raw = connection.connection
    literal_sql = psycopg.ClientCursor(raw).mogrify(sql, params)
    with raw.cursor() as cursor, cursor.copy(f"COPY ({literal_sql}) TO STDOUT WITH (FORMAT csv, HEADER)") as copy:
        copied = b"".join(bytes(chunk) for chunk in copy)

    exported_rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    copied_rows = list(csv.reader(io.StringIO(copied.decode(), newline="")))
    assert len(exported_rows) == 3
    assert exported_rows[1:] == copied_rows[1:]
    assert exported_rows[1][4] == 'a,"b"\nc'
    assert exported_rows[1][9] == "'=x"


def test_abandoned_download_closes_its_cursor_and_transaction(auditor_client, monkeypatch):
    """A client that hangs up mid-file must not leave a transaction (and its snapshot) open on the connection."""
    monkeypatch.setattr(exports, "CHUNK_ROWS", 2)
    for _ in range(6):
        make_event("user.created")
    depth = len(connection.atomic_blocks)
    response = auditor_client.get(reverse("audit:audit-export"), {"action": "user.created"})
    chunks = iter(response.streaming_content)
    next(chunks)  # the header
    next(chunks)  # two rows: the cursor is open inside the export's transaction now
    # The slot's transaction (held from the slot's taking to its release) and the cursor's, inside it.
    assert len(connection.atomic_blocks) == depth + 2
    response.close()
    assert len(connection.atomic_blocks) == depth


@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
def test_empty_selection_still_has_a_manifest(auditor_client, export_format):
    response, body = export(auditor_client, export_format, action="user_token.purged")
    manifest = auditor_client.get(
        reverse("audit:audit-export-manifest"),
        {"format": export_format, "action": "user_token.purged", "until": response["X-Audit-Export-Until"]},
    ).json()["manifest"]
    assert manifest["rows"] == 0
    if export_format == "csv":
        assert body.decode() == ",".join(EVENT_FIELDS) + "\r\n"
        assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    else:
        assert json.loads(body) == {"manifest": manifest}
        assert manifest["sha256"] == hashlib.sha256(b"").hexdigest()
