"""Walk the audit hash chain in constant memory; name the first bad row."""

from __future__ import annotations

import hashlib
import json
from contextlib import closing
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit import chain
from audit.selectors import audit_chain_rows, audit_chain_start_hash


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain (exit 0 and print the count when whole, else fail naming the "
        "first bad row). With --archive FILE, verify an archive written by archive_audit instead."
    )

    def add_arguments(self, parser):
        parser.add_argument("--archive", metavar="FILE", help="verify this archive_audit JSONL file")
        parser.add_argument("--chunk-size", type=int, default=2000, help="rows fetched per round trip")

    def handle(self, *args, archive=None, chunk_size=2000, **options):
        if archive:
            count, head = verify_archive_file(Path(archive))
            self.stdout.write(f"audit archive OK: {_events(count)}, head {head}")
            return
        start = audit_chain_start_hash()
        walk = chain.ChainWalk(start_hash=start)
        try:
            with closing(audit_chain_rows(chunk_size=chunk_size)) as rows:
                for row in rows:
                    walk.check(row)
        except chain.ChainBroken as broken:
            raise CommandError(str(broken)) from None
        origin = "genesis" if start == chain.GENESIS_HASH else f"archived head {start}"
        self.stdout.write(f"audit chain OK: {_events(walk.count)} from {origin}, head {walk.head}")


def _events(count: int) -> str:
    return f"{count} event" if count == 1 else f"{count} events"


def verify_archive_file(path: Path) -> tuple[int, str]:
    """Check every line's hash and link, then the trailing manifest's count, head and body SHA-256."""
    if not path.is_file():
        raise CommandError(f"{path}: no such file.")
    body = hashlib.sha256()
    walk: chain.ChainWalk | None = None
    manifest = None
    with path.open("rb") as archive:
        for number, raw in enumerate(archive, start=1):
            if manifest is not None:
                raise CommandError(f"{path}: line {number} follows the manifest.")
            try:
                record = json.loads(raw)
            except ValueError:
                raise CommandError(f"{path}: line {number} is not JSON.") from None
            if "manifest" in record:
                manifest = record["manifest"]
                continue
            if walk is None:
                walk = chain.ChainWalk(start_hash=record.get("prev_hash", ""))
            try:
                walk.check(record)
            except chain.ChainBroken as broken:
                raise CommandError(f"{path}: {broken}") from None
            except (KeyError, TypeError, ValueError) as error:
                raise CommandError(f"{path}: line {number} is not an audit row ({error}).") from None
            body.update(raw)
    if manifest is None:
        raise CommandError(f"{path}: no manifest line; the archive is incomplete.")
    if walk is None:
        raise CommandError(f"{path}: the archive holds no rows.")
    expected = {"count": walk.count, "head": walk.head, "start_hash": walk.start_hash, "sha256": body.hexdigest()}
    for key, value in expected.items():
        if manifest.get(key) != value:
            raise CommandError(f"{path}: manifest {key} is {manifest.get(key)!r}, the rows give {value!r}.")
    return walk.count, walk.head
