"""HasAgentScope (token scopes ∩ effective mode) and the role rules, without HTTP."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from rest_framework import exceptions

from core.roles import is_admin, is_auditor, user_role
from policies.permissions import AgentScopeDenied, HasAgentScope
from tests.helpers.factories import AdminFactory, AuditorFactory, UserFactory


def _principal(token_scopes, mode_scopes, mode_name="custom"):
    from policies.principals import AgentPrincipal

    return AgentPrincipal(
        token_id=uuid.uuid4(),
        token_hint="cda_…abcd",
        token_scopes=frozenset(token_scopes),
        token_expires_at=timezone.now() + timedelta(hours=1),
        parent_id=None,
        agent_id=uuid.uuid4(),
        agent_name="a",
        workspace_id=uuid.uuid4(),
        workspace_name="w",
        owner_id=1,
        owner_username="u",
        mode_name=mode_name,
        mode_scopes=frozenset(mode_scopes),
    )


class _View:
    def __init__(self, scope):
        self.required_scope = scope


class _Request:
    path = "/api/v2/workspaceagents/me/gitsshkey"
    method = "GET"

    def __init__(self, auth):
        self.auth = auth


def test_allowed_is_the_intersection_of_token_and_mode():
    principal = _principal({"agent:connect", "agent:gitsshkey"}, {"agent:connect", "agent:report"})
    assert principal.allowed_scopes == {"agent:connect"}
    assert HasAgentScope().has_permission(_Request(principal), _View("agent:connect"))


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("token_scopes", "mode_scopes"),
    [
        ({"agent:connect"}, {"agent:connect", "agent:gitsshkey"}),  # the mode allows it, the token does not
        ({"agent:connect", "agent:gitsshkey"}, {"agent:connect"}),  # the token holds it, the mode does not
    ],
)
def test_scope_missing_from_either_side_is_denied_with_a_named_body(token_scopes, mode_scopes):
    principal = _principal(token_scopes, mode_scopes, mode_name="tight")
    with pytest.raises(AgentScopeDenied) as denied:
        HasAgentScope().has_permission(_Request(principal), _View("agent:gitsshkey"))
    assert denied.value.status_code == 403
    assert denied.value.detail["required_scope"] == "agent:gitsshkey"
    assert denied.value.detail["permission_mode"] == "tight"


@pytest.mark.parametrize("auth", [None, object(), "cdu_token"])
def test_anything_but_an_agent_principal_is_not_authenticated(auth):
    with pytest.raises(exceptions.NotAuthenticated):
        HasAgentScope().has_permission(_Request(auth), _View("agent:connect"))


def test_any_valid_token_routes_pass_for_every_agent_principal():
    principal = _principal({"agent:connect"}, {"agent:connect"})
    assert HasAgentScope().has_permission(_Request(principal), _View("agent:any-valid-token"))


@pytest.mark.django_db
def test_roles_admin_wins_over_auditor():
    both = AuditorFactory()
    both.groups.add(Group.objects.get(name="admin"))
    assert user_role(UserFactory()) == "member"
    assert user_role(AuditorFactory()) == "auditor"
    assert user_role(AdminFactory()) == "admin"
    assert user_role(both) == "admin"
    assert not is_auditor(both)
    assert is_admin(UserFactory(is_superuser=True))
