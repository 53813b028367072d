"""Sign the audit chain's current head for the auditor to keep outside the database (audit/verification.py)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit import chain
from audit.management.options import add_trust_arguments, command_signing_key, command_trust
from audit.verification import NothingToSign, audit_checkpoint_sign


class Command(BaseCommand):
    help = (
        "Verify the whole audit chain, then write its head (row id, hash, count, start) signed with "
        "CODERAUTH_AUDIT_SIGNING_KEY_FILE to --to. Keep the file outside the database: `verify_audit --checkpoint "
        "FILE` later proves the log still holds that head, so nothing was cut from the end. Never overwrites."
    )

    def add_arguments(self, parser):
        parser.add_argument("--to", required=True, metavar="FILE", help="the checkpoint file to create; - for stdout")
        add_trust_arguments(parser)
        parser.add_argument("--chunk-size", type=int, default=2000, help="rows fetched per round trip")

    def handle(self, *args, to, chunk_size=2000, **options):
        signing_key = command_signing_key()
        trust = command_trust(options["public_key"], options["legacy_archive_head"], signing_key=signing_key)
        try:
            checkpoint, report = audit_checkpoint_sign(trust=trust, signing_key=signing_key, chunk_size=chunk_size)
        except chain.ChainBroken as broken:
            raise CommandError(f"Nothing signed: {broken}") from None
        except NothingToSign as empty:
            raise CommandError(str(empty)) from None
        text = json.dumps(checkpoint, indent=2, sort_keys=True) + "\n"
        summary = (
            f"checkpoint of row {report.head_id}, head {report.head_hash} ({report.count} events from "
            f"{report.anchor.origin()}), signed by {signing_key.key_id}"
        )
        if to == "-":
            self.stdout.write(text, ending="")
            self.stderr.write(summary)
            return
        path = Path(to)
        try:
            with path.open("x", encoding="ascii") as file:  # exclusive create: never replace an earlier checkpoint
                file.write(text)
        except FileExistsError:
            raise CommandError(f"{path} already exists; refusing to overwrite it.") from None
        except OSError as error:
            raise CommandError(f"Cannot create {path}: {error.strerror}.") from None
        self.stdout.write(f"{summary}, written to {path}")
