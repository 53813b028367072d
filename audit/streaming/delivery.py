"""Delivering the audit log to its sinks: in id order, at least once, batched, never sent twice once acknowledged.

Only sealed rows are sent. Sealed rows are a prefix of the log (audit/sealing.py): once a row is sealed, no row with
a lower id can still appear, so a cursor that only ever passes sealed rows never skips one that committed late.
Each pass seals first, so streaming needs no separate `seal_audit`.

Per sink, one batch at a time:

1. read the cursor and the next sealed rows after it (short reads, no lock), and check that they chain on from the
   last row the sink received;
2. lock the cursor's row (`FOR UPDATE SKIP LOCKED`: a cursor another worker holds is skipped, that worker is on
   it), and go back to 1 if it moved meanwhile;
3. send the batch while holding the lock; once the receiver acknowledged it (audit/streaming/transports.py),
   move the cursor in the same transaction. A failure is recorded instead, with the time of the next attempt
   (exponential backoff, jittered, shared by every worker through the row).

A worker that dies mid-batch rolls back: the batch is sent again by the next one (at least once; receivers
deduplicate on the event id). The transaction touches only the cursor table, so it never delays the sealer,
which waits for transactions holding a lock on the audit table.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit import chain
from audit.models import AuditEvent, AuditStreamCursor
from audit.sealing import audit_seal
from audit.streaming.messages import event_line
from audit.streaming.sinks import Sink
from audit.streaming.transports import DeliveryFailed, Transport, transport_for

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
MAX_BATCH_SIZE = 5000


@dataclass
class SinkResult:
    """What one pass did for one sink."""

    sink: str
    delivered: int = 0
    error: str = ""
    # Another worker held the cursor: it is delivering this sink.
    busy: bool = False
    # The sink failed before and its next attempt is not due yet.
    retry_at: datetime | None = None


@dataclass
class StreamPass:
    sinks: list[SinkResult] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return sum(result.delivered for result in self.sinks)

    @property
    def failed(self) -> list[SinkResult]:
        return [result for result in self.sinks if result.error]


def audit_stream_retry_delay(*, failures: int) -> timedelta:
    """After `failures` failed attempts in a row: CODERAUTH_AUDIT_STREAM_RETRY_SECONDS doubling per failure, capped at
    CODERAUTH_AUDIT_STREAM_RETRY_MAX_SECONDS, jittered between half and all of it so that workers and sinks coming
    back do not all retry at the same instant."""
    base = settings.CODERAUTH_AUDIT_STREAM_RETRY_SECONDS
    ceiling = min(settings.CODERAUTH_AUDIT_STREAM_RETRY_MAX_SECONDS, base * 2 ** min(max(failures - 1, 0), 30))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


class StreamTransports(dict):
    """A worker's open transports by sink name, created on first use and kept between passes (connections)."""

    def __init__(self, sinks: list[Sink]):
        super().__init__()
        self._sinks = {sink.name: sink for sink in sinks}

    def __missing__(self, name: str) -> Transport:
        transport = self[name] = transport_for(self._sinks[name])
        return transport

    def close(self) -> None:
        for transport in self.values():
            transport.close()
        self.clear()


def _cursor_peek(name: str) -> dict[str, Any]:
    """The sink's cursor as it stands (made on first use), without a lock."""
    fields = ("last_id", "last_hash", "next_attempt_at")
    found = AuditStreamCursor.objects.filter(sink=name).values(*fields).first()
    if found is None:
        # Two workers may both find none: one insert wins, the other is ignored.
        AuditStreamCursor.objects.bulk_create([AuditStreamCursor(sink=name)], ignore_conflicts=True)
        found = AuditStreamCursor.objects.filter(sink=name).values(*fields).get()
    return found


def audit_stream_rows_after(*, last_id: int, limit: int) -> list[dict[str, Any]]:
    """The next sealed rows after `last_id`, in id order, as the chain hashes them."""
    return list(AuditEvent.objects.filter(id__gt=last_id).exclude(hash="").order_by("id").values(*chain.FIELDS)[:limit])


