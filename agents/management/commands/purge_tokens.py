"""Delete agent and user tokens that were revoked or expired more than --older-than-days ago."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from agents.services.retention import TOKEN_MODELS, dead_tokens_count, dead_tokens_purge_batch


class Command(BaseCommand):
    help = (
        "Delete agent and user tokens revoked or expired more than --older-than-days ago, in batches, each "
        "with an audit row (agent_token.purged / user_token.purged). Live tokens are never touched."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=int, default=30, help="dead for at least this long (default 30)")
        parser.add_argument("--batch-size", type=int, default=1000, help="tokens deleted per transaction")
        parser.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")

    def handle(self, *args, older_than_days: int, batch_size: int, dry_run: bool, **options):
        if older_than_days < 1:
            raise CommandError("--older-than-days must be at least 1.")
        if not 1 <= batch_size <= 100_000:
            raise CommandError("--batch-size must be between 1 and 100000.")
        dead_before = timezone.now() - timedelta(days=older_than_days)
        counts = dead_tokens_count(dead_before=dead_before)
        self.stdout.write(
            f"Tokens dead before {dead_before:%Y-%m-%d %H:%M} UTC: "
            + ", ".join(f"{count} {kind.replace('_', ' ')}s" for kind, count in counts.items())
        )
        if dry_run:
            self.stdout.write("Dry run: nothing deleted.")
            return
        for kind in TOKEN_MODELS:
            purged = 0
            while deleted := dead_tokens_purge_batch(kind=kind, dead_before=dead_before, batch_size=batch_size):
                purged += deleted
                self.stdout.write(f"  {kind.replace('_', ' ')}s: {purged} of about {counts[kind]} deleted")
            self.stdout.write(self.style.SUCCESS(f"{kind.replace('_', ' ')}s: {purged} deleted."))
