"""audit_record: the one writer of the log: inside a transaction, cheap, chained, neutralised."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection, transaction

from audit import chain
from audit.models import AuditEvent
from audit.services import audit_clock, audit_record, neutralise
from core import request_context
from tests.helpers.audit import sealed
from tests.helpers.connections import separate_session


def test_refuses_to_write_outside_a_transaction(transactional_db):
    """An audit row committed on its own could record a change that then rolls back."""
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record(action="permission_mode.updated", actor_type="system")
    assert not AuditEvent.objects.exists()


def test_rolls_back_with_the_change(db):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        audit_record(action="permission_mode.updated", actor_type="system")
        1 / 0  # noqa: B018 - the change that fails after its audit row
    assert not AuditEvent.objects.exists()


def test_an_event_is_written_unsealed_and_the_first_sealed_chains_to_genesis(db):
    with transaction.atomic():
        event = audit_record(action="permission_mode.updated", actor_type="system")
    assert (event.prev_hash, event.hash) == ("", "")
    event = sealed(event)
    assert event.prev_hash == chain.GENESIS_HASH
    assert event.hash == chain.row_hash(AuditEvent.objects.get(pk=event.pk).chain_fields())


def test_append_is_one_statement_and_takes_no_chain_lock(db, django_assert_num_queries):
    """The hot path (every denied agent request): one INSERT. No advisory lock: the chain's lock belongs to the
    sealer, so audited writes do not queue behind each other."""
    with transaction.atomic():
        audit_record(action="permission_mode.updated", actor_type="system")
        with django_assert_num_queries(1) as captured:
            audit_record(action="permission_mode.updated", actor_type="system")
    (statement,) = [query["sql"] for query in captured.captured_queries]
    assert statement.startswith("INSERT INTO audit_auditevent ")
    assert "clock_timestamp()" in statement


def test_the_row_is_stamped_after_its_insert_holds_the_table_lock(transactional_db):
    """The rule the sealer and the export pin rest on: a writer that does not hold its lock on the table yet will
    stamp a later time than anyone reads now. Another session holds a lock that the INSERT's ROW EXCLUSIVE waits
    for; the time read while the writer waits must come before the row's time, which a stamp taken before the lock
    (in Python, or by a statement ahead of the INSERT) would not."""
    written: dict[str, Any] = {}

    def writer() -> None:
        try:
            with transaction.atomic():
                written["event"] = audit_record(action="permission_mode.updated", actor_type="system")
        finally:
            connection.close()

    with separate_session(autocommit=False) as blocker:
        blocker.execute("LOCK TABLE audit_auditevent IN SHARE MODE")
        thread = threading.Thread(target=writer)
        thread.start()
        _wait_for_lock_wait(blocker)
        while_waiting = audit_clock()
        blocker.commit()
    thread.join(timeout=30)
    assert while_waiting < written["event"].time
    assert AuditEvent.objects.get(pk=written["event"].pk).time == written["event"].time


def _wait_for_lock_wait(observer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = observer.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = 'audit_auditevent'::regclass AND NOT granted"
        ).fetchone()[0]
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError("the writer never waited for the table lock")


def test_request_context_fills_where(db):
    token = request_context.set_current(
        request_context.RequestContext(ip="2001:db8::1", user_agent="curl/8.5\r\nX-Evil: 1", request_id="abc-123")
    )
    try:
        with transaction.atomic():
            event = audit_record(action="permission_mode.updated", actor_type="system")
    finally:
        request_context.reset(token)
    stored = sealed(AuditEvent.objects.get(pk=event.pk))
    assert (stored.ip, stored.user_agent, stored.request_id) == ("2001:db8::1", "curl/8.5  X-Evil: 1", "abc-123")
    assert stored.hash == chain.row_hash(stored.chain_fields())


def test_details_are_stored_so_they_re_hash(db):
    """Values jsonb could print differently (floats, dates) are kept as text so the stored row re-hashes."""
    agent_id = uuid.uuid4()
    details = {
        "float": 1e20,
        "when": datetime(2026, 1, 1, tzinfo=UTC),
        "id": agent_id,
        "nested": {"list": (1, "two\nlines"), "flag": True, "none": None},
        "bad\nkey": "x",
    }
    with transaction.atomic():
        event = audit_record(
            action="permission_mode.updated", actor_type="agent", actor=agent_id, agent_id=agent_id, details=details
        )
    stored = sealed(AuditEvent.objects.get(pk=event.pk))
    assert stored.details == {
        "float": "1e+20",
        "when": "2026-01-01 00:00:00+00:00",
        "id": str(agent_id),
        "nested": {"list": [1, "two lines"], "flag": True, "none": None},
        "bad key": "x",
    }
    assert stored.hash == chain.row_hash(stored.chain_fields())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("a\nb\rc\td", "a b c d"),
        ("esc\x1b[2Jx", "esc [2Jx"),
        ("del\x7fc1\x85", "del c1 "),
        ("line\u2028para\u2029", "line para "),
    ],
)
def test_neutralise(text, expected):
    assert neutralise(text) == expected
