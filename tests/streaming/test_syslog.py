"""Syslog sinks against real receivers on loopback: RFC 5424 messages over UDP, and octet-counted over TCP and TLS,
every event once and in id order, each carrying its id, prev_hash and hash so that the receiver can verify the chain."""

from __future__ import annotations

import pytest

from audit import chain
from audit.models import AuditEvent, AuditStreamCursor
from audit.streaming.transports import SyslogStreamTransport
from tests.helpers.audit import record_events
from tests.streaming.receivers import chain_verified

pytestmark = pytest.mark.django_db


def _native_lines(events) -> list[str]:
    rows = AuditEvent.objects.filter(id__in=[event.id for event in events]).order_by("id").values(*chain.FIELDS)
    return [chain.archive_line(row) for row in rows]


def test_udp_sends_every_sealed_event_in_order_as_rfc5424(configure, stream, udp_receiver):
    events = record_events(6)
    sinks = configure(udp_receiver.url)

    result = stream(sinks)

    assert result.delivered == 6 and not result.failed
    received = udp_receiver.wait_for(6)
    assert [event["id"] for event in received] == [event.id for event in events]
    assert [message.msg for message in udp_receiver.messages] == _native_lines(events)
    assert chain_verified(received)
    first = udp_receiver.messages[0]
    assert (first.facility, first.severity, first.app_name, first.msgid) == (
        13,
        6,
        "coderauth",
        "permission_mode.updated",
    )
    assert first.timestamp == chain.canonical_time(events[0].time)
    assert not udp_receiver.violations


def test_tcp_sends_batches_octet_counted_on_one_connection(configure, stream, tcp_receiver):
    events = record_events(10)
    sinks = configure(tcp_receiver.url)

    result = stream(sinks, batch_size=3)

    assert result.delivered == 10
    received = tcp_receiver.wait_for(10)
    assert [event["id"] for event in received] == [event.id for event in events]
    assert chain_verified(received)
    assert tcp_receiver.accepted == 1, "the connection is kept between batches"
    cursor = AuditStreamCursor.objects.get(sink=sinks[0].name)
    assert (cursor.last_id, cursor.last_hash, cursor.delivered) == (events[-1].id, events[-1].hash, 10)
    assert not tcp_receiver.violations


def test_tls_delivers_to_a_receiver_whose_certificate_the_ca_file_vouches_for(
    configure, stream, tls_receiver, tls_files
):
    events = record_events(3)
    sinks = configure(f"{tls_receiver.url}?ca_file={tls_files.ca}&name=siem-tls")

    assert stream(sinks).delivered == 3

    received = tls_receiver.wait_for(3)
    assert [event["id"] for event in received] == [event.id for event in events]
    assert chain_verified(received)


def test_tls_refuses_a_certificate_it_cannot_verify(configure, stream, tls_receiver):
    """Security regression: without the receiver's CA the certificate is not trusted, and nothing is sent."""
    record_events(2)
    sinks = configure(tls_receiver.url)

    result = stream(sinks)

    assert result.delivered == 0
    assert "CERTIFICATE_VERIFY_FAILED" in result.failed[0].error
    cursor = AuditStreamCursor.objects.get(sink=sinks[0].name)
    assert (cursor.last_id, cursor.delivered, cursor.failures) == (0, 0, 1)
    assert "CERTIFICATE_VERIFY_FAILED" in cursor.last_error and cursor.last_error_at is not None
    assert tls_receiver.events() == []


def test_tcp_receiver_down_then_back_loses_nothing_and_repeats_nothing(configure, stream, tcp_receiver):
    first = record_events(4)
    sinks = configure(tcp_receiver.url)
    assert stream(sinks).delivered == 4
    tcp_receiver.wait_for(4)

    tcp_receiver.stop()
    later = record_events(3)
    down = stream(sinks)
    assert down.delivered == 0 and down.failed, "the closed connection and the refused reconnect are failures"
    assert AuditStreamCursor.objects.get(sink=sinks[0].name).last_id == first[-1].id

    tcp_receiver.start()
    back = stream(sinks, retry_now=True)

    assert back.delivered == 3 and not back.failed
    received = tcp_receiver.wait_for(7)
    assert [event["id"] for event in received] == [event.id for event in first + later]
    assert chain_verified(received)


def test_ocsf_format_over_syslog(configure, stream, tcp_receiver):
    events = record_events(2)
    sinks = configure(f"{tcp_receiver.url}?format=ocsf")

    stream(sinks)

    received = tcp_receiver.wait_for(2)
    assert [event["metadata"]["uid"] for event in received] == [str(event.id) for event in events]
    assert [event["unmapped"]["coderauth"]["hash"] for event in received] == [event.hash for event in events]
    assert chain_verified([event["unmapped"]["coderauth"] for event in received])


def test_a_write_into_a_connection_the_receiver_closed_is_not_counted_as_delivered(
    configure, stream, tcp_receiver, monkeypatch
):
    """Even when the receiver's close goes unnoticed before the write (the race the check before each batch cannot
    close), the write is not acknowledged: the receiver's host resets the connection, and the batch fails."""
    (first,) = record_events(1)
    sinks = configure(tcp_receiver.url)
    assert stream(sinks).delivered == 1
    tcp_receiver.wait_for(1)
    tcp_receiver.stop()
    monkeypatch.setattr(SyslogStreamTransport, "_still_open", lambda self: True)
    record_events(1)

    result = stream(sinks)

    assert result.delivered == 0 and result.failed
    assert AuditStreamCursor.objects.get(sink=sinks[0].name).last_id == first.id
