"""Access-request helpers for templates: the navigation's pending count, durations in words."""

from __future__ import annotations

from datetime import timedelta

from django import template

from agents.selectors.elevation import access_request_pending_count_for

register = template.Library()


@register.simple_tag(takes_context=True)
def pending_access_request_count(context) -> int:
    """Requests the signed-in user may decide that wait for a decision: one query, once per page render."""
    cache = context.render_context
    if "ui_pending_access_requests" not in cache:
        request = context.get("request")
        user = getattr(request, "user", None)
        signed_in = user is not None and user.is_authenticated
        cache["ui_pending_access_requests"] = access_request_pending_count_for(user=user) if signed_in else 0
    return cache["ui_pending_access_requests"]


@register.filter
def duration_text(value: int | timedelta | None) -> str:
    """Seconds (or a timedelta) as "1 h 5 min", "15 min", "40 s": short enough for a table cell."""
    if value is None:
        return ""
    seconds = int(value.total_seconds() if isinstance(value, timedelta) else value)
    seconds = max(seconds, 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours} h" if hours else "", f"{minutes} min" if minutes else ""]
    if not hours and not minutes:
        parts.append(f"{seconds} s")
    return " ".join(part for part in parts if part)
