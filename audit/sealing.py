"""Sealing: linking committed audit rows into the hash chain, in id order, moments after they commit.

Writers append rows unsealed and take no lock (audit.services.audit_record), so audited writes run side by side
and their commits share WAL flushes. The sealer then gives each row its `prev_hash` and `hash`, under the chain's
lock, in batches whose commit need not wait for the disk: a seal is recomputed identically from the rows if a
crash loses it.

Ids come from a sequence, so a row with a lower id can commit after a row with a higher one. The sealer must
never pass an id whose row may still commit. The rule that guarantees it:

- a writer takes its lock on the table (ROW EXCLUSIVE) before it draws its row id, and holds it until it ends;
- the sealer reads, in one statement, the highest unsealed id M its snapshot shows, and then the transactions
  holding (or waiting for) a writer's lock on the table, ROW EXCLUSIVE; readers and index builds hold weaker
  locks and are not waited for;
- an id below M that is still uncommitted was drawn before M was, by a writer that has held its lock since, so it
  is among those transactions;
- once they have all ended, every id up to M is final: committed (and visible to the next snapshot) or never.

So the sealer waits for those transactions (it polls for them; it takes no lock a writer needs), then links every
unsealed row up to M. Rows above M wait for the next round.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction

from audit import chain
from audit.models import AuditEvent
from audit.services import audit_clock, chain_lock
from core.exceptions import LimitReached

BATCH_SIZE = 2000
# How long the export pin and the verifier wait for in-flight writers before giving up (audit_chain_settle).
SETTLE_SECONDS = 30.0

# The snapshot is taken as the statement starts; pg_locks is read afterwards, live (it is not a snapshot). Writers
# only: an INSERT holds (or waits for) ROW EXCLUSIVE. Readers (an export streaming for minutes, a session idle in a
# transaction) and index builds hold weaker locks, and waiting for them would stall sealing without reason.
_OBSERVE_SQL = """
SELECT (SELECT max(id) FROM audit_auditevent),
       (SELECT coalesce(array_agg(DISTINCT virtualtransaction), '{}') FROM pg_locks
         WHERE locktype = 'relation' AND relation = 'audit_auditevent'::regclass AND mode = 'RowExclusiveLock'
           AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND pid IS DISTINCT FROM pg_backend_pid())
"""
# Every transaction holds the lock on its own virtual id until it ends.
_IN_PROGRESS_SQL = "SELECT count(*) FROM pg_locks WHERE locktype = 'virtualxid' AND virtualxid = ANY(%s)"
# Sealed rows are a prefix of the log in id order, so the head is found walking back from the newest row over the
# unsealed tail (a few rows, as long as a sealer runs), and the unsealed rows are the ids after it: primary-key walks
# only. The seal then changes no indexed column.
_HEAD_SQL = "SELECT id, hash FROM audit_auditevent WHERE hash <> '' ORDER BY id DESC LIMIT 1"
_PENDING_SQL = "SELECT count(*) FROM audit_auditevent WHERE id > %s"
# `hash = ''` again in the WHERE: a row is sealed once, whoever else looks at it.
_SEAL_SQL = """
UPDATE audit_auditevent AS event SET prev_hash = seal.prev_hash, hash = seal.hash
  FROM unnest(%s::bigint[], %s::varchar[], %s::varchar[]) AS seal(id, prev_hash, hash)
 WHERE event.id = seal.id AND event.hash = ''
"""

Progress = Callable[[int], None]


@dataclass(frozen=True)
class SealResult:
    """What one sealing round did: rows sealed, the sealed head after it, and what is left for later."""

    sealed: int
    head_id: int | None
    head_hash: str
    pending: int
    # Transactions that were still in progress when the round stopped waiting for them; 0 when it did not wait.
    waiting_on: int = 0

    @property
    def go_again_at_once(self) -> bool:
        """Whether a sealer loop should start the next round now rather than after its interval: only after a round
        large enough to have let a backlog pile up. Rows written during a short round wait for the next one; going
        again at once under a steady stream of writes would pay a round's fixed cost for a handful of rows each."""
        return self.sealed >= BATCH_SIZE and self.pending > 0 and not self.waiting_on


def inflight_writers_wait(writers: list[str], *, timeout: float) -> int:
    """Wait until the transactions `writers` (virtual ids) have ended; the number still running at timeout."""
    if not writers:
        return 0
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_IN_PROGRESS_SQL, [writers])
            running = cursor.fetchone()[0]
        if running == 0 or time.monotonic() >= deadline:
            return running
        time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(pause * 2, 0.05)


def audit_chain_head() -> tuple[int | None, str]:
    """The sealed head: the id and hash of the newest sealed row, or (None, genesis) for an empty chain."""
    with connection.cursor() as cursor:
        cursor.execute(_HEAD_SQL)
        row = cursor.fetchone()
    return (row[0], row[1]) if row else (None, chain.GENESIS_HASH)


