"""Security-review regressions: token_extra validation, owner enumeration on workspace create, ReDoS."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from agents.models import ExternalAuthLink, ExternalAuthProvider, Workspace
from agents.services.user_data import external_auth_link_context, external_auth_link_set
from audit.models import AuditEvent
from core import crypto
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

EXTERNAL_AUTH = "agents:agent-external-auth"
GITAUTH = "agents:agent-gitauth"


@pytest.fixture
def github(db):
    return ExternalAuthProvider.objects.create(id="github", type="github", regex=r"^https://github\.com/")


def _put_link(client, body: str):
    """PUT a raw JSON body, so escapes such as a lone surrogate reach the parser unchanged."""
    return client.put(reverse("agents:user-external-auth", args=["github"]), data=body, content_type="application/json")


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


# --- 1. token_extra ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token_extra",
    [
        r'{"k": "\ud800"}',
        r'{"\ud800": "v"}',
        r'{"k": ["ok", {"deep": "\udfff"}]}',
        r'{"k": "a\u0000b"}',
        r'{"a\u0000": 1}',
        json.dumps(_nested(9)),
        json.dumps({"k": "x" * 9000}),
        '"a string"',
        "[1, 2]",
    ],
    ids=[
        "surrogate-value",
        "surrogate-key",
        "surrogate-nested",
        "nul-value",
        "nul-key",
        "too-deep",
        "too-big",
        "string",
        "list",
    ],
)
def test_token_extra_is_validated_on_input(member_client, member, github, token_extra):
    """A token_extra the API could not render back is a 400 naming the field, and nothing is stored."""
    response = _put_link(member_client, f'{{"access_token": "gho_x", "token_extra": {token_extra}}}')
    assert_status(response, 400)
    assert "token_extra" in response.json()
    assert not ExternalAuthLink.objects.filter(user=member).exists()


def test_token_extra_within_limits_round_trips(member_client, agent_client, github):
    extra = {"scope": "repo", "nested": _nested(7), "list": [1, 2.5, True, None, "ü"]}
    assert_status(_put_link(member_client, json.dumps({"access_token": "gho_x", "token_extra": extra})), 200)
    response = agent_client.get(reverse(EXTERNAL_AUTH) + "?id=github")
    assert_status(response, 200)
    assert response.json()["token_extra"] == extra


def test_lone_surrogate_token_extra_cannot_break_agent_reads(member_client, agent_client, github):
    """Regression: a lone surrogate used to be stored, then every agent read of the link answered 500."""
    assert_status(_put_link(member_client, r'{"access_token": "gho_x", "token_extra": {"k": "\ud800"}}'), 400)
    assert_status(agent_client.get(reverse(EXTERNAL_AUTH) + "?id=github"), 404)
    assert_status(agent_client.get(reverse(GITAUTH) + "?url=https://github.com/a/b"), 404)


@pytest.mark.parametrize("query", ["?id=github", "?match=https://github.com/a/b"])
def test_unrenderable_stored_link_fails_without_an_access_row(agent_client, member, github, query):
    """A link stored before validation existed: the read fails cleanly and no 'accessed' audit row is written."""
    link = external_auth_link_set(user=member, provider=github, access_token="gho_x", token_extra={})
    link.token_extra_encrypted = crypto.encrypt(
        json.dumps({"k": "\ud800"}), context=external_auth_link_context(member.pk, github.id, "extra")
    )
    link.save(update_fields=["token_extra_encrypted"])

    response = agent_client.get(reverse(EXTERNAL_AUTH) + query)
    assert_status(response, 404)
    assert "gho_x" not in response.content.decode()
    assert not AuditEvent.objects.filter(action="agent.user_data_accessed").exists()


# --- 2. owner enumeration on workspace create -------------------------------------------------------------


@pytest.mark.parametrize("owner", ["no-such-user-anywhere", "OTHER"])
def test_member_naming_another_owner_gets_403_whether_or_not_it_exists(member_client, other_member, owner):
    """Regression: a member got 400 for an unknown username and 403 for a real one (username enumeration)."""
    owner = other_member.username if owner == "OTHER" else owner
    response = member_client.post(reverse("agents:workspace-list"), {"name": "ws", "owner": owner}, format="json")
    assert_status(response, 403)
    assert not Workspace.objects.exists()


def test_member_may_name_themselves_as_owner(member_client, member):
    response = member_client.post(
        reverse("agents:workspace-list"), {"name": "ws", "owner": member.username}, format="json"
    )
    assert_status(response, 201)
    assert response.data["owner"] == member.username


def test_admin_gets_400_for_an_unknown_owner(admin_client):
    response = admin_client.post(
        reverse("agents:workspace-list"), {"name": "ws", "owner": "no-such-user-anywhere"}, format="json"
    )
    assert_status(response, 400)
    assert "owner" in response.json()


def test_admin_creates_for_another_user(admin_client, member):
    response = admin_client.post(
        reverse("agents:workspace-list"), {"name": "ws", "owner": member.username}, format="json"
    )
    assert_status(response, 201)
    assert response.data["owner"] == member.username


# --- 3. provider regexes: RE2, bounded URLs -------------------------------------------------------------


@pytest.mark.parametrize("regex", [r"(a)\1", r"^(?=github)", r"(?<!x)github", r"("])
def test_provider_regex_outside_re2_is_a_400(admin_client, regex):
    """Patterns RE2 cannot run in linear time (backreferences, lookaround) or cannot parse are refused."""
    response = admin_client.post(
        reverse("agents:external-auth-providers"), {"id": "p", "type": "github", "regex": regex}, format="json"
    )
    assert_status(response, 400)
    assert "regex" in response.json()
    assert not ExternalAuthProvider.objects.exists()


@pytest.mark.parametrize(("route", "param"), [(EXTERNAL_AUTH, "match"), (GITAUTH, "url")])
def test_catastrophic_provider_regex_is_matched_in_linear_time(admin_client, agent_client, member, route, param):
    """Regression (ReDoS): `^(a+)+$` against 'a'*5000+'!' backtracks for ages in `re`; RE2 answers at once."""
    response = admin_client.post(
        reverse("agents:external-auth-providers"),
        {"id": "evil", "type": "github", "regex": r"^(a+)+$"},
        format="json",
    )
    assert_status(response, 201)
    external_auth_link_set(
        user=member, provider=ExternalAuthProvider.objects.get(pk="evil"), access_token="gho_x", token_extra={}
    )
    assert_status(agent_client.get(reverse(route), {param: "a" * 1500 + "!"}), 404)
    assert_status(agent_client.get(reverse(route), {param: "a" * 1500}), 200)


def test_regex_match_on_a_long_url_returns(member):
    """The brief's exact case at the service level, past the API's URL cap: it completes (no timing asserted)."""
    from agents.services.user_data import _linked_provider_matching

    ExternalAuthProvider.objects.create(id="evil", type="github", regex=r"^(a+)+$")
    external_auth_link_set(
        user=member, provider=ExternalAuthProvider.objects.get(pk="evil"), access_token="gho_x", token_extra={}
    )
    assert _linked_provider_matching(owner_id=member.pk, url="a" * 5000 + "!") is None


@pytest.mark.parametrize(("route", "param"), [(EXTERNAL_AUTH, "match"), (GITAUTH, "url")])
def test_overlong_url_is_a_400(agent_client, github, member, route, param):
    external_auth_link_set(user=member, provider=github, access_token="gho_x", token_extra={})
    response = agent_client.get(reverse(route), {param: "https://github.com/" + "a" * 2048})
    assert_status(response, 400)
    assert param in response.json()
    assert not AuditEvent.objects.filter(action="agent.user_data_accessed").exists()
