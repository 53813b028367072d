"""Reads of the audit log: filters, keyset pages, one event, the stored chain. Nothing here writes."""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL
from rest_framework import serializers

from audit import actions, chain
from audit.models import AuditEvent
from core.exceptions import InvalidInput, ObjectNotFound

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
_ACTION_NAME = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")
_CURSOR_PREFIX = "v1:"


@dataclass
class AuditFilters:
    """What an auditor asked for. `since` is inclusive and `until` exclusive, so ranges tile without overlap."""

    actions: list[str] = field(default_factory=list)
    actor: str | None = None
    workspace_id: UUID | None = None
    agent_id: UUID | None = None
    since: datetime | None = None
    until: datetime | None = None

    def as_query(self) -> dict[str, Any]:
        """The filters as query parameters (for `next` links and manifests): the inverse of the parser."""
        query: dict[str, Any] = {}
        if self.actions:
            query["action"] = list(self.actions)
        if self.actor:
            query["actor"] = self.actor
        if self.workspace_id:
            query["workspace"] = str(self.workspace_id)
        if self.agent_id:
            query["agent"] = str(self.agent_id)
        if self.since:
            query["since"] = self.since.isoformat()
        if self.until:
            query["until"] = self.until.isoformat()
        return query


class _AuditFilterSerializer(serializers.Serializer):
    action = serializers.ListField(child=serializers.CharField(max_length=64), required=False, max_length=50)
    actor = serializers.CharField(max_length=150, required=False)
    workspace = serializers.UUIDField(required=False)
    agent = serializers.UUIDField(required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)

    def validate_action(self, value: list[str]) -> list[str]:
        bad = [name for name in value if not _ACTION_NAME.match(name)]
        if bad:
            raise serializers.ValidationError("Action names look like 'agent_token.issued'.")
        return list(dict.fromkeys(value))

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": ["Must be later than since."]})
        return attrs


def _query_values(query, name: str) -> list[str]:
    """Every non-empty value of a parameter; `action=a,b` counts as two. Empty form fields mean 'no filter'."""
    raw = query.getlist(name) if hasattr(query, "getlist") else query.get(name, [])
    if isinstance(raw, str):
        raw = [raw]
    values: list[str] = []
    for item in raw or []:
        values.extend(part.strip() for part in str(item).split(",") if part.strip())
    return values


def audit_filters_from_query(query) -> AuditFilters:
    """Parses `action` (repeatable), `actor`, `workspace`, `agent`, `since`, `until`; bad values are a 400."""
    data: dict[str, Any] = {}
    actions = _query_values(query, "action")
    if actions:
        data["action"] = actions
    for name in ("actor", "workspace", "agent", "since", "until"):
        value = query.get(name)
        if isinstance(value, list):
            value = value[-1] if value else None
        if value is not None and str(value).strip():
            data[name] = str(value).strip()
    parsed = _AuditFilterSerializer(data=data)
    if not parsed.is_valid():
        field_errors = {key: list(value) for key, value in parsed.errors.items()}
        raise InvalidInput("Invalid filter.", extra=field_errors)
    values = parsed.validated_data
    actor = values.get("actor")
    if actor:
        # Agents are recorded by their id in canonical form; accept any spelling of a UUID.
        with contextlib.suppress(ValueError):
            actor = str(uuid.UUID(actor))
    return AuditFilters(
        actions=values.get("action", []),
        actor=actor or None,
        workspace_id=values.get("workspace"),
        agent_id=values.get("agent"),
        since=values.get("since"),
        until=values.get("until"),
    )


def audit_filters_where(*, filters: AuditFilters) -> tuple[str, list[Any]]:
    """The filters as one SQL condition on the audit table: the single definition the page and exports share."""
    clauses: list[str] = []
    params: list[Any] = []
    if filters.actions:
        clauses.append("action = ANY(%s)")
        params.append(list(filters.actions))
    if filters.actor:
        clauses.append("actor = %s")
        params.append(filters.actor)
    if filters.workspace_id:
        clauses.append("workspace_id = %s")
        params.append(filters.workspace_id)
    if filters.agent_id:
        clauses.append("agent_id = %s")
        params.append(filters.agent_id)
    if filters.since:
        clauses.append("time >= %s")
        params.append(filters.since)
    if filters.until:
        clauses.append("time < %s")
        params.append(filters.until)
    return (" AND ".join(clauses) or "TRUE"), params


def audit_event_queryset(*, filters: AuditFilters) -> QuerySet[AuditEvent]:
    where, params = audit_filters_where(filters=filters)
    if not params:
        return AuditEvent.objects.all()
    # Only fixed SQL text from audit_filters_where; every value travels as a parameter.
    return AuditEvent.objects.filter(RawSQL(where, params, output_field=BooleanField()))  # noqa: S611


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError
        last_id = int(text.removeprefix(_CURSOR_PREFIX))
        if last_id < 1:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("Invalid cursor; use the `next` link of the previous page.", field="cursor")
    return last_id


def audit_event_page(
    *, filters: AuditFilters, cursor: str | None, page_size: int = DEFAULT_PAGE_SIZE
) -> tuple[list[AuditEvent], str | None]:
    """One page, newest first, and the cursor of the next page (None on the last).

    Keyset pagination on the primary key (`id < last id`, never OFFSET): each page costs the same
    however deep it is, and rows appended meanwhile cannot shift a page into duplicates or gaps.
    """
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"Must be between 1 and {MAX_PAGE_SIZE}.", field="page_size")
    queryset = audit_event_queryset(filters=filters).order_by("-id")
    if cursor:
        queryset = queryset.filter(id__lt=_decode_cursor(cursor))
    events = list(queryset[: page_size + 1])
    if len(events) <= page_size:
        return events, None
    events = events[:page_size]
    return events, _encode_cursor(events[-1].id)


def audit_event_get(*, event_id: int) -> AuditEvent:
    event = AuditEvent.objects.filter(pk=event_id).first()
    if event is None:
        raise ObjectNotFound("No such audit event.")
    return event


def audit_chain_latest_archive() -> dict[str, Any] | None:
    """The latest `audit.archived` row as the chain hashes it, or None: it says where the stored chain starts.

    archive_audit records `audit.archived` (which stays in the table) with the hash of the last row it
    removed, and the first remaining row chains to exactly that hash. Whether the row may be believed is
    audit/checkpoints.py's question (archive_row_anchor).
    """
    return AuditEvent.objects.filter(action=actions.AUDIT_ARCHIVED).order_by("-id").values(*chain.FIELDS).first()


def audit_chain_rows(*, before_id: int | None = None, chunk_size: int = 2000) -> Iterator[dict[str, Any]]:
    """Rows as the chain hashes them, in id order through a server-side cursor, one chunk in memory at a time."""
    rows = AuditEvent.objects.order_by("id")
    if before_id is not None:
        rows = rows.filter(id__lt=before_id)
    return rows.values(*chain.FIELDS).iterator(chunk_size=chunk_size)
