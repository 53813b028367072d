"""Just-in-time elevation over REST: the agent asks, a person decides, and the grant bites on the next request."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from agents.models import AccessRequest
from agents.services.tokens import agent_token_issue
from audit.models import AuditEvent
from tests.helpers.clients import client_for_agent_token, client_for_user
from tests.helpers.factories import AgentFactory, mode
from tests.helpers.responses import assert_status, page_results

pytestmark = pytest.mark.django_db

ASK = {"scopes": ["agent:gitsshkey"], "reason": "push release tag", "duration_seconds": 900}
BODY_KEYS = {
    "id",
    "state",
    "scopes",
    "reason",
    "duration_seconds",
    "requested_at",
    "expires_at",
    "agent_id",
    "workspace_id",
    "decided_at",
    "decided_by",
    "decision_reason",
    "revoked_at",
}


@pytest.fixture(autouse=True)
def _fresh_budgets():
    cache.clear()  # the per-agent request budget lives in the shared database cache
    yield
    cache.clear()


@pytest.fixture
def root(member, agent):
    """A root token issued under `default`, then the agent narrowed to `no-user-data`."""
    issued = agent_token_issue(actor=member, agent=agent, name="root")
    agent.permission_mode = mode("no-user-data")
    agent.save(update_fields=["permission_mode"])
    return issued


@pytest.fixture
def agent_api(root):
    return client_for_agent_token(root.plaintext)


def _ask(client, body=ASK):
    return client.post(reverse("agents:agent-access-request-list"), body, format="json")


def _decide(client, request_id, decision: str, body=None):
    return client.post(
        reverse(f"agents:access-request-{decision}", args=[request_id]), body or {"reason": "ok"}, format="json"
    )


def test_ask_answers_201_with_a_pending_request(agent_api, agent):
    response = _ask(agent_api)
    assert_status(response, 201)
    body = response.json()
    assert set(body) == BODY_KEYS
    assert body["state"] == "pending" and body["expires_at"] is None
    assert body["scopes"] == ["agent:gitsshkey"] and body["duration_seconds"] == 900
    assert body["agent_id"] == str(agent.id) and body["workspace_id"] == str(agent.workspace_id)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**ASK, "scopes": []}, "scopes"),
        ({**ASK, "scopes": ["root"]}, "scopes"),
        ({**ASK, "scopes": ["agent:report"]}, "scopes"),
        ({**ASK, "reason": ""}, "reason"),
        ({**ASK, "reason": "x" * 501}, "reason"),
        ({**ASK, "duration_seconds": 30}, "duration_seconds"),
        ({**ASK, "duration_seconds": 3601}, "duration_seconds"),
        ({**ASK, "duration_seconds": "soon"}, "duration_seconds"),
        ({"reason": "x", "duration_seconds": 60}, "scopes"),
    ],
)
def test_bad_asks_are_400_naming_the_field(agent_api, body, field):
    response = _ask(agent_api, body)
    assert_status(response, 400)
    assert field in response.json()


def test_a_second_open_request_is_409_naming_the_first(agent_api):
    first = _ask(agent_api).json()
    response = _ask(agent_api, {**ASK, "scopes": ["agent:external-auth"]})
    assert_status(response, 409)
    assert response.json()["id"] == first["id"]


def test_asking_is_budgeted_per_agent_refusals_included(agent_api, root, settings):
    """Regression: a loop of refused asks must still spend the budget, and every token of the agent shares it."""
    settings.CODERAUTH_ELEVATION_REQUEST_RATE = "3/min"
    assert_status(_ask(agent_api), 201)
    assert_status(_ask(agent_api), 409)
    assert_status(_ask(agent_api, {"scopes": "nope"}), 400)
    other_token = client_for_agent_token(
        agent_token_issue(actor=root.token.agent.workspace.owner, agent=root.token.agent).plaintext
    )
    response = _ask(other_token)
    assert_status(response, 429)
    assert int(response["Retry-After"]) >= 1
    # Reading is not budgeted.
    assert_status(agent_api.get(reverse("agents:agent-access-request-list")), 200)


def test_the_agent_reads_its_own_requests_and_not_anothers(agent_api, member):
    mine = _ask(agent_api).json()
    listed = page_results(agent_api.get(reverse("agents:agent-access-request-list")))
    assert [item["id"] for item in listed] == [mine["id"]]
    detail = agent_api.get(reverse("agents:agent-access-request-detail", args=[mine["id"]]))
    assert_status(detail, 200)
    assert detail.json()["state"] == "pending"

    other_agent = AgentFactory(workspace__owner=member)
    other = client_for_agent_token(agent_token_issue(actor=member, agent=other_agent).plaintext)
    assert_status(other.get(reverse("agents:agent-access-request-detail", args=[mine["id"]])), 404)
    assert page_results(other.get(reverse("agents:agent-access-request-list"))) == []


def test_grant_bites_on_the_next_request_and_revoke_ends_it(agent_api, member_client):
    """Security: the owner's key is out of reach under `no-user-data` until a person approves, and again as soon
    as the grant is revoked, with no restart and no cache."""
    ssh_key = reverse("agents:agent-gitsshkey")
    assert_status(agent_api.get(ssh_key), 403)
    request_id = _ask(agent_api).json()["id"]
    assert_status(agent_api.get(ssh_key), 403)  # pending grants nothing

    approved = _decide(member_client, request_id, "approve", {"reason": "release", "duration_seconds": 300})
    assert_status(approved, 200)
    assert approved.json()["state"] == "approved" and approved.json()["expires_at"] is not None
    assert_status(agent_api.get(ssh_key), 200)

    assert_status(_decide(member_client, request_id, "revoke", {"reason": "done"}), 200)
    assert_status(agent_api.get(ssh_key), 403)


def test_a_grant_lapses_by_time_alone(agent_api, member_client):
    request_id = _ask(agent_api).json()["id"]
    _decide(member_client, request_id, "approve")
    assert_status(agent_api.get(reverse("agents:agent-gitsshkey")), 200)
    AccessRequest.objects.filter(pk=request_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert_status(agent_api.get(reverse("agents:agent-gitsshkey")), 403)
    assert agent_api.get(reverse("agents:agent-access-request-detail", args=[request_id])).json()["state"] == "expired"
    assert_status(_decide(member_client, request_id, "revoke"), 409)
    assert AuditEvent.objects.filter(action="access_request.expired").count() == 1


def test_a_child_limited_to_connect_stays_limited(agent_api, member_client):
    """Security: the grant belongs to the agent, but a token never uses a scope it does not hold."""
    child = agent_api.post(reverse("agents:agent-child-token"), {"scopes": ["agent:connect"]}, format="json").json()
    child_api = client_for_agent_token(child["token"])
    request_id = _ask(child_api).json()["id"]  # it may ask on the agent's behalf
    _decide(member_client, request_id, "approve")

    assert_status(child_api.get(reverse("agents:agent-gitsshkey")), 403)
    assert_status(agent_api.get(reverse("agents:agent-gitsshkey")), 200)


def test_approval_may_shorten_never_lengthen(agent_api, member_client):
    request_id = _ask(agent_api).json()["id"]
    response = _decide(member_client, request_id, "approve", {"reason": "ok", "duration_seconds": 901})
    assert_status(response, 400)
    assert "duration_seconds" in response.json()
    assert_status(_decide(member_client, request_id, "approve", {"reason": "ok", "duration_seconds": 60}), 200)


def test_a_decision_without_reason_is_400(agent_api, member_client):
    request_id = _ask(agent_api).json()["id"]
    response = _decide(member_client, request_id, "deny", {"reason": "  "})
    assert_status(response, 400)
    assert "reason" in response.json()


def test_deciding_twice_is_409(agent_api, member_client):
    request_id = _ask(agent_api).json()["id"]
    assert_status(_decide(member_client, request_id, "deny"), 200)
    response = _decide(member_client, request_id, "approve")
    assert_status(response, 409)
    assert response.json()["state"] == "denied"


@pytest.mark.parametrize(
    ("who", "approvers", "expected"),
    [
        ("admin", "owners", 200),
        ("admin", "admins", 200),
        ("owner", "owners", 200),
        ("owner", "admins", 403),
        ("auditor", "owners", 403),
        ("other", "owners", 404),
    ],
)
def test_who_may_decide(agent_api, who, approvers, expected, settings, request):
    settings.CODERAUTH_ELEVATION_APPROVERS = approvers
    user = {
        "admin": "admin_user",
        "owner": "member",
        "auditor": "auditor_user",
        "other": "other_member",
    }[who]
    client = client_for_user(request.getfixturevalue(user))
    request_id = _ask(agent_api).json()["id"]
    assert_status(_decide(client, request_id, "approve"), expected)
    assert AccessRequest.objects.get(pk=request_id).state == ("approved" if expected == 200 else "pending")


def test_lists_are_limited_to_what_the_user_sees(agent_api, member_client, other_member_client, auditor_client):
    request_id = _ask(agent_api).json()["id"]
    url = reverse("agents:access-request-list")
    assert [item["id"] for item in page_results(member_client.get(url))] == [request_id]
    assert [item["id"] for item in page_results(auditor_client.get(url))] == [request_id]
    assert page_results(other_member_client.get(url)) == []
    assert_status(other_member_client.get(reverse("agents:access-request-detail", args=[request_id])), 404)


def test_list_filters(agent_api, member_client, agent):
    request_id = _ask(agent_api).json()["id"]
    url = reverse("agents:access-request-list")
    assert len(page_results(member_client.get(url, {"state": "pending", "workspace": str(agent.workspace_id)}))) == 1
    assert page_results(member_client.get(url, {"state": "approved"})) == []
    assert len(page_results(member_client.get(url, {"agent": str(agent.id)}))) == 1
    AccessRequest.objects.filter(pk=request_id).update(requested_at=timezone.now() - timedelta(days=1))
    assert [item["id"] for item in page_results(member_client.get(url, {"state": "expired"}))] == [request_id]
    assert page_results(member_client.get(url, {"state": "pending"})) == []
    for bad in ({"state": "sleeping"}, {"workspace": "nope"}, {"agent": "nope"}):
        response = member_client.get(url, bad)
        assert_status(response, 400)
        assert set(bad) <= set(response.json())


def test_the_list_is_keyset_paged(member, member_client):
    for _ in range(3):
        agent = AgentFactory(workspace__owner=member)
        issued = agent_token_issue(actor=member, agent=agent)
        agent.permission_mode = mode("no-user-data")
        agent.save(update_fields=["permission_mode"])
        assert_status(_ask(client_for_agent_token(issued.plaintext)), 201)
    first = member_client.get(reverse("agents:access-request-list"), {"page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    second = member_client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None


def test_an_agent_token_cannot_decide(agent_api):
    request_id = _ask(agent_api).json()["id"]
    assert_status(_decide(agent_api, request_id, "approve"), 401)
