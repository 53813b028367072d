"""Errors under /api/ are JSON with a `detail`, never HTML and never a stack trace (docs/concepts.md)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tests.helpers.clients import client_for_user
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db


def _assert_json_error(response, status: int) -> dict:
    assert_status(response, status)
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"], body
    text = response.content.decode()
    assert "Traceback" not in text and "<html" not in text.lower()
    return body


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
@pytest.mark.parametrize("path", ["/api/v2/nope", "/api/v2/workspaceagents/me/nope", "/api/nope/deeper", "/api/"])
def test_unknown_api_path_is_a_json_404(settings, member_client, debug, method, path):
    settings.DEBUG = debug
    _assert_json_error(getattr(member_client, method)(path), 404)


def test_unknown_api_path_is_a_json_404_without_credentials(settings):
    settings.DEBUG = True
    _assert_json_error(APIClient().get("/api/v2/does-not-exist"), 404)


def test_unknown_object_is_a_json_404(member_client):
    response = member_client.get(reverse("agents:workspace-detail", args=["00000000-0000-0000-0000-000000000000"]))
    _assert_json_error(response, 404)


def test_method_not_allowed_is_json(member_client, agent_client):
    _assert_json_error(member_client.delete(reverse("agents:user-me")), 405)
    _assert_json_error(agent_client.post(reverse("agents:agent-manifest"), {}, format="json"), 405)


def test_malformed_json_is_a_400(member_client, api_client):
    response = member_client.post(reverse("agents:workspace-list"), data="{not json", content_type="application/json")
    _assert_json_error(response, 400)
    response = api_client.post(reverse("agents:user-login"), data='{"username": ', content_type="application/json")
    _assert_json_error(response, 400)


def test_unsupported_media_type_is_json(member_client):
    response = member_client.post(reverse("agents:workspace-list"), data="name=x", content_type="text/plain")
    _assert_json_error(response, 415)


def test_field_errors_name_the_fields(member_client):
    body = _assert_json_error(member_client.post(reverse("agents:workspace-list"), {"name": ""}, format="json"), 400)
    assert "name" in body


@pytest.mark.parametrize("client_fixture", ["member_client", "agent_client", "api_client"])
def test_oversized_body_is_a_json_413(request, settings, client_fixture):
    """A body past DATA_UPLOAD_MAX_MEMORY_SIZE is refused before it is parsed, on every kind of route."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    client = request.getfixturevalue(client_fixture)
    url = {
        "member_client": reverse("agents:workspace-list"),
        "agent_client": reverse("agents:agent-logs"),
        "api_client": reverse("agents:user-login"),
    }[client_fixture]
    payload = {"name": "x" * 20_000, "username": "x" * 20_000, "logs": [{"output": "x" * 20_000}]}
    method = client.patch if client_fixture == "agent_client" else client.post
    _assert_json_error(method(url, payload, format="json"), 413)


@pytest.mark.parametrize("debug", [False, True])
def test_unhandled_error_is_a_json_500_without_a_traceback(settings, monkeypatch, member, debug):
    """An unexpected exception must not leak a stack trace or its message to the client."""
    from agents.selectors import workspaces as selectors

    settings.DEBUG = debug

    def explode(**kwargs):
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(selectors, "workspace_list_for", explode)
    client = client_for_user(member)
    client.raise_request_exception = False
    response = client.get(reverse("agents:workspace-list"))

    body = _assert_json_error(response, 500)
    assert "hunter2" not in response.content.decode()
    assert body["request_id"] == response["X-Request-ID"]


def test_unhandled_error_on_an_agent_route_is_a_json_500(monkeypatch, agent_client):
    from agents.services import status as status_services

    def explode(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(status_services, "app_status_report", explode)
    agent_client.raise_request_exception = False
    response = agent_client.patch(
        reverse("agents:agent-app-status"), {"app_slug": "x", "state": "idle", "message": "m"}, format="json"
    )
    _assert_json_error(response, 500)


def test_deeply_nested_json_is_a_400_not_a_500(api_client):
    """Python's JSON decoder raises RecursionError, not ValueError, on `[[[[...`: still bad input."""
    api_client.raise_request_exception = False
    response = api_client.post(reverse("agents:user-login"), data="[" * 100_000, content_type="application/json")
    _assert_json_error(response, 400)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v2/workspaceagents/me/external-auth?id=%00",
        "/api/v2/workspaceagents/me/gitauth?url=https://github.com/%00",
        "/api/v2/permission-modes/a%00b",
        "/api/v2/users/me/external-auth/a%00b",
    ],
)
def test_nul_in_the_url_is_a_400_not_a_database_error(agent_client, member_client, url):
    """PostgreSQL text cannot hold NUL; a lookup with one used to fail as a 500."""
    client = agent_client if "/me/" in url and "users" not in url else member_client
    client.raise_request_exception = False
    _assert_json_error(client.get(url), 400)


