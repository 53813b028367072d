"""Streamed audit exports (CSV, JSONL) with their manifest, and the permissions report as a file.

An export reads the log through a PostgreSQL server-side cursor, oldest row first, so the
server holds one chunk of rows at a time however long the log is. PostgreSQL formats every
cell as text (and escapes spreadsheet formulas) so the Python side only joins and hashes.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.db import connection, transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.utils import timezone

from audit import chain
from audit.selectors import AuditFilters, audit_filters_where
from audit.services import chain_lock

EXPORT_FORMATS = ("csv", "jsonl")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
# Rows fetched per round trip from the server-side cursor: large enough to amortise the
# FETCH, small enough to keep the process's memory flat (a few MB per chunk).
CHUNK_ROWS = 5000
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


def _body_chunks(*, filters: AuditFilters, export_format: str, digest: _Digest) -> Iterator[bytes]:
    """Every byte the manifest covers: the CSV header and rows, or the JSONL row lines."""
    sql, params = audit_export_sql(filters=filters, export_format=export_format)
    newline = "\r\n" if export_format == "csv" else "\n"
    if export_format == "csv":
        yield digest.add((",".join(chain.FIELDS) + newline).encode(), 0)
    # A named cursor declared inside a transaction streams (WITHOUT HOLD); in autocommit
    # Django would declare it WITH HOLD, which makes PostgreSQL materialise the whole result.
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(CHUNK_ROWS):
            chunk = (newline.join([row[0] for row in rows]) + newline).encode()
            yield digest.add(chunk, len(rows))


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def export_filters_pinned(filters: AuditFilters) -> AuditFilters:
    """Without `until` an export ends now (to the microsecond), so the same request can be replayed later.

    "Now" is read under the chain's advisory lock, in a transaction of its own: every writer that stamped a
    time before it has committed by then (writers stamp `time` while holding that lock), and every later
    writer stamps a later time. So the export, whose snapshot is taken afterwards, holds every row before
    `until`, and a replay with the same `until` finds exactly the same rows. Cost: waiting out at most one
    in-flight audit write.
    """
    if filters.until is not None:
        return filters
    with transaction.atomic():
        chain_lock()
        until = timezone.now()
    return dataclasses.replace(filters, until=until)


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
    """Row count and SHA-256 of the export with these filters, recomputed by streaming it again."""
    digest = _Digest()
    for _chunk in _body_chunks(filters=filters, export_format=export_format, digest=digest):
        pass
    return _manifest(filters=filters, export_format=export_format, digest=digest)


def _stamp(value: datetime | None, *, default: str) -> str:
    if value is None:
        return default
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H%M%S.%fZ" if value.microsecond else "%Y-%m-%dT%H%M%SZ")


def export_filename(*, filters: AuditFilters, export_format: str) -> str:
    since = _stamp(filters.since, default="begin")
    until = _stamp(filters.until, default="now")
    return f"coderauth-audit_{since}_{until}.{export_format}"


def audit_export_response(*, filters: AuditFilters, export_format: str) -> StreamingHttpResponse:
    """The export as a streamed download; JSONL ends with its manifest line."""
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"Unknown export format {export_format!r}.")
    filters = export_filters_pinned(filters)

    def content() -> Iterator[bytes]:
        digest = _Digest()
        yield from _body_chunks(filters=filters, export_format=export_format, digest=digest)
        if export_format == "jsonl":
            manifest = _manifest(filters=filters, export_format=export_format, digest=digest)
            yield (json.dumps(manifest, separators=(",", ":")) + "\n").encode()

    response = StreamingHttpResponse(content(), content_type=CONTENT_TYPES[export_format])
    filename = export_filename(filters=filters, export_format=export_format)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Audit-Export-Until"] = _iso(filters.until)
    response["Cache-Control"] = "no-store"
    # Reverse proxies (nginx) would otherwise buffer the whole file before sending it on.
    response["X-Accel-Buffering"] = "no"
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


def csv_attachment(*, columns: tuple[str, ...], rows: Iterable[dict[str, Any]], name: str) -> HttpResponse:
    """A small CSV download built in Python (the permissions report), named `coderauth-<name>_<time>.csv`."""
    encoder = _CsvEncoder()
    body = encoder.encode([columns]) + encoder.encode(
        [[csv_cell(row.get(column)) for column in columns] for row in rows]
    )
    response = HttpResponse(body, content_type=CONTENT_TYPES["csv"])
    stamp = _stamp(timezone.now().replace(microsecond=0), default="now")
    response["Content-Disposition"] = f'attachment; filename="coderauth-{name}_{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response
