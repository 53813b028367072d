"""Deliver the webhook outbox: POST each due row, signed, and retry failures with backoff, until stopped."""

from __future__ import annotations

import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import Error, connection

from agents.services.webhook_delivery import DeliveryPass, webhook_deliveries_deliver_due
from core.termination import stop_on_termination

BATCH_SIZE = 100


class Command(BaseCommand):
    help = (
        "POST the due webhook deliveries (access requests and their decisions), signed with "
        "CODERAUTH_ELEVATION_WEBHOOK_SECRET, retrying failures with exponential backoff; forever, or once with "
        "--once. Any number may run at once: each row is sent by one worker at a time. SIGTERM stops it cleanly."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="deliver what is due now, then exit")
        parser.add_argument(
            "--interval", type=float, default=2.0, help="seconds between polls when nothing is due (default 2)"
        )

    def handle(self, *args, once: bool, interval: float, **options):
        if not 0.05 <= interval <= 3600:
            raise CommandError("--interval must be between 0.05 and 3600 seconds.")
        self.stop = threading.Event()
        if once:
            self.stdout.write(self._line(self._deliver_due()))
            return
        with stop_on_termination(self.stop):
            self.stdout.write(f"Delivering webhooks, polling every {interval:g} s (SIGTERM or Ctrl-C stops).")
            while not self.stop.is_set():
                try:
                    result = self._deliver_due()
                except Error as error:
                    # The database went away (an OperationalError, then InterfaceError on the dead connection):
                    # drop the connection, try again after the interval; the row's transaction rolled back.
                    self.stderr.write(f"database error, retrying: {type(error).__name__}")
                    connection.close()
                    result = DeliveryPass()
                if result.attempted:
                    self.stdout.write(self._line(result))
                self.stop.wait(interval)
        self.stdout.write("Stopped.")

    def _deliver_due(self) -> DeliveryPass:
        """Passes of up to BATCH_SIZE rows until one comes back short: everything due now, once."""
        total = DeliveryPass()
        while not self.stop.is_set():
            result = webhook_deliveries_deliver_due(limit=BATCH_SIZE, should_stop=self.stop.is_set)
            total += result
            if result.attempted < BATCH_SIZE:
                break
        return total

    @staticmethod
    def _line(result: DeliveryPass) -> str:
        return f"delivered {result.delivered}, retrying {result.retrying}"
