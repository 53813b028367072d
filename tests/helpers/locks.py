"""Waiting on the database's lock table: a race test's condition, never a sleep-and-hope."""

from __future__ import annotations

import time

from django.db import connections

# pg_locks is read live, but pg_stat_activity (joined to keep to this test's database) is a snapshot taken once
# per transaction: polled inside a transaction, as a race's lock holder does, it would never see a session that
# connected after the first poll. Clearing the snapshot first makes each poll current.
_WAITING_SQL = (
    "SELECT count(DISTINCT lock.pid) FROM pg_locks lock JOIN pg_stat_activity activity ON activity.pid = lock.pid "
    "WHERE NOT lock.granted AND activity.datname = current_database()"
)


def backends_waiting_for_a_lock() -> int:
    """How many sessions of this database wait for a lock now."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(_WAITING_SQL)
        return cursor.fetchone()[0]


def wait_for_lock_waiters(count: int = 1, *, deadline_seconds: float = 20.0, gave_up=None) -> None:
    """Return once `count` sessions wait for a lock; `gave_up()` returning a message ends the wait early (a
    contender that finished without queueing). AssertionError past the deadline."""
    end = time.monotonic() + deadline_seconds
    while time.monotonic() < end:
        if backends_waiting_for_a_lock() >= count:
            return
        message = gave_up() if gave_up else None
        if message:
            raise AssertionError(message)
        time.sleep(0.01)
    raise AssertionError(f"{count} session(s) never queued behind the lock")
