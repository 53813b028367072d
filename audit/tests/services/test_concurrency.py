"""Concurrent writers and concurrent sealers keep one chain: no fork, no row passed over, no row sealed twice."""

from __future__ import annotations

import threading
from io import StringIO

from django.core.management import call_command
from django.db import connection, transaction

from audit import chain
from audit.models import AuditEvent
from audit.sealing import audit_seal
from audit.services import audit_record

THREADS = 4
EVENTS_PER_THREAD = 25
SEALERS = 2


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


def _sealer(barrier: threading.Barrier, writers_done: threading.Event, errors: list) -> None:
    try:
        barrier.wait()
        while not writers_done.is_set():
            audit_seal(wait_seconds=5)
    except Exception as error:
        errors.append(error)
    finally:
        connection.close()


def test_concurrent_writers_and_sealers_keep_one_chain(transactional_db):
    """4 writer threads x 25 transactions and 2 sealer threads in a loop, each on its own connection."""
    barrier = threading.Barrier(THREADS + SEALERS)
    writers_done = threading.Event()
    errors: list = []
    writers = [threading.Thread(target=_writer, args=(number, barrier, errors)) for number in range(THREADS)]
    sealers = [threading.Thread(target=_sealer, args=(barrier, writers_done, errors)) for _ in range(SEALERS)]
    for thread in writers + sealers:
        thread.start()
    for thread in writers:
        thread.join()
    writers_done.set()
    for thread in sealers:
        thread.join()
    assert errors == []

    out = StringIO()
    call_command("verify_audit", stdout=out)  # seals what the sealers left, then walks
    assert f"audit chain OK: {THREADS * EVENTS_PER_THREAD} events" in out.getvalue()
    rows = list(AuditEvent.objects.order_by("id").values(*chain.FIELDS))
    assert len(rows) == THREADS * EVENTS_PER_THREAD
    prev_hashes = [row["prev_hash"] for row in rows]
    assert len(set(prev_hashes)) == len(prev_hashes), "two events chained to the same predecessor"
    assert prev_hashes[0] == chain.GENESIS_HASH
    for previous, row in zip(rows, rows[1:], strict=False):
        assert row["prev_hash"] == previous["hash"], f"row {row['id']} does not follow row {previous['id']}"
