"""The permission matrix: every agent route × permission mode × token state → the status of docs/concepts.md.

The expected status comes from an oracle written here from docs/concepts.md (the route → scope table
and the modes table), deliberately not from agents.registry or policies.scopes, so a wrong declaration
in the code cannot also make the test agree with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from agents.authentication import AgentTokenAuthentication
from agents.models import AccessRequest, AgentToken, ExternalAuthProvider, Workspace
from agents.services.tokens import agent_child_token_issue, agent_token_issue, agent_token_revoke
from agents.services.user_data import external_auth_link_set, git_ssh_key_get_or_create, git_ssh_private_key
from agents.services.users import user_token_issue
from audit.models import AuditEvent
from tests.helpers.factories import AgentFactory, CustomModeFactory, UserFactory, WorkspaceFactory, mode
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

# --- The oracle, written from docs/concepts.md -------------------------------------------------------------

CONNECT, REPORT, GITSSHKEY, EXTERNAL_AUTH = "agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"
ANY_VALID_TOKEN = None  # routes any valid agent token may call (child tokens, self-revoke)
CHILD_TOKEN_STATES = {"narrower-child"}  # tokens an agent minted: only these rotate

# docs/concepts.md modes table, plus the custom mode the factory creates.
MODE_SCOPES: dict[str, frozenset[str]] = {
    "default": frozenset({CONNECT, REPORT, GITSSHKEY, EXTERNAL_AUTH}),
    "no-user-data": frozenset({CONNECT, REPORT}),
    "git-only": frozenset({CONNECT, REPORT, GITSSHKEY}),
}

# What each token state holds. None: the token must not authenticate at all.
TOKEN_SCOPES: dict[str, frozenset[str] | None] = {
    "valid": frozenset({CONNECT, REPORT, GITSSHKEY, EXTERNAL_AUTH}),
    "narrower-child": frozenset({CONNECT}),
    "expired": None,
    "revoked": None,
    "revoked-parent": None,
    "user-token": None,
    "malformed": None,
    "bad-checksum": None,
    "none": None,
}

ACCESS_TOKEN = "gho_matrixAccessToken0123456789"


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    url_name: str
    scope: str | None
    success: int
    query: str = ""
    body: dict | None = None
    needs_token_id: bool = False


# docs/concepts.md "Agent routes" table.
ROUTES = [
    Route("manifest", "get", "agents:agent-manifest", CONNECT, 200),
    Route(
        "app-status",
        "patch",
        "agents:agent-app-status",
        REPORT,
        200,
        body={"app_slug": "claude", "state": "working", "message": "Running tests", "uri": "https://example.com/run/1"},
    ),
    Route(
        "logs",
        "patch",
        "agents:agent-logs",
        REPORT,
        200,
        body={"logs": [{"created_at": "2026-01-01T00:00:00Z", "level": "info", "output": "started"}]},
    ),
    Route("child-token", "post", "agents:agent-child-token", ANY_VALID_TOKEN, 201, body={}),
    Route("self-revoke", "delete", "agents:agent-child-token-detail", ANY_VALID_TOKEN, 204, needs_token_id=True),
    Route("rotate", "post", "agents:agent-token-rotate", ANY_VALID_TOKEN, 201, body={}),
    Route("gitsshkey", "get", "agents:agent-gitsshkey", GITSSHKEY, 200),
    Route("external-auth", "get", "agents:agent-external-auth", EXTERNAL_AUTH, 200, query="?id=github"),
    Route(
        "gitauth", "get", "agents:agent-gitauth", EXTERNAL_AUTH, 200, query="?url=https://github.com/acme/widgets.git"
    ),
    Route("access-requests", "get", "agents:agent-access-request-list", CONNECT, 200),
    # Asked with an id that is no access request (a token's): past the scope check, not found.
    Route("access-request", "get", "agents:agent-access-request-detail", CONNECT, 404, needs_token_id=True),
]


def expected_status(route: Route, mode_name: str, state: str, granted: frozenset[str] = frozenset()) -> int:
    """docs/concepts.md: bad or missing credentials 401; allowed = token scopes ∩ (mode scopes ∪ the live grant's
    scopes), else 403."""
    token_scopes = TOKEN_SCOPES[state]
    if token_scopes is None:
        return 401
    allowed = token_scopes & (MODE_SCOPES[mode_name] | granted)
    if route.name == "rotate":  # a token issued by a user is replaced by issuing a new one, not rotated
        return route.success if state in CHILD_TOKEN_STATES else 400
    if route.scope is ANY_VALID_TOKEN:
        return route.success if allowed else 400
    return route.success if route.scope in allowed else 403


# --- The world each case runs in --------------------------------------------------------------------


@dataclass
class World:
    workspace: Workspace
    credentials: dict[str, str | None]
    token_ids: dict[str, str]
    ssh_private_key: str


def build_world(mode_name: str) -> World:
    """An owner with real user data, an agent, and one credential per token state.

    Tokens are issued while the workspace is in `default` (so the valid token holds every scope) and the
    mode is switched afterwards: what the request may do must come from the intersection at request time.
    """
    owner = UserFactory()
    workspace = WorkspaceFactory(owner=owner, permission_mode=mode("default"))
    agent = AgentFactory(workspace=workspace)
    ssh_key = git_ssh_key_get_or_create(user=owner)
    provider = ExternalAuthProvider.objects.create(id="github", type="github", regex=r"^https://github\.com/")
    external_auth_link_set(user=owner, provider=provider, access_token=ACCESS_TOKEN, token_extra={"scope": "repo"})

    valid = agent_token_issue(actor=owner, agent=agent, name="valid")
    child = agent_child_token_issue(principal=_principal(valid.plaintext), scopes=[CONNECT])

    expired = agent_token_issue(actor=owner, agent=agent, name="expired")
    past = timezone.now() - timedelta(days=2)
    AgentToken.objects.filter(pk=expired.token.pk).update(created_at=past - timedelta(days=1), expires_at=past)

    revoked = agent_token_issue(actor=owner, agent=agent, name="revoked")
    agent_token_revoke(actor=owner, token=revoked.token)

    parent = agent_token_issue(actor=owner, agent=agent, name="parent")
    orphan = agent_child_token_issue(principal=_principal(parent.plaintext), scopes=[CONNECT, REPORT])
    agent_token_revoke(actor=owner, token=parent.token)

    bad_checksum = valid.plaintext[:-1] + ("A" if valid.plaintext[-1] != "A" else "B")

    if mode_name == "git-only":
        CustomModeFactory()
    Workspace.objects.filter(pk=workspace.pk).update(permission_mode=mode_name)

    credentials = {
        "valid": valid.plaintext,
        "narrower-child": child.plaintext,
        "expired": expired.plaintext,
        "revoked": revoked.plaintext,
        "revoked-parent": orphan.plaintext,
        "user-token": user_token_issue(user=owner, name="cli").plaintext,
        "malformed": "cda_this-is-not-a-token",
        "bad-checksum": bad_checksum,
        "none": None,
    }
    token_ids = {
        "valid": str(valid.token.id),
        "narrower-child": str(child.token.id),
        "expired": str(expired.token.id),
        "revoked": str(revoked.token.id),
        "revoked-parent": str(orphan.token.id),
    }
    return World(
        workspace=workspace,
        credentials=credentials,
        token_ids=token_ids,
        ssh_private_key=git_ssh_private_key(ssh_key),
    )


def _principal(plaintext: str):
    """Authenticate a token the way a request would, to mint children through the real service."""
    request = type("Request", (), {"headers": {"Authorization": f"Bearer {plaintext}"}})()
    principal, _ = AgentTokenAuthentication().authenticate(request)
    return principal


def call(route: Route, world: World, state: str, *, header: str = "authorization"):
    client = APIClient()
    credential = world.credentials[state]
    if credential is not None:
        if header == "authorization":
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {credential}")
        else:
            client.credentials(HTTP_CODER_SESSION_TOKEN=credential)
    args = [world.token_ids.get(state, world.token_ids["valid"])] if route.needs_token_id else []
    url = reverse(route.url_name, args=args) + route.query
    return (
        getattr(client, route.method)(url, route.body, format="json")
        if route.body is not None
        else getattr(client, route.method)(url)
    )


def assert_body(
    route: Route,
    world: World,
    response,
    mode_name: str,
    state: str,
    expected: int,
    granted: frozenset[str] = frozenset(),
) -> None:
    if expected == 401:
        assert response["WWW-Authenticate"].startswith("Bearer"), response.headers
        assert set(response.json()) == {"detail"}, response.json()
    elif expected == 403:
        body = response.json()
        # The mode (with the live grant) refuses when it lacks the scope, whatever the token holds; otherwise the
        # narrow token does.
        denied_by = "permission_mode" if route.scope not in MODE_SCOPES[mode_name] | granted else "token"
        assert body["required_scope"] == route.scope
        assert body["permission_mode"] == mode_name
        assert body["denied_by"] == denied_by
        assert (f"permission mode '{mode_name}'" in body["detail"]) == (denied_by == "permission_mode")
        denied = AuditEvent.objects.filter(action="agent.access_denied").latest("id")
        assert denied.details["scope"] == route.scope
        assert denied.details["mode"] == mode_name
        assert denied.details["denied_by"] == denied_by
        assert denied.details["token_scopes"] == sorted(TOKEN_SCOPES[state])
    elif route.name == "gitsshkey":
        assert response.json()["private_key"] == world.ssh_private_key
    elif route.name in ("external-auth", "gitauth"):
        assert response.json() == {"access_token": ACCESS_TOKEN, "token_extra": {"scope": "repo"}, "type": "github"}
    elif route.name == "manifest":
        body = response.json()
        assert body["permission_mode"] == mode_name
        assert set(body["scopes"]) == TOKEN_SCOPES[state] & (MODE_SCOPES[mode_name] | granted)
    elif route.name == "child-token":
        # A child holds what its parent's mode allows; the grant belongs to the agent for a while, not to tokens.
        assert set(response.json()["scopes"]) == TOKEN_SCOPES[state] & MODE_SCOPES[mode_name]
    elif route.name == "self-revoke":
        assert AgentToken.objects.get(pk=world.token_ids[state]).is_revoked()
    elif route.name == "rotate" and expected == 201:
        assert set(response.json()["scopes"]) == TOKEN_SCOPES[state]
        assert str(AgentToken.objects.get(pk=world.token_ids[state]).rotated_to_id) == response.json()["id"]


CASES = [
    pytest.param(route, mode_name, state, id=f"{route.name}-{mode_name}-{state}")
    for route in ROUTES
    for mode_name in MODE_SCOPES
    for state in TOKEN_SCOPES
]


@pytest.mark.parametrize(("route", "mode_name", "state"), CASES)
def test_agent_route_matrix(route: Route, mode_name: str, state: str):
    world = build_world(mode_name)
    expected = expected_status(route, mode_name, state)

    response = call(route, world, state)

    assert_status(response, expected)
    if expected != 204:
        assert response["Content-Type"].startswith("application/json")
    assert_body(route, world, response, mode_name, state, expected)


# --- Just-in-time elevation: the agent's access requests, in every state, on a `no-user-data` agent -----------


@dataclass(frozen=True)
class Elevation:
    """An access request of the agent's in one state, and the token state the request is made with."""

    token_state: str
    request_state: str
    expires_in: timedelta | None
    live: bool  # docs/concepts.md: only an approved request before its expiry grants anything


