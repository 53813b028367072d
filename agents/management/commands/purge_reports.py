"""Delete agent log lines and app statuses older than their retention periods, each app's latest status excepted."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from agents.services.retention import agent_logs_purge_batch, app_statuses_purge_batch, expired_reports_count


class Command(BaseCommand):
    help = (
        "Delete agent log lines received more than CODERAUTH_AGENT_LOG_RETENTION ago and app statuses created more "
        "than CODERAUTH_APP_STATUS_RETENTION ago (each agent's latest status per app is kept), in batches, each "
        "with an audit row (agent_log.purged / app_status.purged). Safe to run again at any time."
    )

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=5000, help="rows deleted per transaction (default 5000)")
        parser.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")

    def handle(self, *args, batch_size: int, dry_run: bool, **options):
        if not 1 <= batch_size <= 100_000:
            raise CommandError("--batch-size must be between 1 and 100000.")
        self.batch_size = batch_size
        log_retention = settings.CODERAUTH_AGENT_LOG_RETENTION
        status_retention = settings.CODERAUTH_APP_STATUS_RETENTION
        if log_retention.total_seconds() <= 0 or status_retention.total_seconds() <= 0:
            raise CommandError("The retention periods must be positive.")
        now = timezone.now()
        logs_before = now - log_retention
        statuses_before = now - status_retention
        counts = expired_reports_count(logs_received_before=logs_before, statuses_created_before=statuses_before)
        self.stdout.write(
            f"Log lines received before {logs_before:%Y-%m-%d %H:%M} UTC: {counts['agent_log']}; "
            f"app statuses created before {statuses_before:%Y-%m-%d %H:%M} UTC, not their app's latest: "
            f"{counts['app_status']}"
        )
        if dry_run:
            self.stdout.write("Dry run: nothing deleted.")
            return
        self._purge("log lines", counts["agent_log"], agent_logs_purge_batch, received_before=logs_before)
        self._purge("app statuses", counts["app_status"], app_statuses_purge_batch, created_before=statuses_before)

    def _purge(self, noun: str, expected: int, purge_batch, **cutoff) -> None:
        purged = 0
        while deleted := purge_batch(batch_size=self.batch_size, **cutoff):
            purged += deleted
            self.stdout.write(f"  {noun}: {purged} of about {expected} deleted")
        self.stdout.write(self.style.SUCCESS(f"{noun}: {purged} deleted."))
