"""Audit exports cannot starve the server: slots per user and in total, released however a stream ends, the
manifest answered from its record, proxy buffering left on, and the stall cut-off set on the client's socket."""

from __future__ import annotations

import hashlib
import socket
import threading
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import connection
from django.urls import reverse

from audit import export_slots, exports
from audit.selectors import AuditFilters
from tests.helpers.audit import make_event, tamper
from tests.helpers.clients import client_for_user
from tests.helpers.factories import AdminFactory, AuditorFactory
from tests.helpers.responses import assert_status, check_status


def slots_held() -> int:
    """Export slots (advisory locks in the slots' namespace) held by any session on this database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [export_slots._NAMESPACE],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def client_gone(monkeypatch):
    """Close a response as the server does when its client hangs up. Closing sends request_finished, which would
    close the test's connection (it sits inside the test's transaction): keep it, to look at its locks after."""
    monkeypatch.setattr(connection, "close_if_unusable_or_obsolete", lambda: None)
    return lambda response: response.close()


def export_url(**params) -> tuple[str, dict]:
    return reverse("audit:audit-export"), {"format": "csv", **params}


@contextmanager
def export_held_open(client, **params):
    """An export whose reader took the first chunk and then waits, on its own thread and database connection
    (like another worker process): its slots are held until the block ends."""
    started, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def reader() -> None:
        try:
            response = client.get(*export_url(**params))
            assert response.status_code == 200, response.content
            next(iter(response.streaming_content))
            started.set()
            release.wait(timeout=60)
            response.close()
        except BaseException as error:  # surfaced below
            failures.append(error)
            started.set()
        finally:
            connection.close()

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert started.wait(timeout=60)
        assert failures == []
        yield
    finally:
        release.set()
        thread.join(timeout=60)
    assert failures == []


def assert_refused(response, code: str, limit: int) -> None:
    assert_status(response, 429)
    assert response["Content-Type"].startswith("application/json")
    assert response["Retry-After"] == str(export_slots.RETRY_AFTER_SECONDS)
    body = response.json()
    assert (body["code"], body["limit"]) == (code, limit)
    assert body["detail"]


def test_a_user_runs_one_export_at_a_time(transactional_db):
    """Security: one auditor cannot hold several workers with downloads. While the first export streams, a second
    download and a manifest that must be computed are refused with 429, before any byte of a file."""
    make_event("user.created")
    auditor = AuditorFactory()
    holder, other = client_for_user(auditor), client_for_user(auditor)
    with export_held_open(holder):
        assert_refused(other.get(*export_url()), "exports_per_user", 1)
        assert_refused(other.get(*export_url(format="jsonl")), "exports_per_user", 1)
        past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
        manifest = other.get(reverse("audit:audit-export-manifest"), {"until": past})
        assert_refused(manifest, "exports_per_user", 1)
    # The held export ended: its slot is free again.
    check_status(other.get(*export_url()), 200)
    assert slots_held() == 0


def test_the_installation_runs_at_most_the_total_number_of_exports(transactional_db):
    """Security: two users' downloads fill the installation's slots (default 2); a third user is refused, and the
    user slot that third request took is given back."""
    make_event("user.created")
    first, second, third = (client_for_user(factory()) for factory in (AuditorFactory, AdminFactory, AuditorFactory))
    with export_held_open(first), export_held_open(second):
        assert_refused(third.get(*export_url()), "exports_total", 2)
        assert slots_held() == 4  # two exports, each a user slot and a total slot
    check_status(third.get(*export_url()), 200)
    assert slots_held() == 0


def test_limits_follow_the_settings(transactional_db, settings):
    settings.CODERAUTH_EXPORTS_PER_USER = 2
    settings.CODERAUTH_EXPORTS_TOTAL = 3
    make_event("user.created")
    auditor = AuditorFactory()
    clients = [client_for_user(auditor) for _ in range(3)]
    with export_held_open(clients[0]), export_held_open(clients[1]):
        assert_refused(clients[2].get(*export_url()), "exports_per_user", 2)
        check_status(client_for_user(AdminFactory()).get(*export_url()), 200)


@pytest.mark.django_db
def test_slots_are_released_when_the_stream_completes(auditor_client):
    make_event("user.created")
    response = auditor_client.get(*export_url())
    chunks = iter(response.streaming_content)
    next(chunks)
    assert slots_held() == 2
    list(chunks)
    assert slots_held() == 0


@pytest.mark.django_db
def test_slots_are_released_when_the_client_goes_away_mid_stream(auditor_client, monkeypatch, client_gone):
    """Django closes the response when the client hangs up: the export's slots must not outlive it."""
    monkeypatch.setattr(exports, "CHUNK_ROWS", 1)
    for _ in range(3):
        make_event("user.created")
    response = auditor_client.get(*export_url())
    chunks = iter(response.streaming_content)
    next(chunks)
    next(chunks)
    assert slots_held() == 2
    client_gone(response)
    assert slots_held() == 0


