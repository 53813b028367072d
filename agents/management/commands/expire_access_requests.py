"""Write the `access_request.expired` audit row of every access request that has lapsed and has none yet."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from agents.services.elevation import access_requests_expire_due


class Command(BaseCommand):
    help = (
        "Record lapsed access requests (pending too long, or approved past their expiry) in the audit log, once "
        "each, in batches. Grants lapse by time alone; this only makes the log show it without waiting for a read. "
        "Safe from cron and in parallel with the app."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=500, help="requests recorded per transaction")

    def handle(self, *args, batch_size: int, **options):
        if not 1 <= batch_size <= 100_000:
            raise CommandError("--batch-size must be between 1 and 100000.")
        now = timezone.now()
        recorded = 0
        while written := access_requests_expire_due(now=now, batch_size=batch_size):
            recorded += written
            self.stdout.write(f"  {recorded} recorded so far")
        self.stdout.write(self.style.SUCCESS(f"Lapsed access requests recorded: {recorded}."))
