"""Every page for every role: status codes and what each role is shown."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from agents.models import AppStatus
from audit.models import AuditEvent
from policies.services import agent_access_denied_record
from tests.helpers.factories import AgentFactory, WorkspaceFactory, mode
from tests.helpers.pages import count_queries

pytestmark = pytest.mark.django_db

ROLES = ("admin", "auditor", "member", "anonymous")


@pytest.fixture
def pages(workspace, agent, admin_user):
    from agents.services.workspaces import workspace_mode_set

    workspace_mode_set(actor=admin_user, workspace=workspace, permission_mode=mode("no-user-data"), reason="setup")
    event = AuditEvent.objects.filter(workspace_id=workspace.id).latest("id")
    return {
        "home": reverse("ui:home"),
        "workspace-list": reverse("ui:workspace-list"),
        "workspace-detail": reverse("ui:workspace-detail", args=[workspace.pk]),
        "modes": reverse("ui:modes"),
        "audit": reverse("ui:audit"),
        "audit-detail": reverse("ui:audit-detail", args=[event.id]),
        "reports": reverse("ui:reports"),
    }


EXPECTED = {
    # page: {role: status}
    "home": {"admin": 200, "auditor": 200, "member": 200, "anonymous": 200},
    "workspace-list": {"admin": 200, "auditor": 200, "member": 200, "anonymous": 302},
    "workspace-detail": {"admin": 200, "auditor": 200, "member": 200, "anonymous": 302},
    "modes": {"admin": 200, "auditor": 200, "member": 200, "anonymous": 302},
    "audit": {"admin": 200, "auditor": 200, "member": 403, "anonymous": 302},
    "audit-detail": {"admin": 200, "auditor": 200, "member": 403, "anonymous": 302},
    "reports": {"admin": 200, "auditor": 200, "member": 403, "anonymous": 302},
}


@pytest.mark.parametrize("page", EXPECTED)
@pytest.mark.parametrize("role", ROLES)
def test_page_status_per_role(page, role, pages, web_for):
    response = web_for(role).get(pages[page])
    assert response.status_code == EXPECTED[page][role], response.content[:500]
    if response.status_code == 302:
        assert response["Location"].startswith(reverse("ui:login"))
    if response.status_code == 200:
        assert response["Content-Type"].startswith("text/html")


def test_anonymous_home_is_the_sign_in_form(anonymous_web):
    body = anonymous_web.get(reverse("ui:home")).content.decode()
    assert '<label for="id_username">Username</label>' in body
    assert '<label for="id_password">Password</label>' in body
    assert "csrfmiddlewaretoken" in body
    assert "Dashboard" not in body


def test_sign_in_and_out_with_the_form(anonymous_web, member):
    response = anonymous_web.post(
        reverse("ui:login"), {"username": member.username, "password": "correct horse battery staple"}
    )
    assert response.status_code == 302
    assert anonymous_web.get(reverse("ui:workspace-list")).status_code == 200
    assert AuditEvent.objects.filter(action="user.login", actor=member.username, details__method="web").exists()
    anonymous_web.post(reverse("ui:logout"))
    assert anonymous_web.get(reverse("ui:workspace-list")).status_code == 302


def test_failed_sign_in_is_audited_and_says_nothing_specific(anonymous_web, member):
    response = anonymous_web.post(reverse("ui:login"), {"username": member.username, "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    event = AuditEvent.objects.get(action="user.login_failed", actor=member.username)
    assert "wrong" not in str(event.details)


def test_logout_by_get_is_refused(member_web):
    """A link or image cannot sign someone out: logout is POST only (with CSRF)."""
    assert member_web.get(reverse("ui:logout")).status_code == 405


def test_member_sees_only_own_workspaces(member_web, workspace, other_member):
    others = WorkspaceFactory(owner=other_member, name="someone-elses")
    body = member_web.get(reverse("ui:workspace-list")).content.decode()
    assert workspace.name in body
    assert "someone-elses" not in body
    assert member_web.get(reverse("ui:workspace-detail", args=[others.pk])).status_code == 404


def test_member_dashboard_counts_only_own(member_web, workspace, agent, other_member):
    other = WorkspaceFactory(owner=other_member, name="not-mine")
    AgentFactory(workspace=other, name="not-my-agent")
    body = member_web.get(reverse("ui:home")).content.decode()
    assert agent.name in body
    assert "not-my-agent" not in body


def test_admin_sees_every_workspace(admin_web, workspace, other_member):
    WorkspaceFactory(owner=other_member, name="someone-elses")
    body = admin_web.get(reverse("ui:workspace-list")).content.decode()
    assert workspace.name in body and "someone-elses" in body


def test_workspace_search_and_mode_filter(admin_web, member, other_member):
    WorkspaceFactory(owner=member, name="alpha-build")
    WorkspaceFactory(owner=other_member, name="beta-docs", permission_mode=mode("no-user-data"))
    body = admin_web.get(reverse("ui:workspace-list"), {"q": "alpha"}).content.decode()
    assert "alpha-build" in body and "beta-docs" not in body
    body = admin_web.get(reverse("ui:workspace-list"), {"q": other_member.username}).content.decode()
    assert "beta-docs" in body and "alpha-build" not in body
    body = admin_web.get(reverse("ui:workspace-list"), {"mode": "no-user-data"}).content.decode()
    assert "beta-docs" in body and "alpha-build" not in body


def test_workspace_list_paginates(admin_web, member):
    for index in range(30):
        WorkspaceFactory(owner=member, name=f"ws-{index:02d}")
    first = admin_web.get(reverse("ui:workspace-list")).content.decode()
    second = admin_web.get(reverse("ui:workspace-list"), {"page": 2}).content.decode()
    assert "ws-00" in first and "ws-29" not in first
    assert "ws-29" in second and "ws-00" not in second
    assert "Page 2 of 2" in second


def test_workspace_list_query_count_does_not_grow_with_rows(admin_web, member):
    """10 or 500 workspaces (each with an agent) cost the same number of SQL queries."""
    url = reverse("ui:workspace-list")
    for index in range(10):
        AgentFactory(workspace=WorkspaceFactory(owner=member, name=f"few-{index}"))
    with_ten = count_queries(admin_web, url)
    workspaces = WorkspaceFactory.create_batch(490, owner=member)
    for workspace in workspaces[:100]:
        AgentFactory(workspace=workspace)
    with_five_hundred = count_queries(admin_web, url)
    assert with_ten == with_five_hundred


def test_dashboard_query_count_does_not_grow_with_rows(admin_web, member):
    url = reverse("ui:home")
    for index in range(3):
        agent = AgentFactory(workspace=WorkspaceFactory(owner=member, name=f"d-{index}"))
        AppStatus.objects.create(agent=agent, app_slug="coder", state="working", message="busy")
    few = count_queries(admin_web, url)
    for index in range(40):
        agent = AgentFactory(workspace=WorkspaceFactory(owner=member, name=f"e-{index}"))
        AppStatus.objects.create(agent=agent, app_slug="coder", state="idle", message="done")
    assert count_queries(admin_web, url) == few


def test_dashboard_shows_modes_user_data_agents_denials_and_statuses(admin_web, workspace, agent):
    from policies.principals import AgentPrincipal  # noqa: F401  (the shape the record function reads)

    AppStatus.objects.create(
        agent=agent, app_slug="coder", state="failure", message="tests failed", uri="https://ci.example/1"
    )

    class Principal:
        agent_id = agent.id
        workspace_id = workspace.id
        mode_name = "no-user-data"
        token_id = "00000000-0000-0000-0000-000000000000"
        token_scopes = frozenset({"agent:connect", "agent:gitsshkey"})

    agent_access_denied_record(
        principal=Principal, route="gitsshkey", method="GET", scope="agent:gitsshkey", denied_by="permission_mode"
    )
    body = admin_web.get(reverse("ui:home")).content.decode()
    assert "Agents that still allow user data" in body
    assert agent.name in body
    assert "tests failed" in body and "https://ci.example/1" in body
    assert "state-failure" in body
    assert "gitsshkey" in body
    # Relative time with the exact time on hover.
    assert "just now" in body and 'title="20' in body and " UTC" in body


def test_auditor_sees_everything_with_disabled_controls(auditor_web, workspace, agent, agent_token):
    body = auditor_web.get(reverse("ui:workspace-detail", args=[workspace.pk])).content.decode()
    assert agent.name in body
    assert "read-only" in body
    assert '<button type="submit" disabled>Save</button>' in body
    assert 'name="permission_mode" disabled' in body
    assert "Issue token" not in body
    listing = auditor_web.get(reverse("ui:workspace-list")).content.decode()
    assert "Apply to selected</button>" in listing and "disabled>Apply to selected" in listing


def test_auditor_who_owns_a_workspace_sees_it_read_only(auditor_user, auditor_web):
    """Ownership does not outrank the read-only role on the page either: no controls that would only be refused."""
    owned = WorkspaceFactory(owner=auditor_user)
    agent = AgentFactory(workspace=owned)
    body = auditor_web.get(reverse("ui:workspace-detail", args=[owned.pk])).content.decode()
    assert agent.name in body
    assert '<button type="submit" disabled>Save</button>' in body
    assert "Issue token" not in body


def test_member_sees_only_tightening_choices(member_web, workspace):
    workspace.permission_mode = mode("no-user-data")
    workspace.save()
    body = member_web.get(reverse("ui:workspace-detail", args=[workspace.pk])).content.decode()
    assert 'value="no-user-data"' in body
    assert 'value="default"' not in body


def test_admin_sees_every_choice(admin_web, workspace):
    workspace.permission_mode = mode("no-user-data")
    workspace.save()
    body = admin_web.get(reverse("ui:workspace-detail", args=[workspace.pk])).content.decode()
    assert 'value="default"' in body and 'value="no-user-data"' in body


def test_workspace_page_lists_tokens_and_events(admin_web, workspace, agent, agent_token):
    body = admin_web.get(reverse("ui:workspace-detail", args=[workspace.pk])).content.decode()
    assert ">Revoke</button>" in body
    assert "agent_token.issued" in body
    assert agent_token not in body, "the token itself is shown only once, when issued"


def test_sign_in_form_is_throttled_like_the_api_login(anonymous_web, member):
    """Password guessing through the web form is as slow as through POST /api/v2/users/login."""
    cache.clear()  # counters live in the database cache, which transactional tests elsewhere do not flush
    url = reverse("ui:login")
    statuses = [
        anonymous_web.post(url, {"username": member.username, "password": f"guess-{n}"}).status_code for n in range(10)
    ]
    assert statuses == [200] * 10
    response = anonymous_web.post(url, {"username": member.username, "password": "correct horse battery staple"})
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in anonymous_web.session


def test_audit_log_names_agent_actors_instead_of_their_ids(auditor_web, workspace, agent, agent_token):
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {agent_token}")
    assert reader.get(reverse("agents:agent-gitsshkey")).status_code == 200
    event = AuditEvent.objects.filter(action="agent.user_data_accessed").get()
    listing = auditor_web.get(reverse("ui:audit")).content.decode()
    assert f"agent: {agent.name} in {workspace.name}" in listing
    detail = auditor_web.get(reverse("ui:audit-detail", args=[event.id])).content.decode()
    assert f"{agent.name} in {workspace.name}" in detail
