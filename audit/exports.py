"""Streamed audit exports (CSV, JSONL, OCSF) with their manifest, and the permissions report as a file.

An export reads the log through a PostgreSQL server-side cursor, oldest row first, so the
server holds one chunk of rows at a time however long the log is. PostgreSQL formats every
cell as text (and escapes spreadsheet formulas) so the Python side only joins and hashes; OCSF
events are mapped in Python from the JSONL rows (audit/streaming/ocsf.py).

A running export holds an export slot (audit/export_slots.py) until its stream ends, and records its
manifest when it has streamed every row, so the manifest endpoint need not stream the export again.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.http import StreamingHttpResponse
from django.utils import timezone

from audit import chain
from audit.export_slots import ExportSlot, export_slot, export_slot_acquire
from audit.sealing import audit_chain_now
from audit.selectors import AuditFilters, audit_filters_where
from audit.services import audit_clock
from audit.streaming.ocsf import ocsf_line

EXPORT_FORMATS = ("csv", "jsonl", "ocsf")
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "ocsf": "application/x-ndjson; charset=utf-8",
}
# JSON lines either way: the formats that end with their manifest line.
JSON_LINE_FORMATS = ("jsonl", "ocsf")
FILE_EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "ocsf": "ocsf.jsonl"}
# Rows fetched per round trip from the server-side cursor: large enough to amortise the
# FETCH, small enough to keep the process's memory flat (a few MB per chunk).
CHUNK_ROWS = 5000
# The most bytes handed to the client's socket in one write. The stall cut-off bounds each write, so a
# reader has CODERAUTH_EXPORT_STALL_SECONDS to take this much, not a whole chunk of rows (a few MB).
SEND_BYTES = 64 * 1024
# Recorded manifests: how long they are kept, and how many per user. One cache row per user, so exports
# cannot fill the shared cache, whose culling would also drop live throttle counters.
MANIFEST_RECORD_SECONDS = 7 * 24 * 3600
MANIFESTS_PER_USER = 32
# A spreadsheet treats a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_TIME_SQL = """to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _guarded(expression: str) -> str:
    """SQL that prefixes a formula-looking cell with a quote, so spreadsheets show it as text."""
    return (
        f"CASE WHEN left({expression}, 1) IN ('=', '+', '-', '@', chr(9), chr(13)) "
        f"THEN '''' || {expression} ELSE {expression} END"
    )


def _quoted(expression: str) -> str:
    """SQL for one RFC 4180 CSV field: always quoted, inner quotes doubled, formula guarded."""
    return f"""'"' || replace({_guarded(expression)}, '"', '""') || '"'"""


# Free text is guarded and quoted; the other columns are formatted by the server and can
# hold neither a formula prefix nor a delimiter (integers, timestamps, UUIDs, IPs, hex).
_CSV_COLUMNS: tuple[tuple[str, bool], ...] = (
    ("id::text", False),
    (_TIME_SQL, False),
    ("action", True),
    ("actor_type", True),
    ("actor", True),
    ("workspace_id::text", False),
    ("agent_id::text", False),
    ("details::text", True),
    ("host(ip)", False),
    ("user_agent", True),
    ("request_id", True),
    ("prev_hash", False),
    ("hash", False),
)
# PostgreSQL renders each line, so Python only joins and hashes: csv.writer costs ~18 µs a
# row here, which alone would hold the export under half of COPY's throughput.
_CSV_LINE = "concat_ws(',', {})".format(
    ", ".join(_quoted(column) if free_text else f"coalesce({column}, '')" for column, free_text in _CSV_COLUMNS)
)
_CSV_CELLS = ", ".join(_guarded(column) if free_text else column for column, free_text in _CSV_COLUMNS)
_JSONL_SELECT = (
    f"id, {_TIME_SQL} AS time, action, actor_type, actor, workspace_id, agent_id, details, "
    "host(ip) AS ip, user_agent, request_id, prev_hash, hash"
)
_TABLE = "audit_auditevent"