@pytest.mark.django_db
def test_slots_are_released_when_the_response_is_closed_before_its_first_byte(auditor_client, client_gone):
    response = auditor_client.get(*export_url())
    assert slots_held() == 2
    client_gone(response)
    assert slots_held() == 0


@pytest.mark.django_db
def test_slots_are_released_when_the_export_fails_mid_stream(auditor_client, monkeypatch):
    make_event("user.created")

    def broken(**kwargs):
        yield b"header\r\n"
        raise RuntimeError("the database went away")

    monkeypatch.setattr(exports, "_body_chunks", broken)
    response = auditor_client.get(*export_url())
    chunks = iter(response.streaming_content)
    next(chunks)
    with pytest.raises(RuntimeError):
        next(chunks)
    assert slots_held() == 0


@pytest.mark.django_db
def test_proxy_buffering_is_left_on(auditor_client):
    """A buffering reverse proxy absorbs slow readers; the export must not switch it off."""
    response = auditor_client.get(*export_url())
    list(response.streaming_content)
    assert "X-Accel-Buffering" not in response


@pytest.mark.django_db
def test_the_stall_cut_off_is_set_on_the_client_socket_and_restored(auditor_client, settings):
    """Under gunicorn a send blocked for CODERAUTH_EXPORT_STALL_SECONDS fails, freeing the worker and the slot."""
    settings.CODERAUTH_EXPORT_STALL_SECONDS = 7
    make_event("user.created")
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        assert server_side.gettimeout() is None
        response = auditor_client.get(*export_url(), **{"gunicorn.socket": server_side})
        assert server_side.gettimeout() == 7
        list(response.streaming_content)
        assert server_side.gettimeout() is None


@pytest.mark.django_db
def test_each_write_is_small_so_the_cut_off_bounds_a_stall_not_a_chunk(auditor_client, monkeypatch):
    monkeypatch.setattr(exports, "SEND_BYTES", 100)
    for _ in range(5):
        make_event("user.created")
    response = auditor_client.get(*export_url(action="user.created"))
    pieces = list(response.streaming_content)
    assert max(len(piece) for piece in pieces) == 100
    assert len(b"".join(pieces).decode().splitlines()) == 1 + 5


def manifest_of(client, **params):
    response = client.get(reverse("audit:audit-export-manifest"), params)
    assert_status(response, 200)
    return response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("export_format", ["csv", "jsonl"])
