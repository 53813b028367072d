"""Two workers at once (as on two app nodes) share each sink's cursor: while one sends a batch, the other skips the
sink, and no event is sent by both."""

from __future__ import annotations

import threading

from django.db import connection

from audit.models import AuditStreamCursor
from audit.streaming.delivery import StreamTransports, audit_stream_deliver
from tests.helpers.audit import record_events
from tests.streaming.receivers import chain_verified


def _pass(sinks, **options):
    transports = StreamTransports(sinks)
    try:
        return audit_stream_deliver(sinks=sinks, transports=transports, seal_wait_seconds=0, **options)
    finally:
        transports.close()


def test_a_batch_in_flight_holds_the_cursor_and_a_second_worker_skips_the_sink(
    transactional_db, configure, http_receiver
):
    events = record_events(3)
    sinks = configure(http_receiver.url)
    http_receiver.hold = True
    outcome = {}

    def first_worker():
        try:
            outcome["result"] = _pass(sinks)
        finally:
            connection.close()

    worker = threading.Thread(target=first_worker)
    worker.start()
    try:
        assert http_receiver.arrived.wait(10)
        second = _pass(sinks)
        assert second.sinks[0].busy and second.delivered == 0
        assert AuditStreamCursor.objects.get(sink=sinks[0].name).last_id == 0
    finally:
        http_receiver.release.set()
        worker.join(30)

    assert outcome["result"].delivered == 3
    later = record_events(2)
    assert _pass(sinks).delivered == 2
    assert [event["id"] for event in http_receiver.acknowledged()] == [event.id for event in events + later]
    assert len(http_receiver.batches) == 2, "the second worker sent nothing while the first held the cursor"


def test_two_workers_at_once_send_each_event_exactly_once_in_order(transactional_db, configure, http_receiver):
    events = record_events(60)
    sinks = configure(http_receiver.url)
    start = threading.Barrier(2)
    results = []

    def worker():
        transports = StreamTransports(sinks)
        try:
            start.wait(10)
            for _ in range(100):
                results.append(
                    audit_stream_deliver(sinks=sinks, transports=transports, batch_size=4, seal_wait_seconds=0)
                )
                if AuditStreamCursor.objects.get(sink=sinks[0].name).last_id == events[-1].id:
                    break
        finally:
            transports.close()
            connection.close()

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)

    acknowledged = [event["id"] for event in http_receiver.acknowledged()]
    assert acknowledged == [event.id for event in events], "every event once, in id order"
    assert sum(result.delivered for result in results) == 60
    assert all(batch.status == 204 for batch in http_receiver.batches), "no batch was sent twice"
    assert chain_verified(http_receiver.acknowledged())
    assert AuditStreamCursor.objects.get(sink=sinks[0].name).delivered == 60
