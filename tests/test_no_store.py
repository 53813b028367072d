"""No cache keeps a secret: every response that carries a token, an SSH private key or an OAuth access token says
`Cache-Control: no-store`.

Three nets: the exact list of views that declare `carries_secret` (core/http/no_store.py), a guard that derives the
list from the OpenAPI schema (any documented response with a secret field must come from such a view, so a new
route cannot forget), and real requests to each route, successful and refused.
"""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from agents.models import ExternalAuthProvider
from agents.services.user_data import external_auth_link_set
from core.http.no_store import view_carries_secret
from tests.helpers.clients import client_for_agent_token, client_logged_in
from tests.helpers.factories import PASSWORD
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

# Route names whose views declare carries_secret: what each hands out.
CARRY_SECRETS = {
    "agents:user-login": "the API session token",
    "agents:user-token-list": "a new personal API token",
    "agents:user-gitsshkey": "the user's key pair (its public half)",
    "agents:agent-token-list": "a new agent token",
    "agents:agent-child-token": "a new child token",
    "agents:agent-token-rotate": "the successor of a rotated child token",
    "agents:agent-gitsshkey": "the owner's SSH private key",
    "agents:agent-external-auth": "an OAuth access token",
    "agents:agent-gitauth": "an OAuth access token",
    "ui:agent-token-issue": "a new agent token, on the page shown once",
}
SECRET_FIELDS = {"token", "session_token", "private_key", "access_token"}
SAMPLE_ARGUMENT = "00000000-0000-4000-8000-000000000000"


def _named_patterns(resolver: URLResolver, namespace: str = ""):
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _named_patterns(pattern, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}", pattern.callback


def _no_store(response) -> bool:
    return "no-store" in [part.strip() for part in response.get("Cache-Control", "").split(",")]


def test_exactly_the_listed_views_declare_carries_secret():
    declared = {name for name, view in _named_patterns(get_resolver()) if view_carries_secret(view)}
    assert declared == set(CARRY_SECRETS)


def _schema_properties(schema: dict, components: dict) -> set[str]:
    """Property names of a response schema, through $ref, arrays and allOf."""
    if "$ref" in schema:
        return _schema_properties(components[schema["$ref"].rsplit("/", 1)[-1]], components)
    names = set(schema.get("properties", {}))
    if "items" in schema:
        names |= _schema_properties(schema["items"], components)
    for part in schema.get("allOf", []):
        names |= _schema_properties(part, components)
    return names


def test_every_documented_response_with_a_secret_field_comes_from_a_no_store_view():
    """Security regression guard: a new route whose response documents a token, private key or access token
    fails here until its view declares carries_secret."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for status, response in operation.get("responses", {}).items():
                body = response.get("content", {}).get("application/json", {}).get("schema")
                if not status.startswith("2") or body is None:
                    continue
                secrets = _schema_properties(body, components) & SECRET_FIELDS
                if secrets:
                    concrete = path
                    for argument in ("{workspace_id}", "{agent_id}", "{token_id}", "{provider_id}"):
                        concrete = concrete.replace(argument, SAMPLE_ARGUMENT)
                    found.append((method.upper(), path, sorted(secrets), view_carries_secret(resolve(concrete).func)))
    assert found, "no secret-bearing response found in the schema"
    missing = [entry for entry in found if not entry[3]]
    assert not missing, missing
    assert {path for _, path, _, _ in found} >= {
        "/api/v2/users/login",
        "/api/v2/workspaceagents/me/gitsshkey",
        "/api/v2/workspaceagents/me/external-auth",
        "/api/v2/workspaceagents/me/gitauth",
        "/api/v2/workspaceagents/me/tokens",
    }


@pytest.fixture
def world(member, agent, agent_token):
    provider = ExternalAuthProvider.objects.create(id="github", type="github", regex=r"^https://github\.com/")
    external_auth_link_set(user=member, provider=provider, access_token="gho_secret", token_extra={})
    return {"member": member, "agent": agent, "agent_token": agent_token}


def _requests(world) -> dict[str, tuple]:
    """Per route: (client, method, URL, body, expected status) of the request that hands the secret out."""
    member, agent = world["member"], world["agent"]
    user = APIClient()
    user.force_authenticate(member)
    agent_client = client_for_agent_token(world["agent_token"])
    web = client_logged_in(member)
    return {
        "agents:user-login": (
            APIClient(),
            "post",
            reverse("agents:user-login"),
            {"username": member.username, "password": PASSWORD},
            201,
        ),
        "agents:user-token-list": (user, "post", reverse("agents:user-token-list"), {"name": "ci"}, 201),
        "agents:user-gitsshkey": (user, "get", reverse("agents:user-gitsshkey"), None, 200),
        "agents:agent-token-list": (
            user,
            "post",
            reverse("agents:agent-token-list", args=[agent.pk]),
            {"name": "x"},
            201,
        ),
        "agents:agent-child-token": (agent_client, "post", reverse("agents:agent-child-token"), {}, 201),
        "agents:agent-token-rotate": (
            client_for_agent_token(
                agent_client.post(reverse("agents:agent-child-token"), {}, format="json").json()["token"]
            ),
            "post",
            reverse("agents:agent-token-rotate"),
            {},
            201,
        ),
        "agents:agent-gitsshkey": (agent_client, "get", reverse("agents:agent-gitsshkey"), None, 200),
        "agents:agent-external-auth": (
            agent_client,
            "get",
            reverse("agents:agent-external-auth") + "?id=github",
            None,
            200,
        ),
        "agents:agent-gitauth": (
            agent_client,
            "get",
            reverse("agents:agent-gitauth") + "?url=https://github.com/a/b",
            None,
            200,
        ),
        "ui:agent-token-issue": (
            web,
            "post",
            reverse("ui:agent-token-issue", args=[agent.pk]),
            {"name": "x", "scopes": ["agent:connect"], "lifetime_days": "1"},
            201,
        ),
    }


@pytest.mark.parametrize("route", sorted(CARRY_SECRETS))
def test_secret_bearing_response_is_not_stored(world, route):
    """Each route's successful response, the one holding the secret, carries Cache-Control: no-store."""
    client, method, url, body, status = _requests(world)[route]
    if isinstance(client, APIClient):
        response = getattr(client, method)(url, body, format="json")
    else:
        response = getattr(client, method)(url, body or {})
    assert_status(response, status)
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("route", sorted(CARRY_SECRETS))
def test_refused_request_to_a_secret_route_is_not_stored_either(world, route):
    """The header does not depend on the outcome: a request without credentials (a wrong password for the
    login) is refused, and its answer is no-store too."""
    client, method, url, body, _ = _requests(world)[route]
    if route == "agents:user-login":
        body = {**body, "password": "wrong"}
    if isinstance(client, APIClient):
        response = getattr(APIClient(), method)(url, body, format="json")
    else:
        response = getattr(Client(), method)(url, body or {})
    assert response.status_code in (302, 401), response.status_code
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_web_sign_in_is_not_stored(member, path):
    """The sign-in pages (Django's LoginView, never cached) answer no-store, the form and the POST that sets the
    session cookie alike (both forms post to /login/)."""
    client = Client()
    assert _no_store(client.get(path))
    response = client.post("/login/", {"username": member.username, "password": PASSWORD})
    assert response.status_code == 302 and settings.SESSION_COOKIE_NAME in response.cookies
    assert _no_store(response)


def test_other_responses_keep_their_own_caching_rules(member_client):
    """The rule follows the view's declaration, not the path: an ordinary read is not forced to no-store."""
    response = member_client.get(reverse("agents:user-me"))
    assert_status(response, 200)
    assert not _no_store(response)
