"""Verifying the stored chain with trust from outside the database: signed archives, signed heads, pinned heads.

Reads only, after one sealing round (audit/sealing.py) so that rows committed a moment ago are in the chain.
verify_audit reports with it; audit_checkpoint signs only a head it has just verified; archive_audit continues,
and signs, only from a start audit_chain_anchor trusts. Otherwise a forged `audit.archived` row, or a
rewritten log, would come out of them signed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit import actions, chain, checkpoints
from audit.sealing import audit_seal
from audit.selectors import audit_chain_latest_archive, audit_chain_rows
from core.exceptions import ApplicationError


class NothingToSign(ApplicationError):
    """The log holds no row, so there is no head to sign."""


@dataclass(frozen=True)
class Trust:
    """What a verifier believes without the database: public keys, and archive heads pinned by hand."""

    keys: checkpoints.TrustedKeys = field(default_factory=dict)
    legacy_heads: frozenset[str] = frozenset()


@dataclass
class ChainReport:
    """A verified chain: where it starts and what vouches for that, its rows, its head, the heads it still holds."""

    anchor: checkpoints.Anchor
    count: int
    head_hash: str
    head_id: int | None
    heads: list[str]
    # Committed rows after the head that no sealer has linked yet (a writer was still in flight before them).
    pending: int = 0


def audit_chain_anchor(*, trust: Trust) -> checkpoints.Anchor:
    """Where the stored chain starts: genesis, or the head of the latest archive if a trusted key signed it."""
    row = audit_chain_latest_archive()
    if row is None:
        return checkpoints.GENESIS
    return checkpoints.archive_row_anchor(row, trusted=trust.keys, legacy_heads=trust.legacy_heads)


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """The latest archive and every row read from one snapshot, so an archive committing meanwhile moves neither.

    Repeatable read takes no lock: writers go on appending, the walk just does not see them.
    """
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def audit_chain_verify(
    *, trust: Trust, heads: Iterable[checkpoints.HeadCheck] = (), chunk_size: int = 2000
) -> ChainReport:
    """Walk the stored chain from its trusted start; raise chain.ChainBroken at the first thing wrong.

    Checked: every row's hash and link; the start (genesis, or an archive a trusted key signed); every
    `audit.archived` row on the way, by the same rule, so a forged one fails even where it starts nothing;
    and that each head in `heads` is still in the chain at its id with its hash (nothing cut from the end).
    Constant memory: rows stream through a server-side cursor, `chunk_size` at a time.
    """
    expected = checkpoints.HeadChecks(heads)
    audit_seal()
    pending = 0
    with _one_snapshot():
        anchor = audit_chain_anchor(trust=trust)
        walk = chain.ChainWalk(start_hash=anchor.start_hash)
        first_id = None
        with closing(audit_chain_rows(chunk_size=chunk_size)) as rows:
            for row in rows:
                if not row["hash"]:
                    pending += 1
                    continue
                if pending:
                    raise chain.ChainBroken(
                        int(row["id"]),
                        f"the row is sealed, but {pending} row(s) before it are not: the chain passed over them",
                    )
                if first_id is None:
                    first_id = int(row["id"])
                    if anchor.archived_last_id is not None and first_id <= anchor.archived_last_id:
                        raise chain.ChainBroken(
                            first_id,
                            f"the archive at row {anchor.archive_row_id} removed the rows up to "
                            f"{anchor.archived_last_id}",
                        )
                walk.check(row)
                if row["action"] == actions.AUDIT_ARCHIVED:
                    checkpoints.archive_row_anchor(row, trusted=trust.keys, legacy_heads=trust.legacy_heads)
                expected.see(walk.last_id, walk.head)
    held = expected.settle(start_hash=anchor.start_hash, first_id=first_id, last_id=walk.last_id, where="the log")
    return ChainReport(
        anchor=anchor,
        count=walk.count,
        head_hash=walk.head,
        head_id=walk.last_id,
        heads=held,
        pending=pending,
    )


def audit_checkpoint_sign(
    *, trust: Trust, signing_key: checkpoints.SigningKey, chunk_size: int = 2000
) -> tuple[dict[str, Any], ChainReport]:
    """Verify the whole chain, then sign its head: the checkpoint file an auditor keeps outside the database."""
    report = audit_chain_verify(trust=trust, chunk_size=chunk_size)
    if report.head_id is None:
        raise NothingToSign("The audit log holds no event: there is no head to sign.")
    statement = checkpoints.head_statement(
        head_id=report.head_id,
        head_hash=report.head_hash,
        start_hash=report.anchor.start_hash,
        count=report.count,
        time=timezone.now(),
    )
    return checkpoints.checkpoint_sign(statement, key=signing_key), report
