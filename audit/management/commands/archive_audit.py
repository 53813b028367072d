"""Retention: move old audit rows to a verified JSONL archive (audit/archive.py does the work)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from audit import chain
from audit.archive import ArchiveFailed, audit_archive
from audit.management.options import command_signing_key, command_trust


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
        "and record audit.archived with the archive's SHA-256, signed with CODERAUTH_AUDIT_SIGNING_KEY_FILE "
        "(required). Refuses to overwrite an existing file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--before", required=True, metavar="DATE", help="archive rows with time < DATE (ISO 8601)")
        parser.add_argument("--to", required=True, metavar="FILE", help="the JSONL archive to create")
        parser.add_argument("--chunk-size", type=int, default=2000, help="rows fetched per round trip")
        parser.add_argument(
            "--legacy-archive-head",
            action="append",
            default=[],
            metavar="HASH",
            help="continue from an unsigned audit.archived row whose archived_head is HASH (an archive made before "
            "archives were signed; take HASH from its archive file)",
        )

    def handle(self, *args, before, to, chunk_size=2000, legacy_archive_head=(), **options):
        before_time = parse_before(before)
        # Before the file exists: without a key there is nothing to write.
        signing_key = command_signing_key()
        trust = command_trust([], list(legacy_archive_head), signing_key=signing_key)
        path = Path(to)
        try:
            archive = path.open("xb")  # exclusive create: never write over an earlier archive
        except FileExistsError:
            raise CommandError(f"{path} already exists; refusing to overwrite it.") from None
        except OSError as error:
            raise CommandError(f"Cannot create {path}: {error.strerror}.") from None
        try:
            with archive:
                summary = audit_archive(
                    before=before_time,
                    archive=archive,
                    path=path,
                    signing_key=signing_key,
                    trust=trust,
                    chunk_size=chunk_size,
                    progress=self.stderr.write,
                )
        except BaseException as error:
            path.unlink(missing_ok=True)  # ours, created above: no half-written archive is left behind
            if isinstance(error, (chain.ChainBroken, ArchiveFailed)):
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
            f"sha256 {summary['sha256']}, head {summary['archived_head']}; signed by {signing_key.key_id}"
        )
