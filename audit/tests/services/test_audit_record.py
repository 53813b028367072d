"""audit_record: the one writer of the log: inside a transaction, cheap, chained, neutralised."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.db import transaction

from audit import chain
from audit.models import AuditEvent
from audit.services import audit_record, neutralise
from core import request_context
from tests.helpers.audit import sealed


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


def test_append_costs_two_queries_and_takes_no_chain_lock(db, django_assert_num_queries):
    """The hot path (every denied agent request): the writer's table lock and the INSERT. No advisory lock: the
    chain's lock belongs to the sealer, so audited writes no longer queue behind each other."""
    with transaction.atomic():
        audit_record(action="permission_mode.updated", actor_type="system")
        with django_assert_num_queries(2) as captured:
            audit_record(action="permission_mode.updated", actor_type="system")
    statements = [query["sql"] for query in captured.captured_queries]
    assert statements[0] == "LOCK TABLE audit_auditevent IN ROW EXCLUSIVE MODE"
    assert statements[1].startswith('INSERT INTO "audit_auditevent"')
    assert not [sql for sql in statements if "advisory" in sql]


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
