"""Trust anchors from outside the database: signed archives, signed checkpoints, pinned heads.

The attacker here can do anything to the database (lift the triggers, delete, insert, recompute hashes) but holds
no trusted signing key. Before signatures, deleting the oldest rows and appending one `audit.archived` row that
named the first survivor's prev_hash as its archived_head restarted the chain, and verify_audit said OK.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from audit import actions, chain, checkpoints
from audit.exports import audit_export_response
from audit.models import AuditEvent
from audit.selectors import AuditFilters
from audit.services import audit_record
from tests.helpers.audit import record_events, tamper
from tests.helpers.audit_keys import write_key_pair


def verify(*args) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


def verify_fails(*args) -> str:
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", *args, stdout=StringIO())
    return str(failure.value)


def archive(path, before=None) -> str:
    out = StringIO()
    before = before or timezone.now()
    call_command("archive_audit", "--before", before.isoformat(), "--to", str(path), stdout=out, stderr=StringIO())
    return out.getvalue()


def checkpoint(path) -> str:
    out = StringIO()
    call_command("audit_checkpoint", "--to", str(path), stdout=out)
    return out.getvalue()


def forge_archived_row(survivor: AuditEvent, **details) -> AuditEvent:
    """Append, on the chain, an audit.archived row that says the chain now starts at `survivor`."""
    summary = {
        "before": timezone.now().isoformat(),
        "count": 3,
        "first_id": 1,
        "last_id": survivor.id - 1,
        "start_hash": chain.GENESIS_HASH,
        "archived_head": survivor.prev_hash,
        "sha256": "0" * 64,
        "file": "audit.jsonl",
    }
    with transaction.atomic():
        return audit_record(
            action=actions.AUDIT_ARCHIVED,
            actor_type="system",
            actor="archive_audit",
            details={**summary, **details},
        )


def signed_by(key_file, survivor: AuditEvent, **summary_changes) -> dict:
    """What an attacker signing with their own key would put in a forged row's details."""
    head = AuditEvent.objects.order_by("-id").first()
    summary = {
        "before": timezone.now().isoformat(),
        "count": 3,
        "first_id": 1,
        "last_id": survivor.id - 1,
        "start_hash": chain.GENESIS_HASH,
        "archived_head": survivor.prev_hash,
        "sha256": "0" * 64,
        "file": "audit.jsonl",
        **summary_changes,
    }
    statement = checkpoints.archive_statement(
        archive=summary, head_id=head.id, head_hash=head.hash, time=timezone.now()
    )
    return {**summary, "checkpoint": checkpoints.checkpoint_sign(statement, key=checkpoints.signing_key_load(key_file))}


@pytest.fixture
def events(db, audit_signing_key) -> list[AuditEvent]:
    return record_events(6)


# --- The re-anchoring attack ------------------------------------------------------------------------------------


def test_reanchoring_attack_fails_verification(events):
    """Deleting the oldest rows and appending an audit.archived row that restarts the chain no longer verifies."""
    tamper("DELETE FROM audit_auditevent WHERE id <= %s", [events[2].id])
    forged = forge_archived_row(events[3])
    assert verify_fails() == (
        f"audit chain broken: archive at row {forged.id} is not signed by a trusted key (it carries no signature, "
        "and its archived_head was not given with --legacy-archive-head)"
    )


def test_reanchoring_after_a_real_archive_fails(events, tmp_path):
    """A real, signed archive first, then the attack on the rows after it: the forged row is the latest; it fails."""
    archive(tmp_path / "a.jsonl", events[1].time + timedelta(microseconds=1))
    assert "audit chain OK" in verify()
    tamper("DELETE FROM audit_auditevent WHERE id <= %s", [events[3].id])
    forged = forge_archived_row(events[4])
    assert f"archive at row {forged.id} is not signed by a trusted key" in verify_fails()


def test_reanchoring_signed_by_an_untrusted_key_fails(events, attacker_keys):
    """A forged archive row with a well-formed signature by the attacker's own key is still refused."""
    tamper("DELETE FROM audit_auditevent WHERE id <= %s", [events[2].id])
    forged = forge_archived_row(events[3], **signed_by(attacker_keys.private, events[3]))
    message = verify_fails()
    assert f"archive at row {forged.id} is not signed by a trusted key" in message
    assert "which is not a trusted key" in message


