"""Deny by default: every route an agent token can reach declares its scope, and forgetting fails loudly."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, URLResolver, get_resolver, path, resolve
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from agents.authentication import AgentTokenAuthentication, UserSessionAuthentication, UserTokenAuthentication
from policies.permissions import HasAgentScope

KNOWN_SCOPES = {"agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth", "agent:any-valid-token"}


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def _api_views():
    """Every (route, view class) of a DRF view in the URL configuration, walked independently of the registry."""
    for route, pattern in _walk(get_resolver().url_patterns):
        view_class = getattr(pattern.callback, "cls", None)
        if view_class is not None and issubclass(view_class, APIView):
            yield route, view_class


def _authenticators(view_class) -> list[type]:
    return list(view_class.authentication_classes)


def test_every_agent_reachable_view_declares_a_known_scope():
    """A view that accepts agent tokens without declaring a scope would be reachable by any agent token."""
    offenders = []
    agent_routes = []
    for route, view_class in _api_views():
        if any(issubclass(auth, AgentTokenAuthentication) for auth in _authenticators(view_class)):
            agent_routes.append(route)
            if getattr(view_class, "required_scope", None) not in KNOWN_SCOPES:
                offenders.append(f"{route} ({view_class.__name__})")
            if HasAgentScope not in view_class.permission_classes:
                offenders.append(f"{route} ({view_class.__name__}) lacks HasAgentScope")
    assert not offenders, f"agent routes without a declared scope: {offenders}"
    assert len(agent_routes) >= 8, agent_routes


def test_agent_views_accept_only_the_agent_flow():
    """User sessions and user tokens must never authenticate on an agent route (separate flows)."""
    for route, view_class in _api_views():
        authenticators = _authenticators(view_class)
        if any(issubclass(auth, AgentTokenAuthentication) for auth in authenticators):
            assert authenticators == [AgentTokenAuthentication], route


def test_user_views_never_accept_agent_tokens():
    for route, view_class in _api_views():
        authenticators = _authenticators(view_class)
        if AgentTokenAuthentication in authenticators:
            continue
        assert set(authenticators) <= {UserTokenAuthentication, UserSessionAuthentication}, route


def test_registry_agrees_with_the_url_walk():
    from agents.registry import route_entries

    walked = {
        route: getattr(view_class, "required_scope", None)
        for route, view_class in _api_views()
        if AgentTokenAuthentication in _authenticators(view_class)
    }
    assert {entry.route: entry.required_scope for entry in route_entries() if entry.agent_reachable} == walked


# A value each path converter accepts, to turn a route back into a path.
_SAMPLE_VALUES = {"uuid": "00000000-0000-4000-8000-000000000000", "str": "sample", "int": "1"}


def test_no_api_route_matches_another_routes_paths():
    """No /api/v2/ pattern matches another's paths, so their order (the agent routes first, being most of the
    traffic) decides only how soon the resolver finds a route, never which view answers it."""
    routes = {
        route: (path(route, pattern.callback), pattern.callback)
        for route, pattern in _walk(get_resolver().url_patterns)
        if route.startswith("api/v2/")
    }
    for route, (_alone, view) in routes.items():
        sample = re.sub(r"<(\w+):\w+>", lambda converter: _SAMPLE_VALUES[converter.group(1)], route)
        assert [other for other, (alone, _view) in routes.items() if alone.resolve(sample)] == [route], sample
        assert (resolve("/" + sample).route, resolve("/" + sample).func) == (route, view), sample
    assert {"api/v2/workspaceagents/me/manifest", "api/v2/workspaceagents/<uuid:agent_id>"} <= set(routes)


class _ForgotToDeclareApi(APIView):
    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [HasAgentScope]

    def get(self, request):
        return Response({"reached": True})


class _MisspelledScopeApi(_ForgotToDeclareApi):
    required_scope = "agent:gitsshkeys"


@pytest.mark.parametrize("view_class", [_ForgotToDeclareApi, _MisspelledScopeApi])
def test_view_with_has_agent_scope_but_no_valid_scope_raises_improperly_configured(view_class):
    """A view that forgets its scope must fail loudly, never fall through to 'allowed' (DOT's TokenHasScope)."""
    request = APIRequestFactory().get("/api/v2/throwaway")
    force_authenticate(request, user=object(), token=object())

    with pytest.raises(ImproperlyConfigured):
        view_class.as_view()(request)


def test_system_check_passes_on_the_real_url_configuration():
    from agents.checks import check_agent_routes_declare_scopes

    assert check_agent_routes_declare_scopes() == []


def test_system_check_refuses_an_agent_route_without_a_scope(monkeypatch):
    """Deny by default at start-up: `manage.py check`/`runserver`/`migrate` stop on an undeclared agent route."""
    from agents.apis.agent import AgentManifestApi
    from agents.checks import check_agent_routes_declare_scopes

    monkeypatch.setattr(AgentManifestApi, "required_scope", None)
    errors = check_agent_routes_declare_scopes()
    assert [error.id for error in errors] == ["coderauth.E001"]
    assert "AgentManifestApi" in errors[0].msg


@pytest.mark.django_db
def test_system_check_refuses_an_unknown_default_permission_mode(settings):
    from policies.checks import check_default_permission_mode_exists

    assert check_default_permission_mode_exists(databases=["default"]) == []
    settings.CODERAUTH_DEFAULT_PERMISSION_MODE = "no-user-dta"
    errors = check_default_permission_mode_exists(databases=["default"])
    assert [error.id for error in errors] == ["coderauth.E003"]
    assert "no-user-dta" in errors[0].msg


@pytest.mark.django_db
def test_unknown_default_mode_is_a_server_error_not_the_clients_400(settings, member_client):
    """Regression: a typo in CODERAUTH_DEFAULT_PERMISSION_MODE made every workspace creation a 400 that blamed
    the request's permission_mode field."""
    settings.CODERAUTH_DEFAULT_PERMISSION_MODE = "no-user-dta"
    member_client.raise_request_exception = False
    response = member_client.post("/api/v2/workspaces", {"name": "ws"}, format="json")
    assert response.status_code == 500
    assert response.json()["detail"] == "Internal server error."
    assert "permission_mode" not in response.json()
