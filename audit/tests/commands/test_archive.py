"""Retention with `archive_audit`: the one path that removes rows, without breaking the chain."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import actions, chain
from audit.models import AuditEvent
from audit.services import audit_clock
from tests.helpers.audit import record_events, tamper

# Archiving needs the signing key; tests/commands/test_signed_anchors.py covers what the signature adds.
pytestmark = pytest.mark.usefixtures("audit_signing_key")


def archive(path, before) -> str:
    out = StringIO()
    call_command("archive_audit", "--before", before.isoformat(), "--to", str(path), stdout=out, stderr=StringIO())
    return out.getvalue()


def verify(*args) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def old_and_new(db):
    """Three events, a cut-off, then two more events."""
    old = record_events(3, action="workspace.created")
    cutoff = audit_clock()  # the clock that stamps the rows
    new = record_events(2, action="workspace.mode_changed")
    return old, cutoff, new


def test_archive_then_verify(old_and_new, tmp_path):
    old, cutoff, new = old_and_new
    path = tmp_path / "audit-2026.jsonl"
    output = archive(path, cutoff)

    assert "archived 3 events" in output
    remaining = list(AuditEvent.objects.order_by("id"))
    assert [event.action for event in remaining] == [
        "workspace.mode_changed",
        "workspace.mode_changed",
        actions.AUDIT_ARCHIVED,
    ]
    assert remaining[0].prev_hash == old[-1].hash
    assert "audit chain OK: 3 events from archived head " + old[-1].hash in verify()


def test_archived_event_carries_the_archive_hash(old_and_new, tmp_path):
    old, cutoff, _ = old_and_new
    path = tmp_path / "audit.jsonl"
    archive(path, cutoff)
    event = AuditEvent.objects.get(action=actions.AUDIT_ARCHIVED)
    lines = path.read_bytes().splitlines(keepends=True)
    assert event.actor_type == "system"
    assert event.details["count"] == 3
    assert event.details["before"] == cutoff.isoformat()
    assert event.details["archived_head"] == old[-1].hash
    assert event.details["sha256"] == hashlib.sha256(b"".join(lines[:-1])).hexdigest()


def test_archive_file_holds_the_rows_and_verifies(old_and_new, tmp_path):
    old, cutoff, _ = old_and_new
    path = tmp_path / "audit.jsonl"
    archive(path, cutoff)
    *rows, manifest = [json.loads(line) for line in path.read_text().splitlines()]
    assert [row["id"] for row in rows] == [event.id for event in old]
    assert list(rows[0]) == list(chain.FIELDS)
    assert manifest["manifest"]["head"] == old[-1].hash
    assert manifest["manifest"]["count"] == 3
    assert f"audit archive OK: 3 events, head {old[-1].hash}" in verify("--archive", str(path))


def test_tampered_archive_file_fails(old_and_new, tmp_path):
    _, cutoff, _ = old_and_new
    path = tmp_path / "audit.jsonl"
    archive(path, cutoff)
    text = path.read_text().replace('"n":1', '"n":7')
    path.write_text(text)
    with pytest.raises(CommandError, match="altered"):
        verify("--archive", str(path))


def test_truncated_archive_file_fails(old_and_new, tmp_path):
    _, cutoff, _ = old_and_new
    path = tmp_path / "audit.jsonl"
    archive(path, cutoff)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1] + lines[2:]))
    with pytest.raises(CommandError, match="prev_hash"):
        verify("--archive", str(path))


def test_tamper_after_archive_is_still_detected(old_and_new, tmp_path):
    _, cutoff, new = old_and_new
    archive(tmp_path / "audit.jsonl", cutoff)
    tamper("UPDATE audit_auditevent SET actor = 'mallory' WHERE id = %s", [new[1].id])
    with pytest.raises(CommandError, match=f"row {new[1].id}: hash mismatch"):
        verify()


def test_cutting_rows_after_an_archive_is_detected(old_and_new, tmp_path):
    """Only the archived head is an accepted start: deleting the next row by hand is caught."""
    _, cutoff, new = old_and_new
    archive(tmp_path / "audit.jsonl", cutoff)
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [new[0].id])
    with pytest.raises(CommandError, match=f"row {new[1].id}: prev_hash"):
        verify()


def test_archive_everything_then_keep_writing(db, tmp_path):
    """With every row archived, audit.archived itself starts the chain and new events follow it."""
    old = record_events(2)
    archive(tmp_path / "all.jsonl", timezone.now() + timedelta(seconds=1))
    assert AuditEvent.objects.get().prev_hash == old[-1].hash
    record_events(2)
    assert "audit chain OK: 3 events" in verify()


def test_second_archive_continues_from_the_first(old_and_new, tmp_path):
    _, cutoff, new = old_and_new
    archive(tmp_path / "first.jsonl", cutoff)
    second_cutoff = audit_clock()
    record_events(1)
    archive(tmp_path / "second.jsonl", second_cutoff)
    assert "audit chain OK: 2 events" in verify()
    assert "audit archive OK: 3 events" in verify("--archive", str(tmp_path / "second.jsonl"))


def test_refuses_to_overwrite_an_existing_file(old_and_new, tmp_path):
    _, cutoff, _ = old_and_new
    path = tmp_path / "audit.jsonl"
    path.write_text("keep me")
    with pytest.raises(CommandError, match="already exists"):
        archive(path, cutoff)
    assert path.read_text() == "keep me"
    assert AuditEvent.objects.count() == 5


def test_broken_chain_is_not_archived(old_and_new, tmp_path):
    """The archive verifies what it writes: a tampered row stops it, nothing removed, no file left."""
    old, cutoff, _ = old_and_new
    tamper("UPDATE audit_auditevent SET actor = 'mallory' WHERE id = %s", [old[1].id])
    path = tmp_path / "audit.jsonl"
    with pytest.raises(CommandError, match=f"row {old[1].id}"):
        archive(path, cutoff)
    assert not path.exists()
    assert AuditEvent.objects.count() == 5


def test_nothing_to_archive_writes_nothing(old_and_new, tmp_path):
    _, _, _ = old_and_new
    path = tmp_path / "audit.jsonl"
    archive(path, timezone.now() - timedelta(days=365))
    assert not path.exists()
    assert not AuditEvent.objects.filter(action=actions.AUDIT_ARCHIVED).exists()


def test_delete_guard_is_back_after_archiving(old_and_new, tmp_path):
    """The guard is lifted only inside the archive's transaction."""
    _, cutoff, _ = old_and_new
    archive(tmp_path / "audit.jsonl", cutoff)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent")


def test_bad_date_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("archive_audit", "--before", "last tuesday", "--to", str(tmp_path / "x.jsonl"))
