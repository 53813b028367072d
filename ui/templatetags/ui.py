"""Small presentation helpers: relative times with the exact time on hover, role checks, query strings."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince, timeuntil

from core.roles import is_admin, user_role
from policies.models import PermissionMode
from policies.scopes import USER_DATA_SCOPES

register = template.Library()


@register.filter
def reltime(value: datetime | None):
    """`<time>` reading "3 minutes ago" (or "in 29 days") with the exact UTC time in its title."""
    if not value:
        return mark_safe('<span class="muted">never</span>')
    now = timezone.now()
    if value <= now:
        text = "just now" if (now - value).total_seconds() < 60 else f"{timesince(value, now, depth=1)} ago"
    else:
        text = f"in {timeuntil(value, now, depth=1)}"
    exact = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return format_html('<time datetime="{}" title="{}">{}</time>', value.isoformat(), exact, text)


@register.filter
def role(user) -> str:
    return user_role(user)


@register.filter
def admin(user) -> bool:
    return is_admin(user)


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some keys replaced (None drops a key): for pagination links."""
    query = context["request"].GET.copy()
    for key, value in changes.items():
        query.pop(key, None)
        if value not in (None, ""):
            query[key] = value
    encoded = query.urlencode()
    return f"?{encoded}" if encoded else "?"


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if mapping else None


def _modes_by_name(context) -> dict:
    """All modes, loaded once per page render: a badge given only a name still knows the mode's scopes."""
    cache = context.render_context
    if "ui_modes_by_name" not in cache:
        cache["ui_modes_by_name"] = {mode.name: mode for mode in PermissionMode.objects.all()}
    return cache["ui_modes_by_name"]


@register.simple_tag(takes_context=True)
def mode_badge(context, mode):
    """A mode as a badge: amber when it lets agents read user data, green when it does not."""
    if not mode:
        return mark_safe('<span class="badge">—</span>')
    if isinstance(mode, str):
        mode = _modes_by_name(context).get(mode, mode)
    name = getattr(mode, "name", mode)
    scopes = getattr(mode, "scopes", None)
    if scopes is None:
        return format_html('<span class="badge" title="Unknown or deleted mode">{}</span>', name)
    if set(scopes) & USER_DATA_SCOPES:
        return format_html(
            '<span class="badge badge-warn" title="Agents may read the owner\'s user data">{}</span>', name
        )
    return format_html('<span class="badge badge-safe" title="No access to user data">{}</span>', name)


@register.filter
def state_badge(state: str):
    return format_html('<span class="state state-{}">{}</span>', state, state)


@register.filter
def short_route(route: str) -> str:
    """`/api/v2/workspaceagents/me/gitsshkey` reads as `…/me/gitsshkey` in narrow tables."""
    prefix = "/api/v2/workspaceagents"
    return f"…{route[len(prefix) :]}" if route and route.startswith(prefix) else route