ELEVATION_SCOPES = frozenset({GITSSHKEY})
ELEVATIONS = {
    "live-grant": Elevation("valid", "approved", timedelta(minutes=10), live=True),
    "expired-grant": Elevation("valid", "approved", timedelta(seconds=-1), live=False),
    "revoked-grant": Elevation("valid", "revoked", timedelta(minutes=10), live=False),
    "grant-narrow-token": Elevation("narrower-child", "approved", timedelta(minutes=10), live=True),
    "pending-request": Elevation("valid", "pending", None, live=False),
}


def add_access_request(world: World, elevation: Elevation) -> AccessRequest:
    """The row as the services leave it in that state; the agent hot path reads the table itself."""
    now = timezone.now()
    decided = elevation.request_state != "pending"
    return AccessRequest.objects.create(
        agent=world.workspace.agents.get(),
        workspace=world.workspace,
        scopes=sorted(ELEVATION_SCOPES),
        reason="a rebase needs the git key",
        duration_seconds=600,
        state=elevation.request_state,
        requested_at=now - timedelta(minutes=2),
        decided_at=now - timedelta(minutes=1) if decided else None,
        expires_at=now + elevation.expires_in if decided else None,
        revoked_at=now if elevation.request_state == "revoked" else None,
    )


ELEVATION_CASES = [pytest.param(route, name, id=f"{route.name}-{name}") for route in ROUTES for name in ELEVATIONS]


