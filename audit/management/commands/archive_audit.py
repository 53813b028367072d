"""Retention: move old audit rows to a verified JSONL archive, the one sanctioned way rows leave the log."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import closing
from datetime import UTC, datetime, time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, connection, transaction

from audit import chain
from audit.models import AuditEvent
from audit.services import audit_record

ARCHIVE_FORMAT = "coderauth-audit-archive/1"
PROGRESS_EVERY = 10_000


def parse_before(value: str) -> datetime:
    """An ISO date (midnight UTC) or date-time; a time without an offset is UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--before {value!r} is not an ISO 8601 date or date-time.") from None
    if len(value) == 10:
        parsed = datetime.combine(parsed.date(), time.min)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Write audit rows older than --before to --to as verified JSONL with the chain head, delete them, "
        "and record audit.archived with the archive's SHA-256. Refuses to overwrite an existing file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--before", required=True, metavar="DATE", help="archive rows with time < DATE (ISO 8601)")
        parser.add_argument("--to", required=True, metavar="FILE", help="the JSONL archive to create")
        parser.add_argument("--chunk-size", type=int, default=2000, help="rows fetched per round trip")

    def handle(self, *args, before, to, chunk_size=2000, **options):
        before_time = parse_before(before)
        path = Path(to)
        try:
            archive = path.open("xb")  # exclusive create: never write over an earlier archive
        except FileExistsError:
            raise CommandError(f"{path} already exists; refusing to overwrite it.") from None
        except OSError as error:
            raise CommandError(f"Cannot create {path}: {error.strerror}.") from None
        try:
            with archive, transaction.atomic():
                summary = self._archive(archive, path=path, before=before_time, chunk_size=chunk_size)
        except BaseException as error:
            path.unlink(missing_ok=True)  # ours, created above: no half-written archive is left behind
            if isinstance(error, chain.ChainBroken):
                raise CommandError(f"Nothing archived: {error}") from None
            if isinstance(error, DatabaseError):
                raise CommandError(f"Nothing archived: the database refused ({error}).") from None
            raise
        if summary is None:
            path.unlink(missing_ok=True)
            self.stderr.write(f"No audit events before {before_time.isoformat()}; nothing archived.")
            return
        self.stdout.write(
            f"archived {summary['count']} events (ids {summary['first_id']}..{summary['last_id']}) to {path}; "
            f"sha256 {summary['sha256']}, head {summary['archived_head']}"
        )

    def _archive(self, archive, *, path: Path, before: datetime, chunk_size: int) -> dict | None:
        with connection.cursor() as cursor:
            # The writers' lock: no event can be appended while the chain's start moves.
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [chain.CHAIN_LOCK_KEY])
        # A contiguous prefix of the chain, all older than `before`: everything below the first
        # row at or after it (clock skew between app servers could interleave times otherwise).
        boundary = AuditEvent.objects.filter(time__gte=before).order_by("id").values_list("id", flat=True).first()
        walk = chain.ChainWalk(start_hash=chain.stored_start_hash())
        body = hashlib.sha256()
        first_id = None
        # Closed here, not by the garbage collector: a failure must not leave the server-side cursor
        # open past the rollback of this transaction.
        with closing(chain.stored_rows(before_id=boundary, chunk_size=chunk_size)) as rows:
            for row in walk.walk(rows):
                line = (chain.archive_line(row) + "\n").encode("ascii")
                archive.write(line)
                body.update(line)
                first_id = row["id"] if first_id is None else first_id
                if walk.count % PROGRESS_EVERY == 0:
                    self.stderr.write(f"archive_audit: {walk.count} events written")
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
        manifest = {"format": ARCHIVE_FORMAT, "head": walk.head, **summary}
        archive.write((json.dumps({"manifest": manifest}, sort_keys=True, separators=(",", ":")) + "\n").encode())
        archive.flush()
        os.fsync(archive.fileno())
        self.stderr.write(f"archive_audit: {walk.count} events written and verified; removing them")

        # Recorded before the delete so the event chains to the last archived row and stays as
        # the first remaining row when every row was archived.
        audit_record(action=chain.ARCHIVED_ACTION, actor_type="system", actor="archive_audit", details=summary)
        with connection.cursor() as cursor:
            # The guard is lifted with ALTER TABLE ... DISABLE TRIGGER inside this transaction rather
            # than a session setting the trigger would check: only the table's owner can do it (a role
            # with mere DELETE rights cannot), it is rolled back with everything else on failure, and
            # the SHARE ROW EXCLUSIVE lock it takes keeps writers out until commit while readers go on.
            # It is re-enabled before commit, so no other session ever sees the table unguarded.
            cursor.execute("SET LOCAL lock_timeout = '10s'")
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_auditevent_no_delete")
            cursor.execute("DELETE FROM audit_auditevent WHERE id >= %s AND id <= %s", [first_id, walk.last_id])
            deleted = cursor.rowcount
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_auditevent_no_delete")
        if deleted != walk.count:
            raise CommandError(f"Nothing archived: expected to remove {walk.count} rows, found {deleted}.")
        return summary
