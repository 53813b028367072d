"""Single sign-on identities and the SIEM stream's cursors are visible in the admin, and only visible: both are
moved by their own code paths (sign-in, stream_audit), never by hand."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agents.models import ExternalIdentity
from audit.models import AuditStreamCursor
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db


@pytest.fixture
def identity(member) -> ExternalIdentity:
    return ExternalIdentity.objects.create(user=member, issuer="https://idp.example.com", subject="sub-4711")


@pytest.fixture
def cursor(db) -> AuditStreamCursor:
    return AuditStreamCursor.objects.create(sink="siem-eu", last_id=42, delivered=42)


def test_external_identities_are_listed_with_their_user(superuser_web, identity, member):
    listing = superuser_web.get(reverse("admin:agents_externalidentity_changelist"))
    assert_status(listing, 200)
    assert "sub-4711" in listing.content.decode()
    assert member.username in listing.content.decode()


def test_stream_cursors_are_listed(superuser_web, cursor):
    listing = superuser_web.get(reverse("admin:audit_auditstreamcursor_changelist"))
    assert_status(listing, 200)
    assert "siem-eu" in listing.content.decode()


@pytest.mark.parametrize("name", ["agents_externalidentity", "audit_auditstreamcursor"])
def test_neither_can_be_added_changed_or_deleted(superuser_web, identity, cursor, name):
    pk = identity.pk if name.startswith("agents") else cursor.pk
    assert_status(superuser_web.get(reverse(f"admin:{name}_add")), 403)
    assert_status(superuser_web.get(reverse(f"admin:{name}_delete", args=[pk])), 403)
    before = (ExternalIdentity.objects.values().get(), AuditStreamCursor.objects.values().get())
    superuser_web.post(reverse(f"admin:{name}_change", args=[pk]), {"subject": "forged", "last_id": 0})
    assert (ExternalIdentity.objects.values().get(), AuditStreamCursor.objects.values().get()) == before