def test_altered_signature_fails(events, tmp_path, audit_signing_key):
    """A signed archive row whose signature bytes were changed (and row re-hashed to match) is refused."""
    archive(tmp_path / "a.jsonl")
    row = AuditEvent.objects.get(action=actions.AUDIT_ARCHIVED)
    details = json.loads(json.dumps(row.details))
    signature = details["checkpoint"]["signature"]
    details["checkpoint"]["signature"] = ("A" if signature[0] != "A" else "B") + signature[1:]
    fields = {**row.chain_fields(), "details": details}
    tamper(
        "UPDATE audit_auditevent SET details = %s::jsonb, hash = %s WHERE id = %s",
        [chain.canonical_json(details), chain.row_hash(fields), row.id],
    )
    message = verify_fails()
    assert f"archive at row {row.id} is not signed by a trusted key" in message
    assert "does not match" in message


def test_signed_archive_moved_elsewhere_fails(events, tmp_path):
    """A genuine signed statement copied into a new row is bound to its place (the head it signed) and fails."""
    archive(tmp_path / "a.jsonl", events[2].time + timedelta(microseconds=1))
    genuine = AuditEvent.objects.get(action=actions.AUDIT_ARCHIVED)
    record_events(2)
    with transaction.atomic():
        replayed = audit_record(
            action=actions.AUDIT_ARCHIVED, actor_type="system", actor="archive_audit", details=genuine.details
        )
    message = verify_fails()
    assert f"archive at row {replayed.id} is not signed by a trusted key" in message
    assert "another place in the chain" in message


def test_signed_statement_with_a_changed_head_fails(events, tmp_path):
    """Re-using a genuine signature with a different archived_head (the attacker's restart point) fails."""
    archive(tmp_path / "a.jsonl", events[1].time + timedelta(microseconds=1))
    genuine = AuditEvent.objects.get(action=actions.AUDIT_ARCHIVED)
    tamper("DELETE FROM audit_auditevent WHERE id <= %s", [events[3].id])
    forged = forge_archived_row(events[4], **{**genuine.details, "archived_head": events[4].prev_hash})
    assert f"archive at row {forged.id} is not signed by a trusted key" in verify_fails()


# --- Signed archives --------------------------------------------------------------------------------------------


def test_valid_signed_archive_verifies(events, tmp_path, audit_signing_key):
    """archive_audit signs; verify_audit with the public key starts from the archive and names the signer."""
    output = archive(tmp_path / "a.jsonl", events[2].time + timedelta(microseconds=1))
    fingerprint = checkpoints.signing_key_load(audit_signing_key.private).key_id
    assert f"signed by {fingerprint}" in output
    row = AuditEvent.objects.get(action=actions.AUDIT_ARCHIVED)
    assert row.details["checkpoint"]["key_id"] == fingerprint
    statement = row.details["checkpoint"]["statement"]
    assert statement["kind"] == "archive"
    assert statement["head"] == {"id": events[-1].id, "hash": events[-1].hash}
    assert statement["archive"]["archived_head"] == events[2].hash
    result = verify("--public-key", str(audit_signing_key.public))
    assert f"audit chain OK: 4 events from archived head {events[2].hash} (archive at row {row.id}, " in result
    assert f"signed by {fingerprint})" in result


def test_verify_with_someone_elses_public_key_fails(events, tmp_path, attacker_keys):
    """--public-key replaces the configured keys: an archive signed by another key is not trusted."""
    archive(tmp_path / "a.jsonl")
    assert "is not signed by a trusted key" in verify_fails("--public-key", str(attacker_keys.public))


def test_archive_refuses_without_a_signing_key(events, tmp_path, settings):
    """No key, no archive: a clear error naming the setting, no file, nothing removed."""
    settings.CODERAUTH_AUDIT_SIGNING_KEY_FILE = ""
    path = tmp_path / "a.jsonl"
    with pytest.raises(CommandError, match="CODERAUTH_AUDIT_SIGNING_KEY_FILE"):
        archive(path)
    assert not path.exists()
    assert AuditEvent.objects.count() == 6


def test_archive_refuses_an_unusable_key(events, tmp_path, settings):
    settings.CODERAUTH_AUDIT_SIGNING_KEY_FILE = str(tmp_path / "missing")
    with pytest.raises(CommandError, match="CODERAUTH_AUDIT_SIGNING_KEY_FILE=.*missing"):
        archive(tmp_path / "a.jsonl")