def _chain_problem(*, sink: Sink, last_id: int, last_hash: str, rows: list[dict[str, Any]]) -> str:
    """Why these rows must not be sent after the sink's last one, or "" when they chain on from it.

    One gap is expected: archive_audit moved rows out before this sink received them (they are in its archive file).
    Then none of the rows up to the cursor remain, and the batch starts from the log's new first row.
    """
    first = rows[0]
    start = last_hash or first["prev_hash"]
    if last_hash and first["prev_hash"] != last_hash:
        if AuditEvent.objects.filter(id__lte=last_id).exists():
            return str(
                chain.ChainBroken(
                    first["id"], f"prev_hash does not match the hash of row {last_id}, the last one this sink received"
                )
            )
        logger.warning(
            "audit stream %s: the rows after %s up to %s were archived before this sink received them; they are in "
            "the archive file, and the stream goes on from the log's first row",
            sink.name,
            last_id,
            first["id"],
        )
        start = first["prev_hash"]
    walk = chain.ChainWalk(start_hash=start)
    try:
        for row in rows:
            walk.check(row)
    except chain.ChainBroken as broken:
        return str(broken)
    return ""


def _failed(result: SinkResult, cursor: AuditStreamCursor, *, sink: Sink, reason: str, now: datetime) -> SinkResult:
    """Record the failure on the locked cursor, with the time of the next attempt, and say so in `result`."""
    cursor.failures += 1
    cursor.next_attempt_at = now + audit_stream_retry_delay(failures=cursor.failures)
    cursor.last_error = reason[:300]
    cursor.last_error_at = now
    cursor.save(update_fields=["failures", "next_attempt_at", "last_error", "last_error_at", "updated_at"])
    logger.warning("audit stream %s (%s) failed, attempt %s: %s", sink.name, sink.address, cursor.failures, reason)
    result.error, result.retry_at = cursor.last_error, cursor.next_attempt_at
    return result


def audit_stream_sink_deliver(
    *,
    sink: Sink,
    transport: Transport,
    batch_size: int = BATCH_SIZE,
    now: datetime | None = None,
    retry_now: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> SinkResult:
    """Deliver the sink's pending sealed events, batch after batch, until none is left, the sink fails, or another
    worker holds its cursor. A sink waiting out its backoff is left alone unless `retry_now`."""
    result = SinkResult(sink.name)
    while not should_stop():
        clock = now or timezone.now()
        peek = _cursor_peek(sink.name)
        if not retry_now and peek["next_attempt_at"] is not None and peek["next_attempt_at"] > clock:
            result.retry_at = peek["next_attempt_at"]
            break
        rows = audit_stream_rows_after(last_id=peek["last_id"], limit=batch_size)
        if not rows:
            break
        problem = _chain_problem(sink=sink, last_id=peek["last_id"], last_hash=peek["last_hash"], rows=rows)
        with transaction.atomic():
            cursor = AuditStreamCursor.objects.select_for_update(skip_locked=True).filter(sink=sink.name).first()
            if cursor is None:
                result.busy = True
                break
            if cursor.last_id != peek["last_id"]:
                continue  # another worker delivered meanwhile: read again from where it stopped
            if not retry_now and cursor.next_attempt_at is not None and cursor.next_attempt_at > clock:
                result.retry_at = cursor.next_attempt_at  # another worker failed meanwhile: its backoff holds
                break
            if problem:
                logger.error("audit stream %s stopped: %s (verify_audit tells more)", sink.name, problem)
                return _failed(result, cursor, sink=sink, reason=problem, now=clock)
            try:
                transport.send([(row, event_line(row, sink_format=sink.format)) for row in rows])
            except DeliveryFailed as error:
                return _failed(result, cursor, sink=sink, reason=str(error), now=now or timezone.now())
            AuditStreamCursor.objects.filter(pk=cursor.pk).update(
                last_id=rows[-1]["id"],
                last_hash=rows[-1]["hash"],
                delivered=F("delivered") + len(rows),
                failures=0,
                next_attempt_at=None,
                last_delivered_at=now or timezone.now(),
                updated_at=now or timezone.now(),
            )
        result.delivered += len(rows)
        if len(rows) < batch_size:
            break
    return result


def audit_stream_deliver(
    *,
    sinks: list[Sink],
    transports: StreamTransports,
    batch_size: int = BATCH_SIZE,
    seal_wait_seconds: float = 1.0,
    now: datetime | None = None,
    retry_now: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
) -> StreamPass:
    """One pass: seal what is final, then deliver every sink's pending events (audit_stream_sink_deliver)."""
    audit_seal(wait_seconds=seal_wait_seconds)
    results = StreamPass()
    for sink in sinks:
        if should_stop():
            break
        results.sinks.append(
            audit_stream_sink_deliver(
                sink=sink,
                transport=transports[sink.name],
                batch_size=batch_size,
                now=now,
                retry_now=retry_now,
                should_stop=should_stop,
            )
        )
    return results
