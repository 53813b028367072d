"""Schemathesis over the whole OpenAPI schema served at /api/schema/, as an admin, a member, an auditor and an agent
in turn (docs/operations.md, "Schema fuzzing and property tests").

Every request must get: no 5xx, a status and a content type the schema declares for that operation, a body that
matches the declared schema, and a refusal when its credentials are taken away or replaced (`ignored_auth`). Each
role's credential is sent on every operation, so a user token on an agent route (and the reverse) is fuzzed too.

Path parameters, a few query parameters and a few body fields are sometimes swapped for the names of real objects
(the role's workspace, agent, tokens, modes, provider, audit events) so that the fuzzing reaches past the 404.

`make test` runs a short budget through the WSGI application in-process (coderauth.wsgi.application, the object
gunicorn serves): the fuzzing phase, a few examples per operation. `make check-reliability` runs a long one over real
HTTP against gunicorn with the production settings (tests/reliability/servers.py): many more examples, plus the
coverage phase (boundary values, each kind of invalid input, unexpected methods and media types). Not Django's live
server: it opens a database connection per request (~20 ms here) and answers kept-alive connections ~40 ms late.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import pytest
import schemathesis
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.http import HttpResponse
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st
from rest_framework.response import Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup, ServerError
from schemathesis.openapi.checks import IgnoredAuth, JsonSchemaError, UndefinedContentType, UndefinedStatusCode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from agents.apis.users import UserMeApi
from agents.models import AgentToken, ExternalAuthProvider, UserToken
from agents.services.principals import agent_principal_resolve
from agents.services.tokens import agent_child_token_issue, agent_token_issue
from agents.services.user_data import external_auth_link_set
from agents.services.users import user_token_issue
from audit.models import AuditEvent
from coderauth.wsgi import application
from tests.helpers.factories import (
    PASSWORD,
    AdminFactory,
    AgentFactory,
    AuditorFactory,
    CustomModeFactory,
    UserFactory,
    WorkspaceFactory,
)
from tests.reliability.servers import AppServer

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    ignored_auth,
]
ROLES = ("admin", "member", "auditor", "agent")
SCHEMA_PATH = "/api/schema/?format=json"
SHORT_EXAMPLES = 8
LONG_EXAMPLES = 25
# Cases run per (budget, role), printed at the end of the session.
CASES: Counter[tuple[str, str]] = Counter()

schema = schemathesis.pytest.from_fixture("fuzz_schema")


@dataclass
class FuzzRole:
    """One role's credential (re-issued if the fuzzing revokes it) and the objects it may name."""

    name: str
    user: object
    token_model: type
    token_id: object = None
    plaintext: str = ""
    issue: object = None
    path_values: dict[str, list] = field(default_factory=dict)
    query_values: dict[str, list] = field(default_factory=dict)
    body_values: dict[str, list] = field(default_factory=dict)

    def headers(self) -> dict[str, str]:
        if not self.token_model.objects.filter(pk=self.token_id, revoked_at__isnull=True).exists():
            self.token_id, self.plaintext = self.issue()
        return {"Authorization": f"Bearer {self.plaintext}"}