def test_archive_does_not_continue_from_a_forged_start(events, tmp_path):
    """archive_audit never signs over a forged archive row: it refuses, and removes nothing."""
    tamper("DELETE FROM audit_auditevent WHERE id <= %s", [events[2].id])
    forged = forge_archived_row(events[3])
    path = tmp_path / "a.jsonl"
    with pytest.raises(CommandError, match=f"Nothing archived: .*archive at row {forged.id} is not signed"):
        archive(path)
    assert not path.exists()
    assert AuditEvent.objects.count() == 4


def test_old_key_stays_trusted_after_rotation(events, tmp_path, settings, audit_signing_key):
    """After a rotation, listing the old public key keeps old archives verifying; dropping it fails them."""
    archive(tmp_path / "a.jsonl", events[1].time + timedelta(microseconds=1))
    new = write_key_pair(tmp_path, "new-key")
    trusted = tmp_path / "trusted.pub"
    trusted.write_text(audit_signing_key.public.read_text() + new.public.read_text())
    settings.CODERAUTH_AUDIT_SIGNING_KEY_FILE = str(new.private)
    settings.CODERAUTH_AUDIT_PUBLIC_KEYS_FILE = str(trusted)
    assert "audit chain OK" in verify()
    archive(tmp_path / "b.jsonl", events[3].time + timedelta(microseconds=1))
    assert "audit chain OK" in verify("--public-key", str(trusted))
    settings.CODERAUTH_AUDIT_PUBLIC_KEYS_FILE = ""
    record = AuditEvent.objects.filter(action=actions.AUDIT_ARCHIVED).order_by("id").first()
    assert f"archive at row {record.id} is not signed by a trusted key" in verify_fails()


# --- Archives recorded before signing ---------------------------------------------------------------------------


@pytest.fixture
def legacy_archive(events, tmp_path) -> tuple[AuditEvent, str]:
    """An installation that archived before archives were signed: an unsigned audit.archived row, rows gone."""
    tamper("DELETE FROM audit_auditevent WHERE id <= %s", [events[2].id])
    return forge_archived_row(events[3]), events[2].hash


def test_legacy_archive_verifies_only_with_its_head_pinned(legacy_archive, events):
    """An unsigned archive is accepted only with the head the auditor holds from outside the database."""
    row, head = legacy_archive
    assert f"archive at row {row.id} is not signed by a trusted key" in verify_fails()
    output = verify("--legacy-archive-head", head)
    assert f"from archived head {head} (archive at row {row.id}, unsigned, head given with --legacy-archive-head)" in (
        output
    )


def test_forged_legacy_looking_row_does_not_restart_trust(legacy_archive, events):
    """A pinned legacy head does not bless a later forged unsigned row that names another restart point."""
    _, head = legacy_archive
    tamper("DELETE FROM audit_auditevent WHERE id <= %s", [events[4].id])
    forged = forge_archived_row(events[5])
    assert f"archive at row {forged.id} is not signed by a trusted key" in verify_fails("--legacy-archive-head", head)


def test_first_signed_archive_after_a_legacy_one(legacy_archive, tmp_path):
    """archive_audit continues from a legacy start only when told its head; after that no pin is needed."""
    _, head = legacy_archive
    with pytest.raises(CommandError, match="not signed by a trusted key"):
        archive(tmp_path / "refused.jsonl")
    out = StringIO()
    call_command(
        "archive_audit",
        "--before",
        (timezone.now() + timedelta(seconds=1)).isoformat(),
        "--to",
        str(tmp_path / "a.jsonl"),
        "--legacy-archive-head",
        head,
        stdout=out,
        stderr=StringIO(),
    )
    assert "archived 4 events" in out.getvalue()
    assert "audit chain OK: 1 event from archived head" in verify()


def test_every_archive_row_in_the_table_is_checked(legacy_archive, tmp_path):
    """An unsigned archive row fails even where it starts nothing, behind a later signed archive."""
    row, head = legacy_archive
    call_command(
        "archive_audit",
        "--before",
        (AuditEvent.objects.order_by("id").first().time + timedelta(microseconds=1)).isoformat(),
        "--to",
        str(tmp_path / "a.jsonl"),
        "--legacy-archive-head",
        head,
        stdout=StringIO(),
        stderr=StringIO(),
    )
    assert AuditEvent.objects.filter(pk=row.pk).exists()
    assert f"archive at row {row.id} is not signed by a trusted key" in verify_fails()
    assert "audit chain OK" in verify("--legacy-archive-head", head)


