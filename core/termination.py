"""Clean stops for the long-running workers (seal_audit, stream_audit, deliver_webhooks)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_termination(stop: threading.Event) -> Iterator[threading.Event]:
    """While inside, SIGTERM and SIGINT set `stop` instead of killing the process, so the worker finishes the unit
    of work in flight (a round, a batch, a row) and leaves its loop; the previous handlers come back on exit.

    Python delivers signals to the main thread only, so elsewhere (a test running the command in a thread) this
    installs nothing and `stop` is left to the caller.
    """
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in TERMINATION_SIGNALS}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
