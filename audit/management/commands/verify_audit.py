"""Walk the audit hash chain in constant memory from a trusted start; name the first bad row.

audit/verification.py walks the stored chain, audit/offline.py checks files; this parses, loads keys and prints.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit import chain
from audit.management.options import add_trust_arguments, command_head_checks, command_trust
from audit.offline import FileInvalid, audit_file_verify
from audit.verification import audit_chain_verify


class Command(BaseCommand):
    help = (
        "Verify the audit log's hash chain from genesis or a signed archive (exit 0 and print the count when "
        "whole, else fail naming the first bad row). --checkpoint and --expect-head also prove nothing was cut "
        "from the end. With --archive FILE, verify an archive_audit file or a JSONL export instead, offline."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--archive", metavar="FILE", help="verify this archive_audit file or unfiltered JSONL export, not the log"
        )
        add_trust_arguments(parser)
        parser.add_argument(
            "--checkpoint",
            action="append",
            default=[],
            metavar="FILE",
            help="a signed checkpoint from audit_checkpoint: its head must still be in the chain; repeatable",
        )
        parser.add_argument(
            "--expect-head",
            action="append",
            default=[],
            metavar="HASH",
            help="a head hash printed by an earlier verify_audit: it must still be in the chain; repeatable",
        )
        parser.add_argument("--chunk-size", type=int, default=2000, help="rows fetched per round trip")

    def handle(self, *args, archive=None, chunk_size=2000, **options):
        trust = command_trust(options["public_key"], options["legacy_archive_head"])
        heads = command_head_checks(options["checkpoint"], options["expect_head"], trust=trust)
        if archive:
            try:
                report = audit_file_verify(
                    path=Path(archive), trusted=trust.keys, legacy_heads=trust.legacy_heads, heads=heads
                )
            except FileInvalid as invalid:
                raise CommandError(str(invalid)) from None
            self.stdout.write(report.summary())
            for line in report.heads:
                self.stdout.write(line)
            return
        try:
            result = audit_chain_verify(trust=trust, heads=heads, chunk_size=chunk_size)
        except chain.ChainBroken as broken:
            raise CommandError(str(broken)) from None
        self.stdout.write(
            f"audit chain OK: {_events(result.count)} from {result.anchor.describe()}, head {result.head_hash}"
        )
        for line in result.heads:
            self.stdout.write(line)
        if result.pending:
            self.stdout.write(
                f"{_events(result.pending)} after the head not sealed yet: a transaction was still in flight "
                "before them; run verify_audit again in a moment"
            )


def _events(count: int) -> str:
    return f"{count} event" if count == 1 else f"{count} events"