# --- Truncation at the end --------------------------------------------------------------------------------------


def test_cut_from_the_end_is_caught_by_expect_head(events):
    """The chain alone cannot see rows cut from the end; the head recorded outside the database can."""
    recorded_head = events[-1].hash
    assert f"head {recorded_head}" in verify()
    tamper("DELETE FROM audit_auditevent WHERE id >= %s", [events[4].id])
    assert "audit chain OK: 4 events" in verify()  # what an attacker relies on
    message = verify_fails("--expect-head", recorded_head)
    assert f"head {recorded_head} (--expect-head) is not in the log: rows were cut from the end" in message


def test_expect_head_holds_while_the_log_grows(events):
    record_events(2)
    assert f"--expect-head OK: head {events[-1].hash} is row {events[-1].id} of the log" in verify(
        "--expect-head", events[-1].hash
    )


def test_cut_from_the_end_is_caught_by_a_checkpoint(events, tmp_path, audit_signing_key):
    """A signed checkpoint of row N: the log must still hold row N with its hash, and go on from it."""
    path = tmp_path / "checkpoint.json"
    assert f"checkpoint of row {events[-1].id}, head {events[-1].hash}" in checkpoint(path)
    record_events(2)
    output = verify("--checkpoint", str(path), "--public-key", str(audit_signing_key.public))
    assert f"checkpoint {path} OK: head {events[-1].hash} (signed " in output
    tamper("DELETE FROM audit_auditevent WHERE id >= %s", [events[4].id])
    message = verify_fails("--checkpoint", str(path), "--public-key", str(audit_signing_key.public))
    assert message == (
        f"audit chain broken: the log ends at row {events[3].id}, but checkpoint {path} signed row {events[-1].id}: "
        "rows were cut from the end"
    )


def test_cut_and_regrown_log_is_caught_by_a_checkpoint(events, tmp_path):
    """Cutting the end and appending new rows past the checkpoint's id still fails: its row is gone or different."""
    path = tmp_path / "checkpoint.json"
    checkpoint(path)
    tamper("DELETE FROM audit_auditevent WHERE id >= %s", [events[4].id])
    record_events(3)
    assert verify_fails("--checkpoint", str(path)) == (
        f"audit chain broken at row {events[-1].id}: checkpoint {path} signed this row, and it is missing: "
        "rows were removed"
    )


def test_rewritten_log_is_caught_by_a_checkpoint(events, tmp_path):
    """Rewriting a row and re-hashing everything after it fools the chain, not a signed checkpoint."""
    path = tmp_path / "checkpoint.json"
    checkpoint(path)
    previous = events[1].hash
    for event in events[2:]:
        fields = {**event.chain_fields(), "prev_hash": previous}
        if event.id == events[2].id:
            fields["actor"] = "mallory"
        fields["hash"] = chain.row_hash(fields)
        tamper(
            "UPDATE audit_auditevent SET actor = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [fields["actor"], fields["prev_hash"], fields["hash"], event.id],
        )
        previous = fields["hash"]
    assert "audit chain OK: 6 events" in verify()
    message = verify_fails("--checkpoint", str(path))
    assert f"audit chain broken at row {events[-1].id}: checkpoint {path} signed hash {events[-1].hash}" in message


def test_forged_checkpoint_file_fails(events, tmp_path, attacker_keys, audit_signing_key):
    """A checkpoint edited after signing, or signed by another key, is refused before anything is walked."""
    path = tmp_path / "checkpoint.json"
    checkpoint(path)
    document = json.loads(path.read_text())
    document["statement"]["head"]["id"] = events[2].id
    document["statement"]["head"]["hash"] = events[2].hash
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document))
    assert "does not verify: the signature by" in verify_fails("--checkpoint", str(edited))
    assert "which is not a trusted key" in verify_fails(
        "--checkpoint", str(path), "--public-key", str(attacker_keys.public)
    )


def test_checkpoint_refuses_a_broken_chain(events, tmp_path):
    """audit_checkpoint verifies before it signs: it never signs a tampered log."""
    tamper("UPDATE audit_auditevent SET actor = 'mallory' WHERE id = %s", [events[1].id])
    path = tmp_path / "checkpoint.json"
    with pytest.raises(CommandError, match=f"Nothing signed: audit chain broken at row {events[1].id}"):
        checkpoint(path)
    assert not path.exists()


