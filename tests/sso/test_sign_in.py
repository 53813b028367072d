"""Single sign-on against a real OpenID Provider: the first sign-in creates the user, roles follow the provider's
groups at every sign-in (demotions included, audited), and users are matched by (issuer, subject), never by email."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from agents.models import ExternalIdentity
from audit.models import AuditEvent
from core.roles import user_role
from tests.helpers.factories import AdminFactory, UserFactory
from tests.sso.harness import ADMIN_GROUP, AUDITOR_GROUP

User = get_user_model()


def _signed_in_user(client):
    return User.objects.get(pk=client.session["_auth_user_id"])


def _role(username: str) -> str:
    return user_role(User.objects.get(username=username))


def test_first_sign_in_creates_the_user_with_the_mapped_role(sso):
    sso.provider.accounts(
        alice={"sub": "sub-alice", "email": "alice@example.com", "preferred_username": "alice", "groups": [ADMIN_GROUP]}
    )
    response = sso.sign_in("alice")

    assert response.status_code == 302 and response["Location"] == "/"
    user = _signed_in_user(sso.client)
    assert (user.username, user.email, user_role(user)) == ("alice", "alice@example.com", "admin")
    assert not user.has_usable_password()
    assert not user.is_superuser
    identity = ExternalIdentity.objects.get(user=user)
    assert (identity.issuer, identity.subject) == (sso.provider.issuer, "sub-alice")
    created = AuditEvent.objects.get(action="user.created")
    assert created.details["method"] == "oidc" and created.details["role"] == "admin"
    assert created.details["issuer"] == sso.provider.issuer and created.details["username"] == "alice"
    login = AuditEvent.objects.get(action="user.login")
    assert login.actor == "alice"
    assert login.details == {
        "method": "oidc",
        "issuer": sso.provider.issuer,
        "subject": "sub-alice",
        "role": "admin",
        "new_user": True,
    }
    assert sso.client.get("/").status_code == 200


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        ([ADMIN_GROUP], "admin"),
        ([AUDITOR_GROUP], "auditor"),
        ([AUDITOR_GROUP, ADMIN_GROUP], "admin"),
        (["engineering"], "member"),
        ([], "member"),
    ],
)
def test_groups_map_to_exactly_one_role(sso, groups, role):
    sso.provider.accounts(bob={"sub": "sub-bob", "preferred_username": "bob", "groups": groups})
    assert sso.sign_in("bob").status_code == 302
    user = User.objects.get(username="bob")
    assert user_role(user) == role
    assert set(user.groups.values_list("name", flat=True)) == ({role} if role != "member" else set())


def test_a_later_sign_in_demotes_and_the_change_is_audited_before_and_after(sso):
    """Security regression: roles are read afresh at every sign-in; leaving the admin group at the provider takes
    the admin role away at the next sign-in, with a user.updated row naming both roles."""
    sso.provider.accounts(carol={"sub": "sub-carol", "preferred_username": "carol", "groups": [ADMIN_GROUP]})
    assert sso.sign_in("carol").status_code == 302
    assert _role("carol") == "admin"

    sso.provider.accounts(carol={"sub": "sub-carol", "preferred_username": "carol", "groups": [AUDITOR_GROUP]})
    second = type(sso)(Client(), sso.provider)  # a fresh browser, signing in again
    assert second.sign_in("carol").status_code == 302
    assert _role("carol") == "auditor"
    updated = AuditEvent.objects.get(action="user.updated")
    assert updated.details["method"] == "oidc"
    assert updated.details["from"] == {"role": "admin", "groups": ["admin"]}
    assert updated.details["to"] == {"role": "auditor", "groups": ["auditor"]}

    sso.provider.accounts(carol={"sub": "sub-carol", "preferred_username": "carol", "groups": []})
    assert type(sso)(Client(), sso.provider).sign_in("carol").status_code == 302
    assert _role("carol") == "member"
    assert AuditEvent.objects.filter(action="user.updated").count() == 2
    assert AuditEvent.objects.filter(action="user.created").count() == 1


def test_an_unchanged_role_writes_no_user_updated_row(sso):
    sso.provider.accounts(dave={"sub": "sub-dave", "preferred_username": "dave", "groups": [AUDITOR_GROUP]})
    for _ in range(2):
        assert type(sso)(Client(), sso.provider).sign_in("dave").status_code == 302
    assert not AuditEvent.objects.filter(action="user.updated").exists()
    assert AuditEvent.objects.filter(action="user.login", actor="dave").count() == 2


def test_sso_sign_in_clears_a_superuser_flag_the_provider_does_not_vouch_for(sso):
    """A superuser counts as admin; after an SSO sign-in the user holds exactly the mapped role, so a flag set in
    the Django admin cannot keep someone an admin whom the provider no longer puts in the admin group."""
    sso.provider.accounts(erin={"sub": "sub-erin", "preferred_username": "erin", "groups": []})
    assert sso.sign_in("erin").status_code == 302
    User.objects.filter(username="erin").update(is_superuser=True)
    assert _role("erin") == "admin"

    assert type(sso)(Client(), sso.provider).sign_in("erin").status_code == 302
    erin = User.objects.get(username="erin")
    assert not erin.is_superuser and user_role(erin) == "member"
    updated = AuditEvent.objects.get(action="user.updated")
    assert updated.details["from"] == {"role": "admin", "is_superuser": True}
    assert updated.details["to"] == {"role": "member", "is_superuser": False}


def test_users_are_matched_by_subject_never_by_email(sso):
    """Security regression: two provider accounts with one email are two coderauth users; a provider account whose
    email or preferred username is a local admin's never signs in as that admin."""
    local_admin = AdminFactory(username="root", email="shared@example.com")
    sso.provider.accounts(
        first={"sub": "sub-first", "email": "shared@example.com", "preferred_username": "root", "groups": []},
        second={"sub": "sub-second", "email": "shared@example.com", "preferred_username": "root", "groups": []},
    )
    assert sso.sign_in("first").status_code == 302
    first = _signed_in_user(sso.client)
    second_browser = type(sso)(Client(), sso.provider)
    assert second_browser.sign_in("second").status_code == 302
    second = _signed_in_user(second_browser.client)

    assert len({local_admin.pk, first.pk, second.pk}) == 3
    assert (first.username, second.username) == ("root-2", "root-3")
    assert user_role(first) == user_role(second) == "member"
    assert ExternalIdentity.objects.get(subject="sub-first").user == first
    assert not ExternalIdentity.objects.filter(user=local_admin).exists()


