"""Reads of the stream's state: each configured sink's cursor and how far behind the log it is. Nothing writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from audit.streaming.sinks import sinks_configured

# Lag counts the rows after the cursor up to the sealed head (sealed rows are a prefix of the log, so those are
# exactly the sealed ones): primary-key walks only, the head found walking back over the short unsealed tail.
_STATUS_SQL = """
WITH head AS (SELECT coalesce((SELECT id FROM audit_auditevent WHERE hash <> '' ORDER BY id DESC LIMIT 1), 0) AS id)
SELECT sink.name, coalesce(cursor.last_id, 0), coalesce(cursor.delivered, 0), coalesce(cursor.failures, 0),
       coalesce(cursor.last_error, ''), cursor.last_error_at, cursor.last_delivered_at, cursor.next_attempt_at,
       (SELECT count(*) FROM audit_auditevent WHERE id > coalesce(cursor.last_id, 0) AND id <= head.id)
  FROM unnest(%s::varchar[]) WITH ORDINALITY AS sink(name, position)
 CROSS JOIN head
  LEFT JOIN audit_auditstreamcursor AS cursor ON cursor.sink = sink.name
 ORDER BY sink.position
"""


@dataclass(frozen=True)
class SinkStatus:
    """One sink as the status page and the metrics show it: never its URL beyond scheme://host:port."""

    name: str
    address: str
    format: str
    last_id: int
    delivered: int
    failures: int
    last_error: str
    last_error_at: datetime | None
    last_delivered_at: datetime | None
    next_attempt_at: datetime | None
    # Sealed events after the cursor: what the sink has yet to receive.
    lag: int

    @property
    def failing(self) -> bool:
        return self.failures > 0


def audit_stream_status() -> list[SinkStatus]:
    """Every configured sink in CODERAUTH_AUDIT_SINKS order, in one query; SinkConfigError when the setting is bad."""
    sinks = sinks_configured()
    if not sinks:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_STATUS_SQL, [[sink.name for sink in sinks]])
        rows = cursor.fetchall()
    return [SinkStatus(sink.name, sink.address, sink.format, *row[1:]) for sink, row in zip(sinks, rows, strict=True)]
