"""What the stream sends, and in what order: only sealed events, so one still in flight holds back those after it;
never a history that does not chain on from what the sink already has; and across an archive, the rest of the log."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction

from audit.models import AuditEvent, AuditStreamCursor
from audit.services import audit_record
from tests.helpers.audit import T0, make_event, record_events, tamper
from tests.helpers.audit_keys import write_key_pair
from tests.streaming.receivers import chain_verified


def _write(actor: str) -> AuditEvent:
    with transaction.atomic():
        return audit_record(action="permission_mode.updated", actor_type="system", actor=actor)


def test_an_event_still_in_flight_holds_back_the_ones_after_it(transactional_db, configure, stream, tcp_receiver):
    """An unsealed event is never sent, nor any after it: a transaction that drew a lower id and has not committed
    yet could still add its row before them."""
    before = record_events(2)
    sinks = configure(tcp_receiver.url)
    drawn, finish = threading.Event(), threading.Event()
    held = {}

    def slow_writer():
        try:
            with transaction.atomic():
                held["event"] = audit_record(action="permission_mode.updated", actor_type="system", actor="slow")
                drawn.set()
                finish.wait(30)
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert drawn.wait(10)
        later = _write("fast")
        assert later.id > held["event"].id

        assert stream(sinks).delivered == 2
        assert AuditEvent.objects.get(pk=later.pk).hash == "", "committed, but not sealed while the lower id is open"
    finally:
        finish.set()
        writer.join(30)

    assert stream(sinks).delivered == 2
    received = tcp_receiver.wait_for(4)
    assert [event["id"] for event in received] == [before[0].id, before[1].id, held["event"].id, later.id]
    assert chain_verified(received)


@pytest.mark.django_db
def test_a_rewritten_row_stops_the_sink_instead_of_being_sent(configure, stream, tcp_receiver, caplog):
    """Security regression: a row altered behind the triggers' back no longer hashes to its hash; the stream stops
    at it rather than hand the SIEM a history that does not verify."""
    (first,) = record_events(1)
    sinks = configure(tcp_receiver.url)
    assert stream(sinks).delivered == 1
    second, _third = record_events(2)
    tamper("UPDATE audit_auditevent SET actor = 'someone else' WHERE id = %s", [second.id])

    result = stream(sinks)

    assert result.delivered == 0
    assert result.failed[0].error == f"audit chain broken at row {second.id}: hash mismatch: the row was altered"
    cursor = AuditStreamCursor.objects.get(sink=sinks[0].name)
    assert (cursor.last_id, cursor.failures) == (first.id, 1)
    assert "audit chain broken" in cursor.last_error
    assert [event["id"] for event in tcp_receiver.wait_for(1)] == [first.id]
    assert "verify_audit tells more" in caplog.text


@pytest.mark.django_db
def test_a_removed_row_stops_the_sink(configure, stream, tcp_receiver):
    (first,) = record_events(1)
    sinks = configure(tcp_receiver.url)
    assert stream(sinks).delivered == 1
    second, third = record_events(2)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [second.id])

    result = stream(sinks)

    assert result.failed[0].error == (
        f"audit chain broken at row {third.id}: prev_hash does not match the hash of row {first.id}, the last one this "
        "sink received"
    )


@pytest.mark.django_db
def test_rows_archived_before_the_sink_received_them_are_skipped_with_a_warning(
    configure, stream, tcp_receiver, settings, tmp_path, caplog
):
    settings.CODERAUTH_AUDIT_SIGNING_KEY_FILE = str(write_key_pair(tmp_path).private)
    first = make_event(at=T0)
    sinks = configure(tcp_receiver.url)
    assert stream(sinks).delivered == 1
    archived = [make_event(at=T0 + timedelta(minutes=minute)) for minute in (1, 2)]
    kept = make_event()
    call_command(
        "archive_audit",
        "--before",
        (T0 + timedelta(days=1)).isoformat(),
        "--to",
        str(tmp_path / "a.jsonl"),
        stdout=StringIO(),
        stderr=StringIO(),
    )

    with caplog.at_level(logging.WARNING, logger="audit.streaming.delivery"):
        result = stream(sinks)

    assert result.delivered == 2 and not result.failed  # the kept row and the audit.archived row
    received = tcp_receiver.wait_for(3)
    assert [event["id"] for event in received][:2] == [first.id, kept.id]
    assert received[1]["prev_hash"] == archived[-1].hash
    assert received[2]["action"] == "audit.archived"
    assert chain_verified(received[1:])
    assert f"the rows after {first.id} up to {kept.id} were archived before this sink received them" in caplog.text
