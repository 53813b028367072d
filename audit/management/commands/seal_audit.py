"""Seal the audit log: link committed rows into the hash chain in id order, moments after they commit, until stopped."""

from __future__ import annotations

import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import Error, connection

from audit.sealing import BATCH_SIZE, SealResult, audit_seal
from core.termination import stop_on_termination


class Command(BaseCommand):
    help = (
        "Link committed audit rows into the hash chain (audit/sealing.py): forever, polling every --interval "
        "seconds, or once with --once. Any number may run at once, on any node: they take turns under the chain's "
        "lock. verify_audit, audit exports and archive_audit also seal before they read, so a stopped sealer loses "
        "nothing; it only leaves the newest rows unsealed until one of them runs. SIGTERM stops it cleanly."
    )

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="seal what is final now, then exit")
        parser.add_argument(
            "--interval",
            type=float,
            default=0.5,
            help="seconds between rounds, unless one left a backlog (default 0.5)",
        )
        parser.add_argument(
            "--wait", type=float, default=5.0, help="seconds a round waits for writers in flight (default 5)"
        )

    def handle(self, *args, once: bool, interval: float, wait: float, **options):
        if not 0.05 <= interval <= 3600:
            raise CommandError("--interval must be between 0.05 and 3600 seconds.")
        if not 0 <= wait <= 600:
            raise CommandError("--wait must be between 0 and 600 seconds.")
        self.stop = threading.Event()
        if once:
            self.stdout.write(self._line(audit_seal(wait_seconds=wait, progress=self._progress)))
            return
        with stop_on_termination(self.stop):
            self.stdout.write(f"Sealing the audit log every {interval:g} s (SIGTERM or Ctrl-C stops).")
            while not self.stop.is_set():
                try:
                    result = audit_seal(wait_seconds=wait, progress=self._progress)
                except Error as error:
                    # The database went away: drop the connection and try again; the round's transaction rolled back.
                    self.stderr.write(f"database error, retrying: {type(error).__name__}")
                    connection.close()
                    result = None
                # Quiet by default beside a busy server: a line per round at -v 2, else only the rounds worth a look.
                if result is not None and (
                    (options["verbosity"] >= 2 and result.sealed) or result.waiting_on or result.sealed >= BATCH_SIZE
                ):
                    self.stdout.write(self._line(result))
                if result is None or not result.go_again_at_once:
                    self.stop.wait(interval)
        self.stdout.write("Stopped.")

    def _progress(self, sealed: int) -> None:
        if sealed >= 10_000 and sealed % 10_000 < 2000:
            self.stderr.write(f"seal_audit: {sealed} rows sealed so far")

    @staticmethod
    def _line(result: SealResult) -> str:
        line = f"sealed {result.sealed}, head {result.head_id or '-'}, unsealed {result.pending}"
        if result.waiting_on:
            line += f" (waiting on {result.waiting_on} transaction(s) still in flight)"
        return line