def audit_export_sql(*, filters: AuditFilters, export_format: str) -> tuple[str, list[Any]]:
    """The one query behind an export, oldest first: one text column, a CSV line or a JSON object."""
    where, params = audit_filters_where(filters=filters)
    if export_format == "csv":
        return f"SELECT {_CSV_LINE} FROM {_TABLE} WHERE {where} ORDER BY id", params  # noqa: S608
    if export_format == "jsonl":
        inner = f"SELECT {_JSONL_SELECT} FROM {_TABLE} WHERE {where}"  # noqa: S608
        outer = f"SELECT row_to_json(export_row)::text FROM ({inner}) AS export_row ORDER BY export_row.id"  # noqa: S608
        return outer, params
    raise ValueError(f"Unknown export format {export_format!r}.")


def audit_export_cells_sql(*, filters: AuditFilters) -> tuple[str, list[Any]]:
    """The CSV export's rows as thirteen guarded cells: what `COPY (...) TO STDOUT WITH CSV` formats.

    The benchmark's baseline, and the tests' proof that the lines PostgreSQL renders for the
    export parse to exactly these cells.
    """
    where, params = audit_filters_where(filters=filters)
    # Qualified: a bare `id` in ORDER BY would name the text output column and sort "10" before "2".
    return f"SELECT {_CSV_CELLS} FROM {_TABLE} WHERE {where} ORDER BY {_TABLE}.id", params  # noqa: S608


def escape_formula(value: str) -> str:
    """Python twin of the SQL guard, for files built in Python (csv_attachment)."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


@dataclasses.dataclass
class _Digest:
    rows: int = 0
    sha256: Any = dataclasses.field(default_factory=hashlib.sha256)
    # The log's oldest id while the rows were read, once every row was read and no archive moved it meanwhile.
    log_start: int | None = None
    reproducible: bool = False

    def add(self, chunk: bytes, rows: int) -> bytes:
        self.rows += rows
        self.sha256.update(chunk)
        return chunk


class _CsvEncoder:
    """csv.writer over one reusable buffer: a chunk of rows becomes one bytes object."""

    def __init__(self):
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\r\n")

    def encode(self, rows: Iterable[Iterable[Any]]) -> bytes:
        self.writer.writerows(rows)
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text.encode()


CSV_ROWS_PER_CHUNK = 500


def _csv_chunks(columns: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    encoder = _CsvEncoder()
    yield encoder.encode([columns])
    chunk: list[list[str]] = []
    for row in rows:
        chunk.append([csv_cell(row.get(column)) for column in columns])
        if len(chunk) == CSV_ROWS_PER_CHUNK:
            yield encoder.encode(chunk)
            chunk.clear()
    if chunk:
        yield encoder.encode(chunk)


def _body_chunks(*, filters: AuditFilters, export_format: str, digest: _Digest) -> Iterator[bytes]:
    """Every byte the manifest covers: the CSV header and rows, or the JSONL or OCSF row lines."""
    # OCSF events are mapped from the JSONL rows, in Python.
    sql, params = audit_export_sql(filters=filters, export_format="jsonl" if export_format == "ocsf" else export_format)
    newline = "\r\n" if export_format == "csv" else "\n"
    if export_format == "csv":
        yield digest.add((",".join(chain.FIELDS) + newline).encode(), 0)
    # A named cursor declared inside a transaction streams (WITHOUT HOLD); in autocommit
    # Django would declare it WITH HOLD, which makes PostgreSQL materialise the whole result.
    with transaction.atomic():
        log_start = _log_start()
        with connection.chunked_cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(CHUNK_ROWS):
                lines = [row[0] for row in rows]
                if export_format == "ocsf":
                    lines = [ocsf_line(json.loads(line)) for line in lines]
                chunk = (newline.join(lines) + newline).encode()
                yield digest.add(chunk, len(rows))
        # Only archive_audit removes rows, always the oldest, so the same start before and after the cursor
        # means the cursor's snapshot saw the log a later export with these filters will see.
        digest.log_start = log_start
        digest.reproducible = _log_start() == log_start


def _log_start() -> int | None:
    """The oldest row's id: it moves (forward) only when archive_audit removes rows."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(id) FROM {_TABLE}")  # noqa: S608
        return cursor.fetchone()[0]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def export_filters_pinned(filters: AuditFilters) -> AuditFilters:
    """Without `until` an export ends now (to the microsecond), so the same request can be replayed later.

    "Now" is read by audit_chain_now: when it returns, every writer that stamped a time before it has committed
    and its row is sealed, and every later writer stamps a later time. So the export, whose snapshot is taken
    afterwards, holds every row before `until`, sealed, and a replay with the same `until` finds exactly the same
    rows. Cost: waiting out the audited writes in flight, and one sealing round.
    """
    if filters.until is not None:
        return filters
    return dataclasses.replace(filters, until=_chain_now())


