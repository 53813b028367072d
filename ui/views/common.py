"""Helpers shared by the page views: role gates, service-error handling, the loosening confirm step."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render

from core.exceptions import ApplicationError, NotPermitted
from core.roles import can_read_everything, is_admin


class SignedInView(LoginRequiredMixin):
    """Every page but the login form needs a signed-in user; anonymous visitors go to the login page."""


class ReadersOnlyView(SignedInView):
    """Admins and auditors only (audit log, reports): members get 403."""

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not can_read_everything(request.user):
            raise PermissionDenied("Only admins and auditors may see this page.")
        return super().dispatch(request, *args, **kwargs)


def require_admin(user) -> None:
    if not is_admin(user):
        raise PermissionDenied("Only admins may do this.")


def service_failure(request, error: ApplicationError, *, back: str):
    """Show a refused change as a message; a permission refusal answers 403, bad input goes back."""
    if isinstance(error, NotPermitted):
        return render(request, "403.html", {"message": error.detail, "back": back}, status=403)
    messages.error(request, error.detail)
    return redirect(back)


def confirm_loosening(
    request, *, action: str, title: str, changes: list[dict], fields: list[tuple[str, str]], reason: str, back: str
):
    """The server-side confirmation step: a loosening is only made when re-posted with confirm_loosen and a reason.

    `changes` are dicts with `target`, `from`, `to` and `added` (the scopes the change grants).
    """
    error = "Loosening needs a reason." if request.POST.get("confirm_loosen") and not reason else ""
    context = {
        "action": action,
        "title": title,
        "changes": changes,
        "fields": fields,
        "reason": reason,
        "error": error,
        "back": back,
    }
    return render(request, "ui/confirm_loosen.html", context, status=400 if error else 200)
