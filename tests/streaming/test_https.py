"""The HTTPS sink against a real HTTP receiver on loopback: JSON-lines batches signed over a timestamp and the body,
checked with docs/audit.md's own snippet; failures retried with jittered, capped exponential backoff; a receiver
that goes away and comes back loses nothing, and nothing it acknowledged is sent again."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditStreamCursor
from audit.streaming.delivery import audit_stream_retry_delay
from audit.streaming.transports import audit_stream_signature
from tests.helpers.audit import record_events
from tests.streaming.conftest import SECRET
from tests.streaming.receivers import HttpReceiver, chain_verified

pytestmark = pytest.mark.django_db


def test_batches_are_json_lines_signed_over_timestamp_and_body(configure, stream, http_receiver):
    events = record_events(5)
    sinks = configure(http_receiver.url)

    assert stream(sinks, batch_size=2).delivered == 5

    assert len(http_receiver.batches) == 3
    assert all(batch.signature_valid and batch.status == 204 for batch in http_receiver.batches)
    batch = http_receiver.batches[0]
    assert batch.headers["content-type"] == "application/x-ndjson"
    assert batch.headers["x-coderauth-audit-signature"] == audit_stream_signature(
        body=batch.body, timestamp=batch.headers["x-coderauth-audit-timestamp"], secret=SECRET
    )
    acknowledged = http_receiver.acknowledged()
    assert [event["id"] for event in acknowledged] == [event.id for event in events]
    assert chain_verified(acknowledged)


def test_the_documented_check_refuses_a_replayed_or_altered_batch(http_receiver):
    """The receiver's snippet (docs/audit.md) refuses an old timestamp, a changed body and another key."""
    body = b'{"id":1}\n'
    fresh = str(int(time.time()))
    stale = str(int(time.time()) - 3600)
    verify = http_receiver.verify

    assert verify(body, fresh, audit_stream_signature(body=body, timestamp=fresh, secret=SECRET), SECRET)
    assert not verify(body, stale, audit_stream_signature(body=body, timestamp=stale, secret=SECRET), SECRET)
    assert not verify(body + b" ", fresh, audit_stream_signature(body=body, timestamp=fresh, secret=SECRET), SECRET)
    assert not verify(body, fresh, audit_stream_signature(body=body, timestamp=fresh, secret="other" * 8), SECRET)


def test_a_receiver_with_another_key_acknowledges_nothing(configure, stream, settings):
    receiver = HttpReceiver("a-different-key-0123456789-0123456789")
    try:
        record_events(2)
        sinks = configure(receiver.url)

        result = stream(sinks)

        assert result.failed[0].error == f"HTTP 401 from {sinks[0].address}"
        assert receiver.acknowledged() == []
        assert AuditStreamCursor.objects.get(sink=sinks[0].name).last_id == 0
    finally:
        receiver.close()


def test_failures_back_off_exponentially_then_each_event_is_acknowledged_once(configure, stream, http_receiver):
    events = record_events(4)
    http_receiver.fail_next = 2
    sinks = configure(http_receiver.url)
    t0 = timezone.now()

    first = stream(sinks, now=t0)
    cursor = AuditStreamCursor.objects.get(sink=sinks[0].name)
    assert first.failed[0].error == f"HTTP 500 from {sinks[0].address}"
    assert cursor.failures == 1 and cursor.last_id == 0
    assert timedelta(seconds=0.025) <= cursor.next_attempt_at - t0 <= timedelta(seconds=0.05)

    waiting = stream(sinks, now=t0)
    assert waiting.sinks[0].retry_at == cursor.next_attempt_at and not waiting.failed
    assert len(http_receiver.batches) == 1, "no attempt before the backoff is over"

    t1 = cursor.next_attempt_at
    assert stream(sinks, now=t1).failed
    cursor.refresh_from_db()
    assert cursor.failures == 2
    assert timedelta(seconds=0.05) <= cursor.next_attempt_at - t1 <= timedelta(seconds=0.1), "doubled"

    recovered = stream(sinks, now=cursor.next_attempt_at)

    assert recovered.delivered == 4 and not recovered.failed
    cursor.refresh_from_db()
    assert (cursor.failures, cursor.next_attempt_at, cursor.delivered) == (0, None, 4)
    assert cursor.last_error == f"HTTP 500 from {sinks[0].address}", "the last error stays on record"
    assert [batch.status for batch in http_receiver.batches] == [500, 500, 204]
    assert [event["id"] for event in http_receiver.acknowledged()] == [event.id for event in events]


@pytest.mark.parametrize("failures", [1, 2, 3, 5, 8, 40])
def test_backoff_doubles_up_to_its_cap_with_jitter(stream_settings, failures):
    ceiling = min(0.4, 0.05 * 2 ** (failures - 1))
    delays = {audit_stream_retry_delay(failures=failures).total_seconds() for _ in range(50)}
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(delays) > 1, "jittered"


def test_receiver_down_then_back_loses_nothing_and_acknowledges_nothing_twice(configure, stream, http_receiver):
    first = record_events(3)
    sinks = configure(http_receiver.url)
    assert stream(sinks).delivered == 3

    http_receiver.stop()
    later = record_events(3)
    down = stream(sinks)
    assert down.delivered == 0 and "ConnectError" in down.failed[0].error

    http_receiver.start()
    assert stream(sinks, retry_now=True).delivered == 3

    acknowledged = [event["id"] for event in http_receiver.acknowledged()]
    assert acknowledged == [event.id for event in first + later]
    assert chain_verified(http_receiver.acknowledged())


def test_the_batch_goes_to_the_receivers_own_url_without_coderauths_parameters(configure, stream, http_receiver):
    record_events(1)
    sinks = configure(f"{http_receiver.url}?format=ocsf&name=lake")

    stream(sinks)

    assert http_receiver.batches[0].path == "/ingest/receiver-path-token"
