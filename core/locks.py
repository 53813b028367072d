"""A lock by name, shared by every app process: a read-modify-write of the shared cache done under it is atomic."""

from __future__ import annotations

from django.db import connection

# The first key of PostgreSQL's two-key advisory locks, "cdlk" in ASCII. Two-key locks never collide with the
# one-key lock that serialises audit appends (audit/chain.py).
_NAMESPACE = 0x63646C6B


def transaction_lock(name: str) -> None:
    """Wait for, then hold until the current transaction ends, the lock called `name` (call inside atomic()).

    Names are hashed to 32 bits: two names may share a lock, which only makes one wait for the other.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("transaction_lock() is held until the transaction ends: call it inside atomic().")
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_NAMESPACE, name])