def _chain_now() -> datetime:
    return audit_chain_now()


def _export_filters_settled(filters: AuditFilters) -> tuple[AuditFilters, bool]:
    """The filters pinned, and whether the rows before their `until` are final (so their manifest may be recorded).

    A pinned `until` is final by construction. A past `until` given by the client is final once the audit
    write in flight, which may have stamped an earlier time, has committed and been sealed: audit_chain_now waits
    it out. A
    future `until` is not final: rows can still be written before it.
    """
    if filters.until is None:
        return export_filters_pinned(filters), True
    if filters.until > audit_clock():
        return filters, False
    return filters, filters.until <= _chain_now()


def _manifest(*, filters: AuditFilters, export_format: str, digest: _Digest) -> dict[str, Any]:
    query = filters.as_query()
    return {
        "manifest": {
            "format": export_format,
            "rows": digest.rows,
            "sha256": digest.sha256.hexdigest(),
            "since": _iso(filters.since),
            "until": _iso(filters.until),
            "filters": {key: query[key] for key in ("action", "actor", "workspace", "agent") if key in query},
        }
    }


def audit_export_manifest(*, filters: AuditFilters, export_format: str) -> dict[str, Any]:
    """Row count and SHA-256 of the export with these filters, computed by streaming it (nothing recorded)."""
    digest = _Digest()
    for _chunk in _body_chunks(filters=filters, export_format=export_format, digest=digest):
        pass
    return _manifest(filters=filters, export_format=export_format, digest=digest)


