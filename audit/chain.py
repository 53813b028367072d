"""The audit hash chain: one canonical serialisation of a row and the SHA-256 over it.

hash = sha256(canonical JSON of {id, time, action, actor_type, actor, workspace_id, agent_id,
details, ip, user_agent, request_id, prev_hash}), where canonical JSON is Python's
``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=True)`` and each value is in
the form :func:`canonical_fields` gives it. The first row of a fresh log chains to GENESIS_HASH.
Pure functions only (no database): the writer (services), the verifier and the archiver all use these.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

GENESIS_HASH = "0" * 64

# The first key of an archive file's manifest line (archive_audit writes it, verify_audit --archive reads it).
ARCHIVE_FORMAT = "coderauth-audit-archive/1"

# pg_advisory_xact_lock key that serialises every append to the chain ("cdaudit" in ASCII).
CHAIN_LOCK_KEY = 0x6364617564697400

# One field order for API fields, CSV columns, JSONL keys and archive lines alike.
FIELDS = (
    "id",
    "time",
    "action",
    "actor_type",
    "actor",
    "workspace_id",
    "agent_id",
    "details",
    "ip",
    "user_agent",
    "request_id",
    "prev_hash",
    "hash",
)
HASHED_FIELDS = FIELDS[:-1]


def canonical_time(value: datetime | str) -> str:
    """UTC with exactly six fractional digits: what PostgreSQL's microsecond timestamptz stores."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("Audit times must be timezone-aware.")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_ip(value: str | None) -> str | None:
    """The inet column may print an address differently from how it was written; compare addresses."""
    if not value:
        return None
    return str(ipaddress.ip_address(str(value).split("/", 1)[0]))


def canonical_uuid(value: UUID | str | None) -> str | None:
    return None if value in (None, "") else str(UUID(str(value)))


def canonical_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The row (a dict with FIELDS' keys, from the ORM or an archive line) in canonical value form."""
    return {
        "id": int(row["id"]),
        "time": canonical_time(row["time"]),
        "action": row["action"],
        "actor_type": row["actor_type"],
        "actor": row["actor"] or "",
        "workspace_id": canonical_uuid(row["workspace_id"]),
        "agent_id": canonical_uuid(row["agent_id"]),
        "details": row["details"] if row["details"] is not None else {},
        "ip": canonical_ip(row["ip"]),
        "user_agent": row["user_agent"] or "",
        "request_id": row["request_id"] or "",
        "prev_hash": row["prev_hash"],
        **({"hash": row["hash"]} if "hash" in row else {}),
    }


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def row_hash(row: dict[str, Any]) -> str:
    """SHA-256 (hex) over the canonical serialisation of the row's fields, prev_hash included."""
    fields = canonical_fields({**row, "hash": None})
    payload = {name: fields[name] for name in HASHED_FIELDS}
    return hashlib.sha256(canonical_json(payload).encode("ascii")).hexdigest()


class ChainBroken(Exception):
    """The first row at which the chain fails, and why; `message` words a failure that is not one row's."""

    def __init__(self, row_id: int | None, reason: str, *, message: str | None = None):
        super().__init__(message or f"audit chain broken at row {row_id}: {reason}")
        self.row_id = row_id
        self.reason = reason


@dataclass
class ChainWalk:
    """Checks rows one at a time in id order; holds only the previous row, so memory stays flat."""

    start_hash: str
    count: int = 0
    head: str = ""
    last_id: int | None = None

    def __post_init__(self) -> None:
        self.head = self.start_hash

    def check(self, row: dict[str, Any]) -> None:
        row_id = int(row["id"])
        if self.last_id is not None and row_id <= self.last_id:
            raise ChainBroken(row_id, f"ids out of order (after row {self.last_id})")
        if row_hash(row) != row["hash"]:
            raise ChainBroken(row_id, "hash mismatch: the row was altered")
        if row["prev_hash"] != self.head:
            previous = f"row {self.last_id}" if self.last_id is not None else "the chain's start"
            raise ChainBroken(
                row_id,
                f"prev_hash does not match the hash of {previous}: a row was removed, reordered "
                "or inserted out of chain",
            )
        self.head = row["hash"]
        self.last_id = row_id
        self.count += 1

    def walk(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Check each row as it passes through (the archiver writes what it has checked)."""
        for row in rows:
            self.check(row)
            yield row


def archive_line(row: dict[str, Any]) -> str:
    """One JSONL line of an archive or export: docs/audit.md keys, canonical values, key order of FIELDS."""
    fields = canonical_fields(row)
    return json.dumps({name: fields[name] for name in FIELDS}, separators=(",", ":"), ensure_ascii=True)