def audit_unsealed_count(*, head_id: int | None = None) -> int:
    """Rows after the sealed head (`head_id` when the caller has just read it)."""
    if head_id is None:
        head_id, _ = audit_chain_head()
    with connection.cursor() as cursor:
        cursor.execute(_PENDING_SQL, [head_id or 0])
        return cursor.fetchone()[0]


def audit_seal(
    *, wait_seconds: float = 5.0, batch_size: int = BATCH_SIZE, progress: Progress | None = None
) -> SealResult:
    """One sealing round: link every unsealed row that is final, in id order. Safe to run from any number of processes.

    Waits up to `wait_seconds` for the transactions in flight at the start of the round (see the module docstring);
    if some are still running then, seals nothing and says how many it waited on.
    """
    with connection.cursor() as cursor:
        cursor.execute(_OBSERVE_SQL)
        bound, writers = cursor.fetchone()
    head_id, head_hash = audit_chain_head()
    if bound is None or (head_id is not None and bound <= head_id):
        return SealResult(sealed=0, head_id=head_id, head_hash=head_hash, pending=0)
    running = inflight_writers_wait(writers, timeout=wait_seconds)
    if running:
        return SealResult(
            sealed=0,
            head_id=head_id,
            head_hash=head_hash,
            pending=audit_unsealed_count(head_id=head_id),
            waiting_on=running,
        )
    outer_transaction = connection.in_atomic_block
    with transaction.atomic():
        if not outer_transaction:
            # Derived data: a seal lost in a crash is recomputed, identically, by the next round.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit = off")
        chain_lock()
        sealed, head_id, head_hash = audit_seal_locked(bound=bound, batch_size=batch_size, progress=progress)
    return SealResult(
        sealed=sealed, head_id=head_id, head_hash=head_hash, pending=audit_unsealed_count(head_id=head_id)
    )


def audit_seal_locked(
    *, bound: int | None = None, batch_size: int = BATCH_SIZE, progress: Progress | None = None
) -> tuple[int, int | None, str]:
    """Seal the unsealed rows up to `bound` (all of them when None), in batches; the caller holds the chain lock.

    With `bound` None the caller vouches that no writer is in flight (archive_audit locks writers out first).
    Returns the number sealed and the sealed head after them.
    """
    head_id, head_hash = audit_chain_head()
    sealed = 0
    while True:
        rows = AuditEvent.objects.filter(id__gt=head_id or 0).order_by("id")
        if bound is not None:
            rows = rows.filter(id__lte=bound)
        ids: list[int] = []
        prev_hashes: list[str] = []
        hashes: list[str] = []
        for row in rows.values(*chain.HASHED_FIELDS, "hash")[:batch_size]:
            if row.pop("hash"):
                # The rule of this module makes this impossible; if it ever happens, stop rather than chain past it.
                raise chain.ChainBroken(row["id"], f"the row is sealed, but row {head_id} before it is not")
            row["prev_hash"] = head_hash
            head_hash = chain.row_hash(row)
            head_id = row["id"]
            ids.append(head_id)
            prev_hashes.append(row["prev_hash"])
            hashes.append(head_hash)
        if ids:
            with connection.cursor() as cursor:
                cursor.execute(_SEAL_SQL, [ids, prev_hashes, hashes])
                if cursor.rowcount != len(ids):
                    raise chain.ChainBroken(ids[0], "another sealer sealed these rows while this one held the lock")
        sealed += len(ids)
        if progress and ids:
            progress(sealed)
        if len(ids) < batch_size:
            return sealed, head_id, head_hash


def audit_chain_settle(*, since: datetime, timeout: float = SETTLE_SECONDS) -> None:
    """Make every row stamped before `since` committed and sealed, or raise LimitReached after `timeout`.

    The first round waits out the writers in flight (a writer stamps its row after taking its lock on the table, so
    any row stamped before `since` belongs to one of them or is already committed); a second round then seals what
    they committed. Used to pin exports and before verifying.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = audit_seal(wait_seconds=max(deadline - time.monotonic(), 0.0))
        if not result.pending or not AuditEvent.objects.filter(id__gt=result.head_id or 0, time__lt=since).exists():
            return
        if time.monotonic() >= deadline:
            raise LimitReached(
                "The audit log is still sealing rows written before this request; try again shortly.",
                retry_after=5,
            )


def audit_chain_now(*, timeout: float = SETTLE_SECONDS) -> datetime:
    """A time before which the log is final: every row stamped earlier is committed and sealed when this returns.

    Read from the clock that stamps the rows, before audit_chain_settle looks for writers in flight: a writer it
    does not find takes its lock on the table, and then stamps its row, later than this time.
    """
    now = audit_clock()
    audit_chain_settle(since=now, timeout=timeout)
    return now