def _record_key(*, filters: AuditFilters, export_format: str, log_start: int | None) -> str:
    query = {**filters.as_query(), "since": _iso(filters.since), "until": _iso(filters.until)}
    key = json.dumps({"format": export_format, "log_start": log_start, **query}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()


def _records_key(user_id: int) -> str:
    return f"audit-export-manifests:{user_id}"


def _manifest_record(*, user_id: int, filters: AuditFilters, export_format: str, digest: _Digest) -> None:
    """Keep the manifest of a complete export for the manifest endpoint: the user's latest few, for a week."""
    if not digest.reproducible:
        return
    manifest = _manifest(filters=filters, export_format=export_format, digest=digest)
    key = _record_key(filters=filters, export_format=export_format, log_start=digest.log_start)
    records = cache.get(_records_key(user_id)) or {}
    records.pop(key, None)  # re-inserted last: the newest records are the ones kept
    records[key] = manifest
    cache.set(_records_key(user_id), dict(list(records.items())[-MANIFESTS_PER_USER:]), MANIFEST_RECORD_SECONDS)


def audit_export_manifest_get(*, filters: AuditFilters, export_format: str, user_id: int) -> dict[str, Any]:
    """The manifest of the export with these filters: the one recorded when it was streamed, else computed once.

    Computing streams the whole export, so it takes an export slot like a download (LimitReached beyond),
    and records the result when the rows before `until` are final.
    """
    if filters.until is not None and filters.until <= timezone.now():
        # A record is only ever made of final rows, so finding one needs no wait for writers in flight.
        key = _record_key(filters=filters, export_format=export_format, log_start=_log_start())
        recorded = (cache.get(_records_key(user_id)) or {}).get(key)
        if recorded is not None:
            return recorded
    filters, final = _export_filters_settled(filters)
    with export_slot(user_id=user_id):
        digest = _Digest()
        for _chunk in _body_chunks(filters=filters, export_format=export_format, digest=digest):
            pass
        if final:
            _manifest_record(user_id=user_id, filters=filters, export_format=export_format, digest=digest)
    return _manifest(filters=filters, export_format=export_format, digest=digest)


def _stamp(value: datetime | None, *, default: str) -> str:
    if value is None:
        return default
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H%M%S.%fZ" if value.microsecond else "%Y-%m-%dT%H%M%SZ")


def export_filename(*, filters: AuditFilters, export_format: str) -> str:
    since = _stamp(filters.since, default="begin")
    until = _stamp(filters.until, default="now")
    return f"coderauth-audit_{since}_{until}.{FILE_EXTENSIONS[export_format]}"


class _ExportStream:
    """The export's bytes. Django closes it once the response is sent, failed or abandoned by the client, even
    if it never started: that ends the export's transaction, frees its slot and restores the socket."""

    def __init__(self, chunks: Iterator[bytes], *, slot: ExportSlot, client_socket: Any):
        self._chunks = chunks
        self._slot = slot
        self._socket = client_socket
        self._socket_timeout = None
        if client_socket is not None:
            # A blocked send now fails after this long instead of holding the worker (and the slot) forever.
            self._socket_timeout = client_socket.gettimeout()
            client_socket.settimeout(settings.CODERAUTH_EXPORT_STALL_SECONDS)

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._chunks:
                for start in range(0, len(chunk), SEND_BYTES):
                    yield chunk[start : start + SEND_BYTES]
        finally:
            self.close()  # the slot is free as soon as the last byte is handed over

    def close(self) -> None:
        try:
            self._chunks.close()
        finally:
            self._slot.release()
            client_socket, self._socket = self._socket, None
            if client_socket is not None:
                with contextlib.suppress(OSError):  # already closed by the server
                    client_socket.settimeout(self._socket_timeout)


def audit_export_response(
    *, filters: AuditFilters, export_format: str, user_id: int, client_socket: Any = None
) -> StreamingHttpResponse:
    """The export as a streamed download; JSONL and OCSF end with their manifest line.

    Raises LimitReached, before any byte is sent, when the user or the installation already runs as many
    exports as allowed. `client_socket` is the server's socket to the client (gunicorn's), when it has one.
    """
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"Unknown export format {export_format!r}.")
    # Settled before the slot's transaction opens: settling seals, and a seal must commit now, not with the export.
    filters, final = _export_filters_settled(filters)
    slot = export_slot_acquire(user_id=user_id)
    try:

        def content() -> Iterator[bytes]:
            digest = _Digest()
            yield from _body_chunks(filters=filters, export_format=export_format, digest=digest)
            if final:
                _manifest_record(user_id=user_id, filters=filters, export_format=export_format, digest=digest)
            if export_format in JSON_LINE_FORMATS:
                manifest = _manifest(filters=filters, export_format=export_format, digest=digest)
                yield (json.dumps(manifest, separators=(",", ":")) + "\n").encode()

        stream = _ExportStream(content(), slot=slot, client_socket=client_socket)
    except BaseException:
        slot.release()
        raise
    response = StreamingHttpResponse(stream, content_type=CONTENT_TYPES[export_format])
    filename = export_filename(filters=filters, export_format=export_format)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Audit-Export-Until"] = _iso(filters.until)
    response["Cache-Control"] = "no-store"
    return response


def csv_cell(value: Any) -> str:
    """One cell of a CSV file built in Python: times in ISO 8601 UTC, lists space-separated, formulas escaped."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, (list, tuple)):
        return " ".join(str(item) for item in value)
    if isinstance(value, UUID):
        return str(value)
    return escape_formula(str(value))


def csv_attachment(*, columns: tuple[str, ...], rows: Iterable[dict[str, Any]], name: str) -> StreamingHttpResponse:
    """A CSV download built in Python (the permissions report), named `coderauth-<name>_<time>.csv`.

    Streamed as `rows` yields, CSV_ROWS_PER_CHUNK rows a chunk: a lazy `rows` keeps memory flat at any size.
    """
    response = StreamingHttpResponse(_csv_chunks(columns, rows), content_type=CONTENT_TYPES["csv"])
    stamp = _stamp(timezone.now().replace(microsecond=0), default="now")
    response["Content-Disposition"] = f'attachment; filename="coderauth-{name}_{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response
