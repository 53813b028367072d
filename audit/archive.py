"""Retention: move old audit rows to a verified JSONL archive, the one sanctioned way rows leave the log.

An archive is the chain's oldest rows, each checked as it is written, then a manifest line (count, first and
last id, start hash, head, SHA-256 of the row lines). The `audit.archived` event recorded with it stays in the
table, and the first remaining row chains to the archive's head, so verify_audit can start from there.

Both the manifest and the event carry the same signed statement (audit/checkpoints.py), made with a key kept
outside the database: without it, anyone who can delete rows could also record an `audit.archived` row that
restarts the chain after them. The archive continues only from a start that is itself trusted, so it never
signs over a forged one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from django.db import connection, transaction
from django.utils import timezone

from audit import actions, chain, checkpoints
from audit.models import AuditEvent
from audit.sealing import audit_seal_locked
from audit.selectors import audit_chain_rows
from audit.services import audit_record, chain_lock
from audit.verification import Trust, audit_chain_anchor
from core.exceptions import ApplicationError

PROGRESS_EVERY = 10_000


class ArchiveFailed(ApplicationError):
    """Nothing was archived: the transaction rolled back and the log is as it was."""


def audit_archive(
    *,
    before: datetime,
    archive: BinaryIO,
    path: Path,
    signing_key: checkpoints.SigningKey,
    trust: Trust,
    chunk_size: int = 2000,
    progress: Callable[[str], None] = lambda message: None,
) -> dict | None:
    """Write every row older than `before` to `archive`, verified and signed, then delete them, in one transaction.

    Returns the details recorded in `audit.archived` (the summary and its signed checkpoint), or None when no
    row is old enough. Raises chain.ChainBroken when the chain's start is not trusted (checkpoints.UntrustedArchive)
    or the rows to archive do not verify, and ArchiveFailed when the delete does not match what was written;
    either way the transaction rolls back and no row leaves the log.
    """
    with transaction.atomic():
        # No event may be appended while the chain's start moves: lock writers out (this waits for those in
        # flight), take the sealers' lock, and seal what the writers committed, so every row is in the chain.
        _lock_out_writers()
        chain_lock()
        audit_seal_locked()
        anchor = audit_chain_anchor(trust=trust)
        # A contiguous prefix of the chain, all older than `before`: everything below the first
        # row at or after it (clock skew between app servers could interleave times otherwise).
        boundary = AuditEvent.objects.filter(time__gte=before).order_by("id").values_list("id", flat=True).first()
        walk = chain.ChainWalk(start_hash=anchor.start_hash)
        body = hashlib.sha256()
        first_id = None
        # Closed here, not by the garbage collector: a failure must not leave the server-side cursor
        # open past the rollback of this transaction.
        with closing(audit_chain_rows(before_id=boundary, chunk_size=chunk_size)) as rows:
            for row in walk.walk(rows):
                line = (chain.archive_line(row) + "\n").encode("ascii")
                archive.write(line)
                body.update(line)
                first_id = row["id"] if first_id is None else first_id
                if walk.count % PROGRESS_EVERY == 0:
                    progress(f"archive_audit: {walk.count} events written")
        if walk.count == 0:
            return None
        summary = {
            "before": before.isoformat(),
            "count": walk.count,
            "first_id": first_id,
            "last_id": walk.last_id,
            "start_hash": walk.start_hash,
            "archived_head": walk.head,
            "sha256": body.hexdigest(),
            "file": path.name,
        }
        # The log's newest row, which audit.archived will chain to: with writers locked out, nothing comes between.
        head_id, head_hash = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
        statement = checkpoints.archive_statement(
            archive=summary, head_id=head_id, head_hash=head_hash, time=timezone.now()
        )
        signed = checkpoints.checkpoint_sign(statement, key=signing_key)
        manifest = {"format": chain.ARCHIVE_FORMAT, "head": walk.head, **summary, "checkpoint": signed}
        archive.write((json.dumps({"manifest": manifest}, sort_keys=True, separators=(",", ":")) + "\n").encode())
        archive.flush()
        os.fsync(archive.fileno())
        progress(f"archive_audit: {walk.count} events written and verified; removing them")

        # Recorded before the delete so the event chains to the last archived row and stays as
        # the first remaining row when every row was archived.
        details = {**summary, "checkpoint": signed}
        event = audit_record(action=actions.AUDIT_ARCHIVED, actor_type="system", actor="archive_audit", details=details)
        audit_seal_locked()
        event.refresh_from_db(fields=["prev_hash", "hash"])
        if event.prev_hash != head_hash:
            raise ArchiveFailed("The audit.archived event did not chain to the head that was signed.")
        deleted = _delete_archived(first_id=first_id, last_id=walk.last_id)
        if deleted != walk.count:
            raise ArchiveFailed(f"Expected to remove {walk.count} rows, found {deleted}.")
    return details


def _lock_out_writers() -> None:
    """SHARE ROW EXCLUSIVE on the table: it waits for every writer holding a row id to commit, and admits none until
    this transaction ends. Readers and exports go on."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL lock_timeout = '10s'")
        cursor.execute("LOCK TABLE audit_auditevent IN SHARE ROW EXCLUSIVE MODE")


def _delete_archived(*, first_id: int, last_id: int) -> int:
    with connection.cursor() as cursor:
        # The guard is lifted with ALTER TABLE ... DISABLE TRIGGER inside this transaction rather
        # than a session setting the trigger would check: only the table's owner can do it (a role
        # with mere DELETE rights cannot), it is rolled back with everything else on failure, and
        # the SHARE ROW EXCLUSIVE lock it takes keeps writers out until commit while readers go on.
        # It is re-enabled before commit, so no other session ever sees the table unguarded.
        cursor.execute("SET LOCAL lock_timeout = '10s'")
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_no_delete")
        cursor.execute("DELETE FROM audit_auditevent WHERE id >= %s AND id <= %s", [first_id, last_id])
        deleted = cursor.rowcount
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_auditevent_no_delete")
    return deleted
