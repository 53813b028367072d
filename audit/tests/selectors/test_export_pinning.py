"""An export without `until` is pinned so that replaying it (or asking for its manifest) finds the same rows."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from django.db import connection, transaction

from audit.exports import audit_export_manifest, export_filters_pinned
from audit.models import AuditEvent
from audit.selectors import AuditFilters
from audit.services import audit_record

FILTERS = AuditFilters(actions=["agent.created"])


def test_export_waits_for_an_in_flight_audit_write_before_pinning_until(transactional_db):
    """Regression: `until` was read from the clock alone. A write stamped just before it but committed after the
    export's snapshot was missing from the export, yet present when the same export was replayed, so the
    manifest of a complete file did not match. Now `until` is read under the chain lock."""
    with transaction.atomic():
        audit_record(action="agent.created", actor_type="system", details={"n": 0})

    recorded, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    exported: dict = {}

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                audit_record(action="agent.created", actor_type="system", details={"n": 1})
                recorded.set()
                release.wait(timeout=30)
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    def exporter() -> None:
        try:
            filters = export_filters_pinned(FILTERS)
            exported["until"] = filters.until
            exported["manifest"] = audit_export_manifest(filters=filters, export_format="jsonl")["manifest"]
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert recorded.wait(timeout=30)
    export = threading.Thread(target=exporter)
    export.start()
    export.join(timeout=1)  # the window in which an unpinned export used to finish without the in-flight row
    release.set()
    writer.join(timeout=30)
    export.join(timeout=30)
    assert errors == []

    in_flight = AuditEvent.objects.get(action="agent.created", details__n=1)
    assert in_flight.time < exported["until"]
    assert exported["manifest"]["rows"] == 2, "the export missed a row stamped before its `until`"
    replay = audit_export_manifest(
        filters=AuditFilters(actions=["agent.created"], until=exported["until"]), export_format="jsonl"
    )["manifest"]
    assert replay["rows"] == exported["manifest"]["rows"]
    assert replay["sha256"] == exported["manifest"]["sha256"]


def test_writes_after_the_pin_stay_out_of_the_replay(db):
    with transaction.atomic():
        audit_record(action="agent.created", actor_type="system", details={"n": 0})
    filters = export_filters_pinned(FILTERS)
    first = audit_export_manifest(filters=filters, export_format="csv")["manifest"]
    with transaction.atomic():
        audit_record(action="agent.created", actor_type="system", details={"n": 1})
    assert audit_export_manifest(filters=filters, export_format="csv")["manifest"] == first
    assert first["rows"] == 1


def test_an_explicit_until_is_kept(db):
    until = datetime(2026, 1, 1, tzinfo=UTC)
    assert export_filters_pinned(AuditFilters(actions=["x"], until=until)).until == until
