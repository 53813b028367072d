"""What a sink receives for one audit event: a JSON line (native or OCSF), inside an RFC 5424 syslog message for the
syslog sinks, octet-counted on a stream (RFC 6587 over TCP, RFC 5425 over TLS).

Native is the export's JSONL line (audit.chain.archive_line): every field of the row, `id`, `prev_hash` and `hash`
included. Lines are ASCII (JSON escapes everything else), so a syslog MSG needs no byte-order mark.
"""

from __future__ import annotations

import re
import socket
from typing import Any

from audit import chain
from audit.streaming import ocsf
from audit.streaming.sinks import NATIVE

APP_NAME = "coderauth"
# RFC 5424 facility 13, "log audit".
FACILITY_LOG_AUDIT = 13
# Syslog severity by the event's OCSF severity: informational, notice, warning, error.
SYSLOG_SEVERITIES = {ocsf.INFORMATIONAL: 6, ocsf.LOW: 5, ocsf.MEDIUM: 4, ocsf.HIGH: 3}
MSGID_MAX = 32
HOSTNAME_MAX = 255
_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")


def event_line(row: dict[str, Any], *, sink_format: str) -> str:
    """One event as one line of JSON, without its newline."""
    return chain.archive_line(row) if sink_format == NATIVE else ocsf.ocsf_line(row)


def _header_field(value: str, limit: int) -> str:
    """An RFC 5424 header field: printable US-ASCII without spaces, or the nil value."""
    return _NOT_PRINTUSASCII.sub("_", value)[:limit] or "-"


def syslog_hostname() -> str:
    return _header_field(socket.gethostname(), HOSTNAME_MAX)


def syslog_message(row: dict[str, Any], line: str, *, hostname: str) -> bytes:
    """`<PRI>1 TIMESTAMP HOSTNAME coderauth - MSGID - MSG`: the event's own time, its action as MSGID, no
    structured data (the JSON line carries everything, `id`, `prev_hash` and `hash` included)."""
    priority = FACILITY_LOG_AUDIT * 8 + SYSLOG_SEVERITIES[ocsf.severity_id(row["action"])]
    timestamp = chain.canonical_time(row["time"])
    msgid = _header_field(row["action"], MSGID_MAX)
    return f"<{priority}>1 {timestamp} {hostname} {APP_NAME} - {msgid} - {line}".encode("ascii")


def octet_counted(message: bytes) -> bytes:
    """RFC 6587 octet counting (the only framing RFC 5425 allows): the message's length in bytes, a space, the bytes."""
    return b"%d %s" % (len(message), message)
