"""How many audit exports may run at once: per user, and in total over every app process.

An export holds a worker (and its database connection) for as long as its reader reads, so a few slow
downloads could occupy every worker and leave none for other requests. A running export therefore holds
two slots: PostgreSQL session-level advisory locks, one among its user's slots and one among the
installation's. They live on the connection that streams the export, so every process sees them; they are
released explicitly when the stream ends (completed, abandoned by the client, or failed), and by PostgreSQL
itself if the worker dies, since its session ends.

Taking, holding and releasing happen inside one transaction, opened with the slot and ended after the release.
Behind a pooler in transaction mode (PgBouncer's `pool_mode = transaction`) a transaction keeps one server
connection, so the lock is released on the connection that took it; taken in autocommit, it could be taken on
one server connection and "released" on another, leaving the first slot held. Session-level rather than
transaction-level locks, because a transaction-level lock taken inside an enclosing transaction (a savepoint)
would outlive the slot until that enclosing transaction ends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection, transaction

from core.exceptions import LimitReached

logger = logging.getLogger(__name__)

# The first key of the two-key advisory locks the slots use, "cdex" in ASCII: apart from core/locks.py's "cdlk"
# and from the one-key lock of the audit chain. The second key hashes the slot's name to 32 bits; two names
# sharing a key would only make a slot look taken.
_NAMESPACE = 0x63646578
# Exports take seconds to minutes: long enough that an immediate retry would only be refused again.
RETRY_AFTER_SECONDS = 10


class ExportSlot:
    """The advisory locks one running export holds, and the transaction they are held in; `release` is idempotent."""

    def __init__(self, names: list[str], *, atomic: transaction.Atomic):
        self.names = names
        self._atomic = atomic

    def release(self) -> None:
        names, self.names = self.names, []
        atomic, self._atomic = self._atomic, None
        if atomic is None:
            return
        try:
            with connection.cursor() as cursor:
                for name in names:
                    cursor.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", [_NAMESPACE, name])
        except DatabaseError as error:
            atomic.__exit__(type(error), error, error.__traceback__)
            # Ending the session is the other way to release a session lock.
            logger.warning("Could not release an export slot; closing the database connection to free it.")
            if not connection.in_atomic_block:
                connection.close()
            return
        atomic.__exit__(None, None, None)


def _try_take(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", [_NAMESPACE, name])
        return cursor.fetchone()[0]


def _take_one(prefix: str, limit: int) -> str | None:
    for index in range(limit):
        name = f"{prefix}:{index}"
        if _try_take(name):
            return name
    return None


def export_slot_acquire(*, user_id: int) -> ExportSlot:
    """Take one of the user's slots and one of the installation's, or raise LimitReached (429) holding neither.

    Opens the transaction the slot is held in (module docstring): the caller must release the slot, which ends it.
    """
    atomic = transaction.atomic()
    atomic.__enter__()
    taken: list[str] = []
    try:
        per_user = settings.CODERAUTH_EXPORTS_PER_USER
        user_slot = _take_one(f"user:{user_id}", per_user)
        if user_slot is None:
            raise LimitReached(
                f"You already have {per_user} audit export(s) running, the most one user may run at once; "
                "retry when it has finished.",
                retry_after=RETRY_AFTER_SECONDS,
                extra={"code": "exports_per_user", "limit": per_user},
            )
        taken.append(user_slot)
        total = settings.CODERAUTH_EXPORTS_TOTAL
        total_slot = _take_one("total", total)
        if total_slot is None:
            raise LimitReached(
                f"{total} audit exports are already running, the most this installation runs at once; retry shortly.",
                retry_after=RETRY_AFTER_SECONDS,
                extra={"code": "exports_total", "limit": total},
            )
        taken.append(total_slot)
    except BaseException:
        ExportSlot(taken, atomic=atomic).release()
        raise
    return ExportSlot(taken, atomic=atomic)


@contextmanager
def export_slot(*, user_id: int) -> Iterator[ExportSlot]:
    """An export slot held for the `with` block (a manifest computed without a download)."""
    slot = export_slot_acquire(user_id=user_id)
    try:
        yield slot
    finally:
        slot.release()
