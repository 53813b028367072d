"""The audit table is append-only at the database level: the app's own connection cannot rewrite it."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from audit.models import AuditEvent
from tests.helpers.audit import record_events


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET actor = 'mallory'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
    ],
    ids=["update", "delete", "truncate"],
)
def test_forbidden_statements_fail(chain_of_five, statement):
    """UPDATE and DELETE (row triggers) and TRUNCATE (statement trigger) are all refused."""
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert AuditEvent.objects.count() == 5
    assert set(AuditEvent.objects.values_list("actor", flat=True)) == {"tests"}


def test_orm_writes_to_existing_rows_fail(chain_of_five):
    """The ORM goes through the same triggers: no code path can edit or delete an event."""
    event = chain_of_five[0]
    event.actor = "mallory"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).actor == "tests"


def test_django_admin_is_read_only(chain_of_five, admin_user, client):
    """Even a superuser sees the log in the Django admin but can add, change or delete nothing."""
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    client.force_login(admin_user)
    event = chain_of_five[0]
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 200
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    client.post(reverse("admin:audit_auditevent_change", args=[event.pk]), {"actor": "mallory"})
    assert AuditEvent.objects.get(pk=event.pk).actor == "tests"
    assert AuditEvent.objects.count() == 5


def test_truncate_guard_is_armed_in_transactional_tests(transactional_db):
    """The test suite lifts the TRUNCATE guard only for its own flush; every test starts with it armed."""
    record_events(1)
    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_auditevent")
    assert AuditEvent.objects.count() == 1
