"""The sealer links committed rows in id order, never passes a row that may still commit, and seals each row once."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from audit import chain, verification
from audit.models import AuditEvent
from audit.sealing import BATCH_SIZE, SealResult, audit_chain_head, audit_seal
from audit.services import audit_record
from tests.helpers.audit import record_events
from tests.helpers.connections import separate_session


def _write(number: int) -> AuditEvent:
    with transaction.atomic():
        return audit_record(action="user.updated", actor_type="system", details={"n": number})


def test_rows_are_sealed_in_id_order_from_genesis(db):
    events = [_write(number) for number in range(3)]
    result = audit_seal(wait_seconds=0)
    assert (result.sealed, result.pending, result.waiting_on) == (3, 0, 0)
    rows = list(AuditEvent.objects.filter(pk__in=[event.pk for event in events]).order_by("id").values(*chain.FIELDS))
    walk = chain.ChainWalk(start_hash=chain.GENESIS_HASH)
    for row in rows:
        walk.check(row)
    assert (result.head_id, result.head_hash) == (rows[-1]["id"], rows[-1]["hash"]) == audit_chain_head()


def test_a_second_round_seals_nothing_and_keeps_the_head(db):
    record_events(2)
    head = audit_chain_head()
    result = audit_seal(wait_seconds=0)
    assert result.sealed == 0
    assert audit_chain_head() == head


def test_the_sealer_never_passes_a_row_whose_writer_is_still_in_flight(transactional_db):
    """Regression for the sealer's rule: writer A draws the lower id and stays open while B commits a higher one.
    Sealing B then would leave A's row behind the chain's head forever. The sealer must wait for A instead."""
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []
    ids: dict[str, int] = {}

    def writer_a() -> None:
        try:
            with transaction.atomic():
                ids["a"] = audit_record(action="user.updated", actor_type="system", details={"n": "a"}).pk
                holding.set()
                release.wait(timeout=30)
        except BaseException as error:  # surfaced below
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=writer_a)
    thread.start()
    try:
        assert holding.wait(timeout=30)
        ids["b"] = _write(0).pk
        assert ids["a"] < ids["b"]
        blocked = audit_seal(wait_seconds=0.2)
        assert blocked.sealed == 0
        assert blocked.waiting_on == 1
        assert AuditEvent.objects.get(pk=ids["b"]).hash == "", "B was sealed while A could still commit before it"
    finally:
        release.set()
        thread.join(timeout=30)
    assert errors == []

    result = audit_seal(wait_seconds=5)
    assert result.sealed == 2
    a, b = AuditEvent.objects.get(pk=ids["a"]), AuditEvent.objects.get(pk=ids["b"])
    assert a.prev_hash == chain.GENESIS_HASH
    assert b.prev_hash == a.hash
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert "audit chain OK: 2 events" in out.getvalue()


def test_a_reader_holding_the_table_does_not_stop_the_sealer(transactional_db):
    """An export streams inside one transaction for minutes, and a session may sit idle in one: both hold the
    table's ACCESS SHARE lock. Only writers (ROW EXCLUSIVE) can still commit a row below the bound, so only they
    are waited for; a round beside an open reader seals at once."""
    with transaction.atomic():
        audit_record(action="permission_mode.updated", actor_type="system")
    with separate_session(autocommit=False) as reader:
        reader.execute("SELECT count(*) FROM audit_auditevent").fetchone()
        result = audit_seal(wait_seconds=1)
        reader.rollback()
    assert (result.sealed, result.waiting_on) == (1, 0)


def test_verify_names_the_rows_left_unsealed_behind_a_writer_in_flight(transactional_db, monkeypatch):
    holding, release = threading.Event(), threading.Event()

    def writer_a() -> None:
        try:
            with transaction.atomic():
                audit_record(action="user.updated", actor_type="system")
                holding.set()
                release.wait(timeout=30)
        finally:
            connection.close()

    _write(0)
    audit_seal(wait_seconds=0)
    thread = threading.Thread(target=writer_a)
    thread.start()
    try:
        assert holding.wait(timeout=30)
        _write(1)
        # verify's own sealing round gives up on the open writer after its wait; shorten it for the test.
        monkeypatch.setattr(verification, "audit_seal", lambda: audit_seal(wait_seconds=0.1))
        out = StringIO()
        call_command("verify_audit", stdout=out)
    finally:
        release.set()
        thread.join(timeout=30)
    assert "audit chain OK: 1 event " in out.getvalue()
    assert "1 event after the head not sealed yet" in out.getvalue()


@pytest.mark.parametrize(
    "sql",
    [
        pytest.param("UPDATE audit_auditevent SET action = 'user.deleted'", id="content-of-an-unsealed-row"),
        pytest.param(
            "UPDATE audit_auditevent SET prev_hash = repeat('0', 64), hash = repeat('1', 64), actor = 'x'",
            id="a-seal-that-also-changes-content",
        ),
        pytest.param("UPDATE audit_auditevent SET hash = repeat('1', 64)", id="a-hash-without-its-link"),
    ],
)
def test_the_only_update_a_row_accepts_is_its_seal(db, sql):
    _write(0)
    with (
        pytest.raises(DatabaseError, match="may only seal an unsealed row"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)


def test_a_sealed_row_cannot_be_sealed_again(db):
    (event,) = record_events(1)
    with (
        pytest.raises(DatabaseError, match="may only seal an unsealed row"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE audit_auditevent SET prev_hash = repeat('0', 64), hash = repeat('2', 64) WHERE id = %s", [event.pk]
        )


def test_seal_audit_once_reports_what_it_sealed(db):
    _write(0)
    _write(1)
    out = StringIO()
    call_command("seal_audit", "--once", stdout=out)
    assert out.getvalue().startswith("sealed 2, head ")
    assert AuditEvent.objects.filter(hash="").count() == 0


@pytest.mark.parametrize(
    ("sealed", "pending", "waiting_on", "at_once"),
    [
        (BATCH_SIZE, 5, 0, True),  # a backlog round: more may have piled up meanwhile
        (BATCH_SIZE, 0, 0, False),  # caught up
        (10, 5, 0, False),  # a steady stream: the next round waits its interval and takes them all
        (0, 5, 2, False),  # writers still in flight: waiting at once would only wait again
    ],
)
def test_a_sealer_loop_goes_again_at_once_only_after_a_backlog_round(sealed, pending, waiting_on, at_once):
    result = SealResult(sealed=sealed, head_id=1, head_hash="", pending=pending, waiting_on=waiting_on)
    assert result.go_again_at_once is at_once
