"""Concurrent writers keep one chain: the advisory lock stops two transactions chaining to one predecessor."""

from __future__ import annotations

import threading
from io import StringIO

from django.core.management import call_command
from django.db import connection, transaction

from audit.models import AuditEvent
from audit.services import audit_record

THREADS = 4
EVENTS_PER_THREAD = 25


def _writer(number: int, barrier: threading.Barrier, errors: list) -> None:
    try:
        barrier.wait()
        for sequence in range(EVENTS_PER_THREAD):
            with transaction.atomic():
                audit_record(action="user.updated", actor_type="system", details={"writer": number, "n": sequence})
    except Exception as error:  # surfaced by the test below, not swallowed
        errors.append(error)
    finally:
        connection.close()  # each thread had its own connection


def test_concurrent_writers_keep_one_chain(transactional_db):
    """4 threads x 25 transactions, each on its own connection: one unbroken line, no fork."""
    barrier = threading.Barrier(THREADS)
    errors: list = []
    threads = [threading.Thread(target=_writer, args=(number, barrier, errors)) for number in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []

    prev_hashes = list(AuditEvent.objects.values_list("prev_hash", flat=True))
    assert len(prev_hashes) == THREADS * EVENTS_PER_THREAD
    assert len(set(prev_hashes)) == len(prev_hashes), "two events chained to the same predecessor"
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert f"audit chain OK: {THREADS * EVENTS_PER_THREAD} events" in out.getvalue()
