"""Small presentation helpers: relative times with the exact time on hover, role checks, query strings."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince, timeuntil

from policies.roles import is_admin, user_role
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


@register.filter
def mode_badge(mode):
    """A mode name as a badge: amber when it lets agents read user data, green when it does not."""
    if mode is None:
        return mark_safe('<span class="badge">—</span>')
    name = getattr(mode, "name", mode)
    scopes = getattr(mode, "scopes", None)
    if scopes is None:
        user_data = {"default": True, "no-user-data": False}.get(name)
    else:
        user_data = bool(set(scopes) & USER_DATA_SCOPES)
    css = {True: "badge badge-warn", False: "badge badge-safe", None: "badge"}[user_data]
    title = "Agents may read the owner's user data" if user_data else "No access to user data"
    if user_data is None:
        title = "Custom mode"
    return format_html('<span class="{}" title="{}">{}</span>', css, title, name)


@register.filter
def state_badge(state: str):
    return format_html('<span class="state state-{}">{}</span>', state, state)