def test_checkpoint_needs_a_key_rows_and_a_new_file(db, tmp_path, settings, audit_signing_key):
    path = tmp_path / "checkpoint.json"
    with pytest.raises(CommandError, match="holds no event"):
        checkpoint(path)
    record_events(1)
    path.write_text("keep me")
    with pytest.raises(CommandError, match="already exists"):
        checkpoint(path)
    assert path.read_text() == "keep me"
    settings.CODERAUTH_AUDIT_SIGNING_KEY_FILE = ""
    with pytest.raises(CommandError, match="CODERAUTH_AUDIT_SIGNING_KEY_FILE"):
        checkpoint(tmp_path / "other.json")


def test_checkpoint_to_stdout(events):
    out, err = StringIO(), StringIO()
    call_command("audit_checkpoint", "--to", "-", stdout=out, stderr=err)
    assert json.loads(out.getvalue())["statement"]["head"] == {"id": events[-1].id, "hash": events[-1].hash}
    assert "checkpoint of row" in err.getvalue()


def test_checkpoint_of_an_archived_row_points_at_the_archive_file(events, tmp_path, audit_signing_key):
    """Once its row is archived, a checkpoint is checked against the archive file, which holds it."""
    path = tmp_path / "checkpoint.json"
    checkpoint(path)
    later = record_events(2)
    archive_file = tmp_path / "a.jsonl"
    archive(archive_file, later[0].time + timedelta(microseconds=1))
    assert "check it against the archive file" in verify_fails("--checkpoint", str(path))
    output = verify(
        "--archive", str(archive_file), "--checkpoint", str(path), "--public-key", str(audit_signing_key.public)
    )
    assert f"head {events[-1].hash} (signed " in output
    assert f"is row {events[-1].id} of {archive_file}" in output


def test_checkpoint_at_the_archive_boundary_holds(events, tmp_path):
    """A checkpoint whose head became the archive's head is the chain's signed start: it still holds."""
    path = tmp_path / "checkpoint.json"
    checkpoint(path)
    archive(tmp_path / "a.jsonl", events[-1].time + timedelta(microseconds=1))
    assert f"checkpoint {path} OK: head {events[-1].hash}" in verify("--checkpoint", str(path))


# --- Offline: archive files and exports -------------------------------------------------------------------------


def test_archive_file_verifies_offline_with_the_public_key(events, tmp_path, audit_signing_key):
    path = tmp_path / "a.jsonl"
    archive(path)
    fingerprint = checkpoints.signing_key_load(audit_signing_key.private).key_id
    output = verify("--archive", str(path), "--public-key", str(audit_signing_key.public))
    assert f"audit archive OK: 6 events, head {events[-1].hash}" in output
    assert f"by {fingerprint}" in output


def test_archive_file_resigned_by_another_key_fails_offline(events, tmp_path, attacker_keys, audit_signing_key):
    """The manifest's statement re-signed with an untrusted key: refused."""
    path = tmp_path / "a.jsonl"
    archive(path)
    *lines, _ = path.read_text().splitlines()
    manifest = json.loads(path.read_text().splitlines()[-1])["manifest"]
    statement = manifest["checkpoint"]["statement"]
    forged = checkpoints.checkpoint_sign(statement, key=checkpoints.signing_key_load(attacker_keys.private))
    path.write_text("\n".join([*lines, json.dumps({"manifest": {**manifest, "checkpoint": forged}})]) + "\n")
    message = verify_fails("--archive", str(path), "--public-key", str(audit_signing_key.public))
    assert "the manifest's signature does not hold" in message
    assert "not a trusted key" in message


def test_archive_file_with_rows_cut_and_manifest_fixed_fails_offline(events, tmp_path, audit_signing_key):
    """Dropping the last rows and fixing the unsigned manifest fields no longer passes: the signature says more."""
    path = tmp_path / "a.jsonl"
    archive(path)
    *lines, last = path.read_text().splitlines()
    manifest = json.loads(last)["manifest"]
    kept = lines[:4]
    body = "".join(line + "\n" for line in kept).encode()
    manifest.update(
        count=4,
        last_id=events[3].id,
        head=events[3].hash,
        archived_head=events[3].hash,
        sha256=hashlib.sha256(body).hexdigest(),
    )
    path.write_text("".join(line + "\n" for line in kept) + json.dumps({"manifest": manifest}) + "\n")
    assert "the signed count is 6, not 4" in verify_fails(
        "--archive", str(path), "--public-key", str(audit_signing_key.public)
    )


