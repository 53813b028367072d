"""The route -> scope registry, read off the URL configuration so it can never drift from it."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

from agents.authentication import AgentTokenAuthentication


@dataclass(frozen=True)
class RouteEntry:
    route: str
    view_name: str
    view_class: type
    agent_reachable: bool
    required_scope: str | None


def _walk(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def route_entries() -> list[RouteEntry]:
    """Every URL pattern backed by a class-based view, with whether an agent token can reach it."""
    entries = []
    for route, pattern in _walk(get_resolver().url_patterns):
        view_class = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
        if view_class is None:
            continue
        authenticators = getattr(view_class, "authentication_classes", ()) or ()
        agent_reachable = any(issubclass(auth, AgentTokenAuthentication) for auth in authenticators)
        entries.append(
            RouteEntry(
                route=route,
                view_name=pattern.name or "",
                view_class=view_class,
                agent_reachable=agent_reachable,
                required_scope=getattr(view_class, "required_scope", None),
            )
        )
    return entries
