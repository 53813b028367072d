"""Stream the audit log to the sinks of CODERAUTH_AUDIT_SINKS, in id order, until stopped (audit/streaming/)."""

from __future__ import annotations

import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import Error, connection

from audit.streaming.delivery import (
    BATCH_SIZE,
    MAX_BATCH_SIZE,
    SinkResult,
    StreamPass,
    StreamTransports,
    audit_stream_deliver,
)
from audit.streaming.selectors import audit_stream_status
from audit.streaming.sinks import SinkConfigError, sinks_configured
from core.termination import stop_on_termination


class Command(BaseCommand):
    help = (
        "Send every sealed audit event to the sinks of CODERAUTH_AUDIT_SINKS (syslog over UDP, TCP or TLS, or "
        "HTTPS), in id order, each sink from its own cursor; forever, polling every --interval seconds, or once with "
        "--once (exit status 1 when a sink failed). Any number may run at once, on any node: a sink's batch is sent "
        "by one worker at a time. Failures are retried with backoff. SIGTERM stops it cleanly."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--once", action="store_true", help="deliver what is pending now (retrying failed sinks at once), then exit"
        )
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds between passes when nothing is pending (default 1)"
        )
        parser.add_argument(
            "--batch-size", type=int, default=BATCH_SIZE, help=f"events per batch (default {BATCH_SIZE})"
        )

    def handle(self, *args, once: bool, interval: float, batch_size: int, **options):
        if not 0.05 <= interval <= 3600:
            raise CommandError("--interval must be between 0.05 and 3600 seconds.")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH_SIZE}.")
        try:
            sinks = sinks_configured()
        except SinkConfigError as error:  # the system check says the same when the command runs from the shell
            raise CommandError(str(error))
        if not sinks:
            raise CommandError("CODERAUTH_AUDIT_SINKS is empty: there is nowhere to stream the audit log to.")
        self.stop = threading.Event()
        transports = StreamTransports(sinks)
        try:
            if once:
                self._once(transports, sinks, batch_size)
                return
            with stop_on_termination(self.stop):
                self._forever(transports, sinks, batch_size, interval, options["verbosity"])
        finally:
            transports.close()
        self.stdout.write("Stopped.")

    def _once(self, transports: StreamTransports, sinks, batch_size: int) -> None:
        result = audit_stream_deliver(sinks=sinks, transports=transports, batch_size=batch_size, retry_now=True)
        lag = {status.name: status for status in audit_stream_status()}
        for sink_result in result.sinks:
            status = lag[sink_result.sink]
            self.stdout.write(f"{self._line(sink_result)}; cursor {status.last_id}, lag {status.lag}")
        if result.failed:
            names = ", ".join(failed.sink for failed in result.failed)
            raise CommandError(f"{len(result.failed)} sink(s) failed: {names}. They are retried on the next run.")

    def _forever(self, transports: StreamTransports, sinks, batch_size: int, interval: float, verbosity: int) -> None:
        self.stdout.write(
            f"Streaming the audit log to {len(sinks)} sink(s): {', '.join(sink.name for sink in sinks)}; polling every "
            f"{interval:g} s (SIGTERM or Ctrl-C stops)."
        )
        errors: dict[str, str] = {}
        while not self.stop.is_set():
            try:
                result = audit_stream_deliver(
                    sinks=sinks, transports=transports, batch_size=batch_size, should_stop=self.stop.is_set
                )
            except Error as error:
                # The database went away: drop the connection and try again; the batch's transaction rolled back.
                self.stderr.write(f"database error, retrying: {type(error).__name__}")
                connection.close()
                result = StreamPass()
            # Quiet beside a busy server: a line when a sink fails or its error changes, and when it recovers;
            # at -v 2 a line for every delivery too.
            for sink_result in result.sinks:
                name = sink_result.sink
                if sink_result.error:
                    if errors.get(name) != sink_result.error:
                        errors[name] = sink_result.error
                        self.stdout.write(self._line(sink_result))
                elif sink_result.delivered and (errors.pop(name, None) is not None or verbosity >= 2):
                    self.stdout.write(self._line(sink_result))
            if not result.delivered:
                self.stop.wait(interval)

    @staticmethod
    def _line(result: SinkResult) -> str:
        if result.error:
            when = f", next try {result.retry_at:%H:%M:%S}" if result.retry_at else ""
            return f"{result.sink}: delivered {result.delivered}, failed: {result.error}{when}"
        if result.busy:
            return f"{result.sink}: delivered {result.delivered}, held by another worker"
        return f"{result.sink}: delivered {result.delivered}"