@pytest.fixture(params=ROLES)
def fuzz_role(request, transactional_db, settings):
    """A world for one role: users, a workspace with an agent and tokens, a custom mode, a linked provider.

    Transactional: the requests commit as they would in production (a request that fails in the database must
    not poison the ones after it), and the tables are emptied once the role is done."""
    # The in-process client calls itself `localhost`.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    # Every fuzzed sign-in comes from one address: raise the sign-in budgets for this run only. The agent tokens
    # keep the product's budget, so the long run sees their 429s too.
    settings.CODERAUTH_LOGIN_THROTTLE_RATE = "100000/min"
    settings.CODERAUTH_LOGIN_USERNAME_THROTTLE_RATE = "100000/min"
    cache.clear()

    admin, auditor, member = AdminFactory(), AuditorFactory(), UserFactory(username="member")
    workspace = WorkspaceFactory(owner=member, name="fuzzed")
    agent = AgentFactory(workspace=workspace, name="main")
    CustomModeFactory()
    provider = ExternalAuthProvider.objects.create(id="github", type="github", regex=r"^https://github\.com/")
    external_auth_link_set(user=member, provider=provider, access_token="gho_fuzz", token_extra={})
    spare_agent_token = agent_token_issue(actor=member, agent=agent, name="spare")

    role = request.param
    user = {"admin": admin, "auditor": auditor}.get(role, member)
    if role == "agent":

        def issue():
            issued = agent_token_issue(actor=member, agent=agent, name="fuzz")
            return issued.token.id, issued.plaintext

        fuzz = FuzzRole(role, user, AgentToken, issue=issue)
    else:

        def issue():
            issued = user_token_issue(user=user, name="fuzz")
            return issued.token.id, issued.plaintext

        fuzz = FuzzRole(role, user, UserToken, issue=issue)
    fuzz.token_id, fuzz.plaintext = fuzz.issue()

    spare_user_token = user_token_issue(user=user, name="spare")
    child = None
    if role == "agent":
        principal = agent_principal_resolve(raw_token=fuzz.plaintext)
        child = agent_child_token_issue(principal=principal, name="spare child")
    fuzz.path_values = {
        "workspace_id": [str(workspace.id)],
        "agent_id": [str(agent.id)],
        "name": ["default", "no-user-data", "git-only"],
        "provider_id": ["github"],
        "event_id": [str(pk) for pk in AuditEvent.objects.order_by("id").values_list("id", flat=True)[:3]],
        "token_id": [str(spare_user_token.token.id)],
        "agent_token_id": [str(spare_agent_token.token.id)],
        "child_token_id": [str(child.token.id)] if child else [str(spare_agent_token.token.id)],
    }
    fuzz.body_values = {
        "permission_mode": ["default", "no-user-data", "git-only", "all", None],
        "owner": [member.username],
        "username": [user.username],
        "password": [PASSWORD],
        "current_password": [PASSWORD],
    }
    fuzz.query_values = {
        "id": ["github"],
        "match": ["https://github.com/coder/coder.git"],
        "url": ["https://github.com/coder/coder.git"],
        "format": ["json", "csv", "jsonl"],
    }
    yield fuzz
    cache.clear()


def _sometimes(values_for):
    """A flatmap hook: each known key keeps its generated value or takes one of the real ones."""

    def flatmap(ctx, container):
        if not isinstance(container, dict):
            return st.just(container)
        choices = {key: values_for(ctx, key) for key in container}
        choices = {key: values for key, values in choices.items() if values}
        if not choices:
            return st.just(container)
        swaps = st.fixed_dictionaries(
            {key: st.one_of(st.just(container[key]), st.sampled_from(values)) for key, values in choices.items()}
        )
        return swaps.map(lambda chosen: {**container, **chosen})

    return flatmap


@pytest.fixture
def fuzz_schema(request, fuzz_role):
    """The schema as the application serves it, with hooks that sometimes name the role's real objects.

    Short budget: the WSGI application in-process, the fuzzing phase alone. Long budget: gunicorn over HTTP, with
    the coverage phase too."""
    if request.node.get_closest_marker("reliability") is None:
        config = schemathesis.Config.from_dict({"phases": {"coverage": {"enabled": False}}})
        loaded = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application, config=config)
    else:
        server = AppServer(request.getfixturevalue("tmp_path") / "gunicorn.log")
        request.addfinalizer(server.stop)
        server.wait_ready()
        config = schemathesis.Config.from_dict({"base-url": server.url})
        loaded = schemathesis.openapi.from_url(f"{server.url}{SCHEMA_PATH}", config=config)

    def path_values(ctx, key):
        if key == "token_id":
            path = ctx.operation.path
            if path.startswith("/api/v2/workspaceagents/me/"):
                key = "child_token_id"
            elif path.startswith("/api/v2/workspaceagents/"):
                key = "agent_token_id"
        return fuzz_role.path_values.get(key, [])

    loaded.hook("flatmap_path_parameters")(_sometimes(path_values))
    loaded.hook("flatmap_query")(_sometimes(lambda ctx, key: fuzz_role.query_values.get(key, [])))
    loaded.hook("flatmap_body")(_sometimes(lambda ctx, key: fuzz_role.body_values.get(key, [])))
    return loaded


# gunicorn refuses a request line longer than this (its `limit_request_line`) with its own HTML 400, before
# the application sees the request, as any proxy in front would with its own limit (docs/security.md, "Known
# gaps"). Such requests test the HTTP server, not the application's contract, so the long run does not send them.
GUNICORN_REQUEST_LINE_LIMIT = 4094