def test_unsigned_archive_file_needs_its_head_pinned(events, tmp_path, settings, audit_signing_key):
    """An archive file without a signature passes under a trusted key only when the auditor pinned its head."""
    rows = [chain.archive_line(row) for row in AuditEvent.objects.order_by("id").values(*chain.FIELDS)[:2]]
    body = "".join(line + "\n" for line in rows).encode()
    manifest = {
        "format": chain.ARCHIVE_FORMAT,
        "count": 2,
        "first_id": events[0].id,
        "last_id": events[1].id,
        "start_hash": chain.GENESIS_HASH,
        "head": events[1].hash,
        "archived_head": events[1].hash,
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    path = tmp_path / "legacy.jsonl"
    path.write_bytes(body + (json.dumps({"manifest": manifest}) + "\n").encode())
    public_key = str(audit_signing_key.public)
    assert "the manifest is not signed" in verify_fails("--archive", str(path), "--public-key", public_key)
    output = verify("--archive", str(path), "--public-key", public_key, "--legacy-archive-head", events[1].hash)
    assert "unsigned, head given with --legacy-archive-head" in output
    settings.CODERAUTH_AUDIT_SIGNING_KEY_FILE = ""
    assert "unsigned, and no public key to require a signature" in verify("--archive", str(path))


def export_jsonl(path, **filters) -> None:
    response = audit_export_response(filters=AuditFilters(**filters), export_format="jsonl", user_id=0)
    path.write_bytes(b"".join(response.streaming_content))


def test_export_verifies_offline_against_a_checkpoint(events, tmp_path, audit_signing_key):
    """A JSONL export is a stretch of the chain; a signed checkpoint whose head it holds vouches for it offline."""
    checkpoint_file = tmp_path / "checkpoint.json"
    checkpoint(checkpoint_file)
    record_events(2)
    export = tmp_path / "export.jsonl"
    export_jsonl(export)
    output = verify(
        "--archive", str(export), "--checkpoint", str(checkpoint_file), "--public-key", str(audit_signing_key.public)
    )
    assert f"audit export OK: 8 events, head {AuditEvent.objects.order_by('-id').first().hash}" in output
    assert f"checkpoint {checkpoint_file} OK: head {events[-1].hash}" in output
    assert f"is row {events[-1].id} of {export}" in output


def test_export_cut_before_the_checkpoint_fails_offline(events, tmp_path):
    """An export that stops before the checkpoint's row (cut at the end) does not hold the signed head."""
    checkpoint_file = tmp_path / "checkpoint.json"
    checkpoint(checkpoint_file)
    export = tmp_path / "export.jsonl"
    export_jsonl(export, until=events[3].time + timedelta(microseconds=1))
    message = verify_fails("--archive", str(export), "--checkpoint", str(checkpoint_file))
    assert f"ends at row {events[3].id}, but checkpoint {checkpoint_file} signed row {events[-1].id}" in message


def test_tampered_export_fails_offline(events, tmp_path):
    export = tmp_path / "export.jsonl"
    export_jsonl(export)
    export.write_text(export.read_text().replace('"actor":"tests"', '"actor":"mallory"', 1))
    assert "hash mismatch" in verify_fails("--archive", str(export))


def test_filtered_export_is_refused_offline(events, tmp_path):
    """A filtered export leaves rows out, so its links cannot be checked: said plainly, never passed."""
    export = tmp_path / "export.jsonl"
    export_jsonl(export, actions=["permission_mode.updated"])
    assert "a filtered export" in verify_fails("--archive", str(export))


# --- Verifying in autocommit, as on a server --------------------------------------------------------------------


def test_verify_and_checkpoint_outside_a_transaction(transactional_db, tmp_path, audit_signing_key):
    """On a server the walk runs in its own repeatable-read transaction: the start and the rows, one snapshot."""
    events = record_events(4)
    archive(tmp_path / "a.jsonl", events[1].time + timedelta(microseconds=1))
    checkpoint(tmp_path / "checkpoint.json")
    assert "audit chain OK: 3 events from archived head" in verify("--checkpoint", str(tmp_path / "checkpoint.json"))
