"""Every list of the API is a keyset page: `?page_size=&cursor=` → {"results": [...], "next": <absolute URL or null>}.

Across the lists: each walks every item once, costs the same number of queries for 3 items as for 30, refuses
bad `page_size` and `cursor` with a 400 naming them, and documents both in the OpenAPI schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

from agents.models import ExternalAuthProvider
from agents.services.tokens import agent_token_issue
from agents.services.users import user_token_issue
from tests.helpers.factories import AgentFactory, CustomModeFactory, WorkspaceFactory
from tests.helpers.responses import all_results, assert_status, check_status, page_results

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class ListRoute:
    """A paged list: who reads it, its URL, and how to add `count` more items to it."""

    name: str
    client: str
    key: str

    def url(self, request) -> str:
        if self.name == "agents:agent-token-list":
            return reverse(self.name, args=[request.getfixturevalue("agent").pk])
        return reverse(self.name)

    def add(self, request, count: int) -> None:
        member = request.getfixturevalue("member")
        start = self.count_added(request)
        for number in range(start, start + count):
            if self.name == "agents:workspace-list":
                WorkspaceFactory(owner=member, name=f"ws-{number:03}")
            elif self.name == "agents:agent-token-list":
                agent_token_issue(actor=member, agent=request.getfixturevalue("agent"), name=f"t{number}")
            elif self.name == "agents:user-token-list":
                user_token_issue(user=member, name=f"t{number}")
            elif self.name == "agents:external-auth-providers":
                ExternalAuthProvider.objects.create(id=f"p{number:03}", type="github", regex="github")
            elif self.name == "policies:permission-mode-list":
                CustomModeFactory(name=f"mode-{number:03}", scopes=["agent:connect"])
            else:  # the permissions report: one row per agent
                AgentFactory(workspace=WorkspaceFactory(owner=member, name=f"ws-{number:03}"))
        request.node.added = start + count

    @staticmethod
    def count_added(request) -> int:
        return getattr(request.node, "added", 0)


ROUTES = [
    ListRoute("agents:workspace-list", "member_client", "id"),
    ListRoute("agents:agent-token-list", "member_client", "id"),
    ListRoute("agents:user-token-list", "member_client", "id"),
    ListRoute("agents:external-auth-providers", "member_client", "id"),
    ListRoute("policies:permission-mode-list", "member_client", "name"),
    ListRoute("agents:report-permissions", "auditor_client", "agent_id"),
]
ROUTE_IDS = [route.name.split(":")[1] for route in ROUTES]


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_pages_walk_every_item_once_in_the_order_of_one_big_page(request, route, settings):
    settings.CODERAUTH_MAX_PAGE_SIZE = 100
    route.add(request, 7)
    client, url = request.getfixturevalue(route.client), route.url(request)
    whole = page_results(client.get(url, {"page_size": 100}))
    assert len(whole) >= 7
    walked = all_results(client, url, {"page_size": 2})
    assert [item[route.key] for item in walked] == [item[route.key] for item in whole]


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_a_list_costs_the_same_queries_for_3_items_as_for_30(request, route, django_assert_num_queries):
    """One page of 30 items costs what one of 3 does: no query per item, no COUNT, no OFFSET."""
    client, url = request.getfixturevalue(route.client), route.url(request)
    # The first request also stamps the client token's last_used_at; count the steady state.
    assert_status(client.get(url), 200)
    route.add(request, 3)
    with CaptureQueriesContext(connection) as small:
        assert len(page_results(client.get(url))) >= 3
    route.add(request, 27)
    with django_assert_num_queries(len(small)):
        assert len(page_results(client.get(url))) >= 30


def test_the_default_page_size_is_the_setting_and_next_leads_on(request, member_client, settings):
    settings.CODERAUTH_PAGE_SIZE = 2
    ROUTES[0].add(request, 3)
    response = member_client.get(reverse("agents:workspace-list"))
    assert len(page_results(response)) == 2
    assert len(page_results(member_client.get(response.json()["next"]))) == 1


def test_next_is_absolute_and_keeps_the_other_parameters(request, auditor_client):
    ROUTES[-1].add(request, 2)
    response = auditor_client.get(reverse("agents:report-permissions"), {"unused_days": 7, "page_size": 1})
    next_url = response.json()["next"]
    assert next_url.startswith("http://testserver/api/v2/reports/permissions?")
    query = parse_qs(urlsplit(next_url).query)
    assert query["unused_days"] == ["7"] and query["page_size"] == ["1"] and query["cursor"]
    last = auditor_client.get(next_url)
    assert len(page_results(last)) == 1 and last.json()["next"] is None


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("page_size", ["0", "-1", "501", "abc", "1.5", "9" * 30])
def test_a_page_size_out_of_bounds_is_a_400_naming_page_size(request, route, page_size):
    response = request.getfixturevalue(route.client).get(route.url(request), {"page_size": page_size})
    assert_status(response, 400)
    assert response.json()["page_size"] == ["Must be an integer between 1 and 500."]


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
def test_a_forged_or_foreign_cursor_is_a_400_naming_cursor(request, route):
    """A cursor is opaque and signed: an edited one, or one taken from another list, is refused, never a 500."""
    route.add(request, 3)
    client, url = request.getfixturevalue(route.client), route.url(request)
    cursor = parse_qs(urlsplit(client.get(url, {"page_size": 1}).json()["next"]).query)["cursor"][0]
    other = ROUTES[3] if route is not ROUTES[3] else ROUTES[0]
    other.add(request, 2)
    other_client = request.getfixturevalue(other.client)
    foreign = parse_qs(urlsplit(other_client.get(other.url(request), {"page_size": 1}).json()["next"]).query)
    for bad in (cursor[:-2], cursor.replace(":", "x"), "x" * 2000, foreign["cursor"][0]):
        response = client.get(url, {"cursor": bad})
        assert_status(response, 400)
        assert "cursor" in response.json()


def test_a_cursor_never_widens_what_a_member_sees(member, other_member, admin_client, member_client):
    """Paging is applied inside the principal's view: an admin's cursor walks a member through their own only."""
    for number in range(3):
        WorkspaceFactory(owner=member, name=f"mine-{number}")
        WorkspaceFactory(owner=other_member, name=f"theirs-{number}")
    admin_page = admin_client.get(reverse("agents:workspace-list"), {"page_size": 1})
    assert_status(admin_page, 200)
    seen: list[dict[str, Any]] = []
    response = member_client.get(reverse("agents:workspace-list"), {"page_size": 1})
    while True:
        seen.extend(page_results(response))
        if response.json()["next"] is None:
            break
        response = member_client.get(response.json()["next"])
    assert {item["owner"] for item in seen} == {member.username}
    assert len(seen) == 3


def test_the_csv_report_stays_one_whole_file(request, auditor_client):
    ROUTES[-1].add(request, 3)
    response = auditor_client.get(reverse("agents:report-permissions"), {"format": "csv", "page_size": 1})
    assert len(check_status(response, 200).decode().strip().splitlines()) == 1 + 3


def test_every_list_documents_its_paging(db):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = {
        "/api/v2/workspaces",
        "/api/v2/workspaceagents/{agent_id}/tokens",
        "/api/v2/users/me/tokens",
        "/api/v2/external-auth/providers",
        "/api/v2/permission-modes",
        "/api/v2/reports/permissions",
        "/api/v2/audit",
    }
    for path in paths:
        operation = schema["paths"][path]["get"]
        assert {"page_size", "cursor"} <= {parameter["name"] for parameter in operation["parameters"]}, path
        body = operation["responses"]["200"]["content"]["application/json"]["schema"]
        component = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]
        assert set(component["properties"]) == {"results", "next"}, path
        assert component["properties"]["results"]["type"] == "array", path


def test_no_route_answers_a_bare_array(db):
    """A new list must be paged too: no JSON 200 of the API is an unbounded array."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    bare = [
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict)
        and operation.get("responses", {})
        .get("200", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema", {})
        .get("type")
        == "array"
    ]
    assert bare == []
