"""agents/services/sso.py on claims alone (the flow against a real provider is in tests/sso/): the groups claim,
the role it gives, and the username a first sign-in picks."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from agents.services.sso import SsoClaims, role_for_groups, sso_claims_from, sso_sign_in
from tests.helpers.factories import UserFactory

ISSUER = "https://id.example.com"


@pytest.fixture(autouse=True)
def _role_groups(settings):
    settings.CODERAUTH_OIDC_ISSUER = ISSUER
    settings.CODERAUTH_OIDC_ADMIN_GROUPS = ["ops", "platform"]
    settings.CODERAUTH_OIDC_AUDITOR_GROUPS = ["compliance"]


@pytest.mark.parametrize(
    ("claim", "groups"),
    [(["ops", "dev"], ("ops", "dev")), ("ops", ("ops",)), (None, ()), ({"ops": True}, ()), (["ops", 7], ("ops",))],
)
def test_the_groups_claim_is_a_list_or_one_string_and_anything_else_is_no_group(claim, groups):
    claims = {"sub": "s", **({} if claim is None else {"groups": claim})}
    assert sso_claims_from(issuer=ISSUER, claims=claims).groups == groups


def test_the_groups_claim_name_is_configurable(settings):
    settings.CODERAUTH_OIDC_GROUPS_CLAIM = "roles"
    claims = sso_claims_from(issuer=ISSUER, claims={"sub": "s", "roles": ["compliance"], "groups": ["ops"]})
    assert role_for_groups(claims.groups) == "auditor"


@pytest.mark.parametrize(
    ("groups", "role"),
    [(["platform"], "admin"), (["compliance", "ops"], "admin"), (["compliance"], "auditor"), (["OPS"], "member")],
)
def test_role_for_groups(groups, role):
    assert role_for_groups(groups) == role


@pytest.mark.parametrize(
    ("preferred_username", "email", "username"),
    [
        ("alice", "a@example.com", "alice"),
        ("", "bob@example.com", "bob@example.com"),
        ("al ice/<script>", "", "alicescript"),
        # A Cyrillic "а" would make a name that looks like "admin" in every list: only ASCII is kept.
        ("\u0430dmin", "", "dmin"),
    ],
)
def test_the_username_comes_from_the_profile_made_safe(db, preferred_username, email, username):
    claims = SsoClaims(issuer=ISSUER, subject="sub-1", preferred_username=preferred_username, email=email)
    assert sso_sign_in(claims=claims).user.username == username


def test_without_a_usable_name_the_username_is_a_digest_of_the_subject(db):
    first = sso_sign_in(claims=SsoClaims(issuer=ISSUER, subject="sub-1", preferred_username="\u0430\u0431"))
    second = sso_sign_in(claims=SsoClaims(issuer=ISSUER, subject="sub-2"))
    assert first.user.username.startswith("sso-") and second.user.username.startswith("sso-")
    assert first.user.username != second.user.username


def test_taken_names_get_the_next_free_suffix(db):
    UserFactory(username="carol")
    UserFactory(username="carol-2")
    signed_in = sso_sign_in(claims=SsoClaims(issuer=ISSUER, subject="sub-carol", preferred_username="carol"))
    assert signed_in.user.username == "carol-3"
    assert get_user_model().objects.filter(username__startswith="carol").count() == 3


def test_the_same_subject_at_another_issuer_is_another_user(db):
    here = sso_sign_in(claims=SsoClaims(issuer=ISSUER, subject="sub-1", preferred_username="dan"))
    there = sso_sign_in(claims=SsoClaims(issuer="https://other.example.com", subject="sub-1", preferred_username="dan"))
    assert here.user.pk != there.user.pk and here.created and there.created