@pytest.mark.parametrize(
    ("url_name", "client_fixture"),
    [("agents:user-token-list", "member_client"), ("agents:agent-child-token", "agent_client")],
)
def test_absurd_lifetime_is_a_400_not_an_overflow(request, url_name, client_fixture):
    client = request.getfixturevalue(client_fixture)
    client.raise_request_exception = False
    response = client.post(reverse(url_name), {"name": "n", "lifetime_seconds": 10**30}, format="json")
    body = _assert_json_error(response, 400)
    assert "lifetime_seconds" in body


def test_absurd_agent_token_lifetime_is_a_400(member_client, agent):
    member_client.raise_request_exception = False
    response = member_client.post(
        reverse("agents:agent-token-list", args=[agent.pk]), {"lifetime_seconds": 10**30}, format="json"
    )
    _assert_json_error(response, 400)


def test_database_data_error_is_a_400(monkeypatch, member_client):
    """Safety net: a value the database refuses is bad input, never a 500."""
    from django.db import DataError

    from agents.selectors import workspaces as selectors

    def refuse(**kwargs):
        raise DataError("value out of range")

    monkeypatch.setattr(selectors, "workspace_list_for", refuse)
    member_client.raise_request_exception = False
    body = _assert_json_error(member_client.get(reverse("agents:workspace-list")), 400)
    assert body == {"detail": "Invalid input."}


def test_deleting_a_protected_object_is_a_400_with_a_string_detail(monkeypatch, admin_client):
    from django.db.models import ProtectedError

    from policies import services

    def protected(**kwargs):
        raise ProtectedError("in use", set())

    monkeypatch.setattr(services, "permission_mode_delete", protected)
    body = _assert_json_error(admin_client.delete(reverse("policies:permission-mode-detail", args=["default"])), 400)
    assert body == {"detail": "The object is in use and cannot be deleted."}


@pytest.mark.parametrize("client_fixture", ["member_client", "agent_client"])
def test_too_many_query_parameters_is_a_json_400_not_a_500(request, settings, client_fixture):
    """Django raises TooManyFieldsSent (a SuspiciousOperation) past DATA_UPLOAD_MAX_NUMBER_FIELDS."""
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    client = request.getfixturevalue(client_fixture)
    client.raise_request_exception = False
    url = reverse("agents:workspace-list" if client_fixture == "member_client" else "agents:agent-manifest")
    query = "&".join(f"p{i}=1" for i in range(20))

    response = client.get(f"{url}?{query}")

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Bad request."}


def test_unknown_host_on_the_api_is_a_json_400(settings, api_client):
    """Django answers DisallowedHost through handler400 (with DEBUG on it shows its debug page instead)."""
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["coderauth.example.com"]
    api_client.raise_request_exception = False

    response = api_client.get(reverse("agents:user-me"), HTTP_HOST="evil.example.net")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("path", ["/api/schema/", "/api/schema/docs/", "/api/schema/redoc/"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_schema_and_docs_refuse_writes_with_json_405(api_client, path, method):
    """Regression: drf-spectacular's views answered a 405 in YAML (schema) or as an HTML page (docs)."""
    _assert_json_error(getattr(api_client, method)(path), 405)


def test_unknown_schema_format_is_a_json_404(api_client):
    """Regression: `?format=xml` on the schema answered its 404 in YAML."""
    _assert_json_error(api_client.get("/api/schema/?format=xml"), 404)


def test_schema_still_serves_yaml_and_json(api_client):
    assert api_client.get("/api/schema/")["Content-Type"].startswith("application/vnd.oai.openapi")
    assert "paths" in api_client.get("/api/schema/?format=json").json()


def test_a_newline_in_the_path_cannot_forge_a_log_line(settings, admin_client, caplog):
    """Regression: the refused request's path went into the log as-is, so %0A in a path started a new line."""
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    admin_client.raise_request_exception = False
    url = reverse("policies:permission-mode-detail", args=["x\nFORGED coderauth ERROR all tokens leaked"])
    query = "&".join(f"p{i}=1" for i in range(20))

    assert admin_client.get(f"{url}?{query}").status_code == 400

    refused = [record.getMessage() for record in caplog.records if record.getMessage().startswith("Refused")]
    assert len(refused) == 1
    assert "\n" not in refused[0]
    assert "x\\nFORGED" in refused[0]


@pytest.mark.parametrize(
    ("error", "status", "retry_after"),
    [("conflict", 409, None), ("limit", 429, "7")],
)
def test_domain_conflict_and_limit_errors_map_to_409_and_429(monkeypatch, member_client, error, status, retry_after):
    """A cap reached is a 409, a budget spent a 429 whose Retry-After comes from the error: JSON either way."""
    from agents.selectors import workspaces as selectors
    from core.exceptions import Conflict, LimitReached

    raised = (
        Conflict("Too many things at once.") if error == "conflict" else LimitReached("Slow down.", retry_after=6.5)
    )

    def refuse(**kwargs):
        raise raised

    monkeypatch.setattr(selectors, "workspace_list_for", refuse)
    response = member_client.get(reverse("agents:workspace-list"))
    assert_status(response, status)
    assert response.json() == {"detail": raised.detail}
    assert response.get("Retry-After") == retry_after