def test_the_manifest_of_a_finished_export_is_served_from_its_record(auditor_client, export_format):
    """The manifest endpoint does not stream the export again: the export recorded its manifest as it ended."""
    for number in range(3):
        make_event("user.created", details={"n": number})
    response = auditor_client.get(*export_url(format=export_format, action="user.created"))
    body = b"".join(response.streaming_content)
    until = response["X-Audit-Export-Until"]
    params = {"format": export_format, "action": "user.created", "until": until}
    with mock.patch.object(exports, "_body_chunks", wraps=exports._body_chunks) as streamed:
        first = manifest_of(auditor_client, **params)
        second = manifest_of(auditor_client, **params)
    streamed.assert_not_called()
    assert first == second
    assert first["manifest"]["rows"] == 3
    covered = body if export_format == "csv" else body[: body.rindex(b"\n", 0, -1) + 1]
    assert first["manifest"]["sha256"] == hashlib.sha256(covered).hexdigest()
    # The same shape and values as a manifest computed from scratch.
    assert first == exports.audit_export_manifest(
        filters=AuditFilters(actions=["user.created"], until=datetime.fromisoformat(until)),
        export_format=export_format,
    )


@pytest.mark.django_db
def test_a_manifest_without_a_record_is_computed_once(auditor_client, django_assert_max_num_queries):
    make_event("user.created")
    until = (datetime.now(UTC) - timedelta(microseconds=1)).isoformat()
    with mock.patch.object(exports, "_body_chunks", wraps=exports._body_chunks) as streamed:
        first = manifest_of(auditor_client, action="user.created", until=until)
        assert streamed.call_count == 1
        # Served from the record: authentication, the log's start and the record; no stream, no slot.
        with django_assert_max_num_queries(4):
            second = manifest_of(auditor_client, action="user.created", until=until)
    assert streamed.call_count == 1
    assert first == second
    assert first["manifest"]["rows"] == 1


@pytest.mark.django_db
def test_the_manifest_of_a_future_until_is_never_recorded(auditor_client):
    """Rows can still be written before a future `until`: its manifest is computed on every call."""
    make_event("user.created")
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    response = auditor_client.get(*export_url(action="user.created", until=until))
    list(response.streaming_content)
    with mock.patch.object(exports, "_body_chunks", wraps=exports._body_chunks) as streamed:
        assert manifest_of(auditor_client, action="user.created", until=until)["manifest"]["rows"] == 1
        make_event("user.created")
        assert manifest_of(auditor_client, action="user.created", until=until)["manifest"]["rows"] == 2
    assert streamed.call_count == 2
    assert cache.get(exports._records_key(response.wsgi_request.user.pk)) is None


@pytest.mark.django_db
def test_a_record_made_before_rows_left_the_log_is_not_served_after(auditor_client):
    """Archiving removes the oldest rows, so an export of their range changes: the record is keyed by the log's
    start and a manifest asked after the archive is computed from the rows that remain."""
    first_event = make_event("user.created")
    make_event("user.created")
    response = auditor_client.get(*export_url(action="user.created"))
    list(response.streaming_content)
    params = {"action": "user.created", "until": response["X-Audit-Export-Until"]}
    assert manifest_of(auditor_client, **params)["manifest"]["rows"] == 2
    tamper("DELETE FROM audit_auditevent WHERE id <= %s", [first_event.id])  # as archive_audit does
    assert manifest_of(auditor_client, **params)["manifest"]["rows"] == 1


@pytest.mark.django_db
def test_records_are_kept_per_user_and_bounded(auditor_client, monkeypatch):
    """One cache row per user, holding the latest few: exports cannot fill the shared cache."""
    monkeypatch.setattr(exports, "MANIFESTS_PER_USER", 2)
    make_event("user.created")
    untils = []
    for _ in range(3):
        response = auditor_client.get(*export_url())
        list(response.streaming_content)
        untils.append(response["X-Audit-Export-Until"])
    records = cache.get(exports._records_key(response.wsgi_request.user.pk))
    assert len(records) == 2
    with mock.patch.object(exports, "_body_chunks", wraps=exports._body_chunks) as streamed:
        manifest_of(auditor_client, until=untils[2])
        assert streamed.call_count == 0
        manifest_of(auditor_client, until=untils[0])
        assert streamed.call_count == 1