@pytest.mark.parametrize(("route", "elevation_name"), ELEVATION_CASES)
def test_agent_route_matrix_under_elevation(route: Route, elevation_name: str):
    """Token scopes ∩ (mode ∪ live grant): a grant of agent:gitsshkey opens that route on a `no-user-data` agent
    only while approved, unrevoked and unexpired, and only for a token that carries the scope."""
    elevation = ELEVATIONS[elevation_name]
    world = build_world("no-user-data")
    access_request = add_access_request(world, elevation)
    granted = ELEVATION_SCOPES if elevation.live else frozenset()
    expected = expected_status(route, "no-user-data", elevation.token_state, granted)

    response = call(route, world, elevation.token_state)

    assert_status(response, expected)
    assert_body(route, world, response, "no-user-data", elevation.token_state, expected, granted)
    if route.name == "gitsshkey" and expected == 200:
        read = AuditEvent.objects.filter(action="agent.user_data_accessed").latest("id")
        assert read.details["elevated"] is True
        assert read.details["access_request_id"] == str(access_request.id)


def test_the_elevation_matrix_opens_exactly_one_route_in_one_state():
    """The oracle above is not vacuous: of every route and state, only the granted route with a live grant and a
    token that carries its scope succeeds where `no-user-data` alone would refuse."""
    opened = {
        (route.name, name)
        for route in ROUTES
        for name, elevation in ELEVATIONS.items()
        if expected_status(
            route, "no-user-data", elevation.token_state, ELEVATION_SCOPES if elevation.live else frozenset()
        )
        != expected_status(route, "no-user-data", elevation.token_state)
    }
    assert opened == {("gitsshkey", "live-grant")}