def _request_line_length(case) -> int:
    query = urlencode(case.query or {}, doseq=True)
    target = quote(case.formatted_path, safe="/:@!$&'()*+,;=-._~%") + (f"?{query}" if query else "")
    return len(f"{case.method.upper()} {target} HTTP/1.1")


def _run(case, fuzz_role, budget: str) -> None:
    if budget == "long":
        # With room for the client encoding a value slightly differently from this estimate.
        assume(_request_line_length(case) <= GUNICORN_REQUEST_LINE_LIMIT - 256)
    CASES[(budget, fuzz_role.name)] += 1
    case.call_and_validate(headers=fuzz_role.headers(), checks=CHECKS)


FUZZ_SETTINGS = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))


@schema.parametrize()
@settings(max_examples=SHORT_EXAMPLES, **FUZZ_SETTINGS)
def test_whole_schema_conforms_for_every_role(case, fuzz_role):
    """No 5xx, only declared statuses, content types and bodies, and no route that ignores its credentials."""
    _run(case, fuzz_role, "short")


@pytest.mark.reliability
@schema.parametrize()
@settings(max_examples=LONG_EXAMPLES, **FUZZ_SETTINGS)
def test_whole_schema_conforms_for_every_role_long(case, fuzz_role):
    """The same with many more examples per operation."""
    _run(case, fuzz_role, "long")


def _ok_me(self, request):
    return Response({"id": 1, "username": "someone", "roles": ["member"]})


# Each way a route can break its contract, and the failure the checks must report for it.
BREAKAGES = [
    ({"get": lambda self, request: 1 / 0}, ServerError),
    ({"get": lambda self, request: Response({"id": 1, "username": "x", "roles": []}, status=202)}, UndefinedStatusCode),
    ({"get": lambda self, request: HttpResponse("text", content_type="text/plain")}, UndefinedContentType),
    ({"get": lambda self, request: Response({"id": "1", "username": None, "roles": []})}, JsonSchemaError),
    ({"get": _ok_me, "authentication_classes": [], "permission_classes": []}, IgnoredAuth),
]


def test_the_checks_catch_each_way_a_route_can_break_its_contract(request, db, settings, monkeypatch):
    """The fuzzing can fail: GET /users/me broken in each way the checks look for is reported, each time."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]
    # Inside the test's transaction, as Django's test client does: the app must not close the connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    request.addfinalizer(lambda: request_started.connect(close_old_connections))
    request.addfinalizer(lambda: request_finished.connect(close_old_connections))
    operation = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application)["/api/v2/users/me"]["GET"]
    token = user_token_issue(user=UserFactory(), name="fuzz").plaintext
    for replacements, expected in BREAKAGES:
        with monkeypatch.context() as patch:
            for name, value in replacements.items():
                patch.setattr(UserMeApi, name, value)
            with pytest.raises((Failure, FailureGroup)) as caught:
                operation.Case().call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
        failures = caught.value.exceptions if isinstance(caught.value, FailureGroup) else (caught.value,)
        assert any(isinstance(failure, expected) for failure in failures), (expected, failures)


@pytest.mark.django_db
def test_every_operation_declares_the_json_400_of_a_request_refused_before_its_view():
    """Regression (found by the long fuzzing run): a Host header the server does not serve, or a NUL in the URL, is
    refused before any view runs, on every operation; the schema declares that 400 everywhere and the body is JSON,
    the health endpoints included (they answered Django's HTML page)."""
    declared = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path, operations in declared.items():
        url = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
        for method, operation in operations.items():
            assert "400" in operation["responses"], f"{method.upper()} {path}"
            refusals = [getattr(Client(), method)(url, HTTP_HOST="not-served.example")]
            if path.startswith("/api/"):
                refusals.append(getattr(Client(), method)(f"{url}?q=%00"))
            for response in refusals:
                assert response.status_code == 400, (method, path, response.status_code)
                assert response["Content-Type"] == "application/json", (method, path, response.content[:200])
                assert response.json()["detail"]


@pytest.fixture(scope="module", autouse=True)
def _report_case_counts(request):
    """Print how many cases each role ran, past pytest's output capture."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and CASES:
        counts = ", ".join(f"{budget}/{role}: {count}" for (budget, role), count in sorted(CASES.items()))
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nschemathesis cases run: {counts}")