def test_the_same_subject_signs_in_to_the_same_user_whatever_its_new_email_or_name(sso):
    sso.provider.accounts(frank={"sub": "sub-frank", "email": "frank@example.com", "preferred_username": "frank"})
    assert sso.sign_in("frank").status_code == 302
    sso.provider.accounts(frank={"sub": "sub-frank", "email": "f@example.org", "preferred_username": "franklin"})
    browser = type(sso)(Client(), sso.provider)
    assert browser.sign_in("frank").status_code == 302
    assert _signed_in_user(browser.client).username == "frank"
    assert User.objects.filter(external_identities__subject="sub-frank").count() == 1


def test_a_username_taken_in_another_letter_case_gets_a_suffix(sso):
    UserFactory(username="Grace")
    sso.provider.accounts(grace={"sub": "sub-grace", "preferred_username": "grace"})
    assert sso.sign_in("grace").status_code == 302
    assert _signed_in_user(sso.client).username == "grace-2"


def test_a_deactivated_user_is_refused_and_audited(sso):
    sso.provider.accounts(heidi={"sub": "sub-heidi", "preferred_username": "heidi", "groups": [ADMIN_GROUP]})
    assert sso.sign_in("heidi").status_code == 302
    User.objects.filter(username="heidi").update(is_active=False)
    Group.objects.get(name="admin").user_set.remove(User.objects.get(username="heidi"))

    browser = type(sso)(Client(), sso.provider)
    response = browser.sign_in("heidi")
    assert response.status_code == 403
    assert b"deactivated" in response.content
    assert "_auth_user_id" not in browser.client.session
    failed = AuditEvent.objects.get(action="user.login_failed")
    assert failed.actor == "heidi"
    assert failed.details == {"method": "oidc", "issuer": sso.provider.issuer, "reason": "inactive_user"}
    assert _role("heidi") == "member", "a refused sign-in changes no role"


def test_sign_in_returns_to_next_on_this_site_only(sso):
    sso.provider.accounts(ivan={"sub": "sub-ivan", "preferred_username": "ivan"})
    assert sso.sign_in("ivan", next_url="/workspaces/")["Location"] == "/workspaces/"
    browser = type(sso)(Client(), sso.provider)
    assert browser.sign_in("ivan", next_url="https://evil.example/")["Location"] == "/"


def test_the_authorization_request_carries_state_nonce_and_a_pkce_s256_challenge(sso):
    query = parse_qs(urlsplit(sso.start()).query)
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert query["state"][0] and query["nonce"][0]
    assert set(query["scope"][0].split()) == {"openid", "profile", "email", "groups"}
    assert query["redirect_uri"] == ["http://testserver/sso/callback/"]