@pytest.mark.parametrize("mode_name", ["default", "no-user-data"])
@pytest.mark.parametrize("route", ROUTES, ids=[route.name for route in ROUTES])
def test_coder_session_token_header_is_equivalent(route: Route, mode_name: str):
    """Coder's `Coder-Session-Token` header carries an agent token exactly like `Authorization: Bearer`."""
    world = build_world(mode_name)
    for state in ("valid", "narrower-child", "revoked", "bad-checksum"):
        expected = expected_status(route, mode_name, state)
        cache.clear()  # a new denial-audit period: a refusal below gets its own agent.access_denied row
        response = call(route, world, state, header="coder-session-token")
        assert_status(response, expected)
        assert_body(route, world, response, mode_name, state, expected)
        if route.name == "self-revoke" and expected == 204:
            break  # the token just revoked itself


@pytest.mark.parametrize("parameter", ["token", "access_token", "coder_session_token", "session_token", "api_key"])
@pytest.mark.parametrize("route", ROUTES, ids=[route.name for route in ROUTES])
def test_token_in_query_string_is_not_accepted(route: Route, parameter: str):
    """Query strings end up in proxy and server logs, so a token there must never authenticate (docs/concepts.md)."""
    world = build_world("default")
    client = APIClient()
    args = [world.token_ids["valid"]] if route.needs_token_id else []
    separator = "&" if route.query else "?"
    url = reverse(route.url_name, args=args) + route.query + f"{separator}{parameter}={world.credentials['valid']}"

    response = getattr(client, route.method)(url, route.body or {}, format="json")

    assert_status(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_matrix_covers_every_agent_route():
    """A new agent route must be added to the oracle above, or this fails."""
    from agents.registry import route_entries

    agent_url_names = {f"agents:{entry.view_name}" for entry in route_entries() if entry.agent_reachable}
    assert agent_url_names == {route.url_name for route in ROUTES}
