"""The hash chain and `manage.py verify_audit`: a whole chain passes, any rewrite names its first bad row."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction

from audit import chain
from audit.models import AuditEvent
from audit.services import audit_record
from tests.helpers.audit import record_events, tamper


def verify() -> str:
    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


def verify_fails() -> str:
    with pytest.raises(CommandError) as failure:
        call_command("verify_audit", stdout=StringIO())
    return str(failure.value)


def test_empty_log_verifies(db):
    assert "audit chain OK: 0 events" in verify()


def test_whole_chain_verifies_and_prints_count(chain_of_five):
    output = verify()
    assert "audit chain OK: 5 events from genesis" in output
    assert chain_of_five[-1].hash in output


def test_rows_link_to_their_predecessor_from_genesis(chain_of_five):
    rows = list(AuditEvent.objects.order_by("id"))
    assert rows[0].prev_hash == chain.GENESIS_HASH
    for previous, row in zip(rows, rows[1:], strict=False):
        assert row.prev_hash == previous.hash
    for row in rows:
        assert row.hash == chain.row_hash(row.chain_fields())


def test_hash_covers_every_field(chain_of_five):
    """Changing any one field, the id included, changes the hash."""
    fields = chain_of_five[0].chain_fields()
    original = chain.row_hash(fields)
    changes = {
        "id": fields["id"] + 1,
        "time": "2001-01-01T00:00:00.000001Z",
        "action": "other",
        "actor_type": "user",
        "actor": "someone",
        "workspace_id": "00000000-0000-0000-0000-000000000001",
        "agent_id": "00000000-0000-0000-0000-000000000002",
        "details": {"n": 99},
        "ip": "10.0.0.1",
        "user_agent": "x",
        "request_id": "r",
        "prev_hash": "f" * 64,
    }
    for name, value in changes.items():
        assert chain.row_hash({**fields, name: value}) != original, name


def test_time_round_trips_exactly(chain_of_five):
    """The hash is over the microsecond time PostgreSQL stores, so a re-read row re-hashes the same."""
    stored = AuditEvent.objects.get(pk=chain_of_five[0].pk)
    assert stored.time == chain_of_five[0].time
    assert chain.row_hash(stored.chain_fields()) == stored.hash


def test_altered_row_is_named(chain_of_five):
    """An UPDATE behind the trigger's back (trigger disabled) breaks that row's own hash."""
    target = chain_of_five[2]
    tamper("UPDATE audit_auditevent SET details = '{\"n\": 42}' WHERE id = %s", [target.id])
    message = verify_fails()
    assert f"row {target.id}:" in message
    assert "altered" in message


def test_altered_row_with_recomputed_hash_breaks_the_next_link(chain_of_five):
    """An attacker who also rewrites the altered row's hash is caught at the following row."""
    target, following = chain_of_five[2], chain_of_five[3]
    forged = chain.row_hash({**target.chain_fields(), "actor": "mallory"})
    tamper("UPDATE audit_auditevent SET actor = 'mallory', hash = %s WHERE id = %s", [forged, target.id])
    message = verify_fails()
    assert f"row {following.id}:" in message
    assert "prev_hash" in message


def test_deleted_row_is_named(chain_of_five):
    """A row deleted with the trigger disabled leaves its successor pointing at a missing hash."""
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [chain_of_five[2].id])
    message = verify_fails()
    assert f"row {chain_of_five[3].id}:" in message
    assert "removed" in message


def test_deleted_first_row_is_named(chain_of_five):
    """Without an archive, the chain must start at genesis: cutting its start is caught too."""
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [chain_of_five[0].id])
    assert f"row {chain_of_five[1].id}:" in verify_fails()


def test_reordered_rows_are_named(chain_of_five):
    """Swapping two rows' positions (ids) breaks the hash, which covers the id."""
    first, second = chain_of_five[1], chain_of_five[2]
    for old, new in ((first.id, -1), (second.id, first.id), (-1, second.id)):
        tamper("UPDATE audit_auditevent SET id = %s WHERE id = %s", [new, old])
    message = verify_fails()
    assert f"row {first.id}:" in message


def test_reordered_rows_with_recomputed_hashes_are_named(chain_of_five):
    """Even with both hashes recomputed for their new ids, the links no longer line up."""
    first, second = chain_of_five[1], chain_of_five[2]
    new_first = {**second.chain_fields(), "id": first.id}
    new_second = {**first.chain_fields(), "id": second.id}
    tamper("DELETE FROM audit_auditevent WHERE id IN (%s, %s)", [first.id, second.id])
    for fields in (new_first, new_second):
        fields["hash"] = chain.row_hash(fields)
        tamper(
            "INSERT INTO audit_auditevent (id, time, action, actor_type, actor, details, user_agent, request_id,"
            " prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s::jsonb, '', '', %s, %s)",
            [
                fields["id"],
                fields["time"],
                fields["action"],
                fields["actor_type"],
                fields["actor"],
                chain.canonical_json(fields["details"]),
                fields["prev_hash"],
                fields["hash"],
            ],
        )
    message = verify_fails()
    assert f"row {first.id}:" in message
    assert "prev_hash" in message


def test_row_inserted_out_of_chain_is_named(chain_of_five):
    """A forged row with a self-consistent hash but chained to an old row is named."""
    forged = AuditEvent(
        id=chain_of_five[-1].id + 10,
        time=chain_of_five[-1].time,
        action="user.login",
        actor_type="user",
        actor="mallory",
        details={},
        prev_hash=chain_of_five[1].hash,
    )
    forged.hash = chain.row_hash(forged.chain_fields())
    forged.save(force_insert=True)
    message = verify_fails()
    assert f"row {forged.id}:" in message
    assert "prev_hash" in message


def test_verify_streams_rows_in_chunks(chain_of_five, monkeypatch):
    """Constant memory: verify_audit reads through QuerySet.iterator (a server-side cursor), never a list."""
    from django.db.models.query import QuerySet

    chunk_sizes = []
    original = QuerySet.iterator

    def spy(self, chunk_size=None):
        chunk_sizes.append(chunk_size)
        return original(self, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    monkeypatch.setattr(QuerySet, "__len__", lambda self: pytest.fail("verify_audit loaded the whole log"))
    out = StringIO()
    call_command("verify_audit", "--chunk-size", "2", stdout=out)
    assert chunk_sizes == [2]
    assert "5 events" in out.getvalue()


def test_one_transaction_may_append_several_events(db):
    with transaction.atomic():
        for number in range(3):
            audit_record(action="permission_mode.updated", actor_type="system", details={"n": number})
    record_events(2)
    assert "5 events" in verify()
