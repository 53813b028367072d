"""Access requests (just-in-time elevation): the pending queue with Approve and Deny, the history, Revoke.

The pages call agents/services/elevation.py and agents/selectors/elevation.py; who may decide is the
selector's `access_request_may_decide`, and the services check it again whatever the form sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from agents.models import AccessRequest
from agents.selectors.elevation import (
    STATES,
    access_request_get_for,
    access_request_may_decide,
    access_request_page_for,
)
from agents.services.elevation import (
    access_request_approve,
    access_request_deny,
    access_request_revoke,
    access_request_state,
    access_request_time_left,
)
from core.exceptions import ApplicationError, ObjectNotFound
from ui.forms import AccessRequestApproveForm, AccessRequestDecisionForm, access_duration_choices
from ui.templatetags.elevation import duration_text
from ui.views.common import SignedInView, service_failure

PAGE_SIZE = 50
FILTER_KEYS = ("state", "workspace", "agent")


def _rows(user, requests) -> list[dict]:
    """Each request with what the page shows beside it: its read state, time left, whether this user may decide."""
    return [
        {
            "request": request,
            "state": access_request_state(request),
            "time_left": access_request_time_left(request),
            "may_decide": access_request_may_decide(user=user, access_request=request),
            "durations": access_duration_choices(request.duration_seconds),
        }
        for request in requests
    ]


def _uuid_or_none(value: str, *, label: str, errors: list[str]):
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        errors.append(f"{label}: not a valid id.")
        return None


class AccessRequestQueueView(SignedInView, TemplateView):
    """The pending requests this user may see, newest first: the queue approvers work from."""

    template_name = "ui/access_requests.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        requests, next_cursor = [], None
        try:
            page = access_request_page_for(
                user=user,
                state=AccessRequest.PENDING,
                cursor=self.request.GET.get("cursor") or None,
                page_size=PAGE_SIZE,
            )
            requests, next_cursor = page.items, page.next_cursor
        except ApplicationError as error:
            messages.error(self.request, error.detail)
        return {
            **super().get_context_data(**kwargs),
            "rows": _rows(user, requests),
            "next_cursor": next_cursor,
            "is_first_page": not self.request.GET.get("cursor"),
        }


class AccessRequestHistoryView(SignedInView, TemplateView):
    """Every request this user may see, any state, filtered by state, workspace and agent, keyset-paginated."""

    template_name = "ui/access_requests_history.html"

    def get_context_data(self, **kwargs):
        user = self.request.user
        params = self.request.GET
        values = {key: params.get(key, "").strip() for key in FILTER_KEYS}
        errors: list[str] = []
        state = values["state"] or None
        if state and state not in STATES:
            errors.append(f"State: choose one of {', '.join(STATES)}.")
        workspace_id = _uuid_or_none(values["workspace"], label="Workspace id", errors=errors)
        agent_id = _uuid_or_none(values["agent"], label="Agent id", errors=errors)
        requests, next_cursor = [], None
        if not errors:
            try:
                page = access_request_page_for(
                    user=user,
                    state=state,
                    workspace_id=workspace_id,
                    agent_id=agent_id,
                    cursor=params.get("cursor") or None,
                    page_size=PAGE_SIZE,
                )
                requests, next_cursor = page.items, page.next_cursor
            except ApplicationError as error:
                errors.append(error.detail)
        for error in errors:
            messages.error(self.request, error)
        return {
            **super().get_context_data(**kwargs),
            "rows": _rows(user, requests),
            "next_cursor": next_cursor,
            "is_first_page": not params.get("cursor"),
            "states": STATES,
            "values": values,
            "error": bool(errors),
        }


def _approved(decided: AccessRequest) -> str:
    granted = duration_text(decided.expires_at - decided.decided_at)
    return f"Approved: {decided.agent.name} may use {', '.join(decided.scopes)} for {granted}."


def _denied(decided: AccessRequest) -> str:
    return f"Denied {decided.agent.name}'s request for {', '.join(decided.scopes)}."


def _revoked(decided: AccessRequest) -> str:
    return f"Revoked {decided.agent.name}'s grant of {', '.join(decided.scopes)}: its next request is refused them."


def _decide(request, *, back: str, action, form_class, done: Callable[[AccessRequest], str], **extra):
    """Parse the form, call the service; a refusal is a message (409, 400) or the 403 page, never a 500."""
    form = form_class(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else field
            messages.error(request, f"{label}: {errors[0]}")
        return redirect(back)
    arguments = {"reason": form.cleaned_data["reason"], **extra}
    if "duration_seconds" in form.cleaned_data:
        arguments["duration_seconds"] = form.cleaned_data["duration_seconds"]
    try:
        decided = action(actor=request.user, **arguments)
    except ObjectNotFound:
        raise
    except ApplicationError as error:
        return service_failure(request, error, back=back)
    messages.success(request, done(decided))
    return redirect(back)


class AccessRequestApproveView(SignedInView, View):
    def post(self, request, request_id):
        return _decide(
            request,
            back=reverse("ui:access-requests"),
            action=access_request_approve,
            form_class=AccessRequestApproveForm,
            done=_approved,
            request_id=request_id,
        )


class AccessRequestDenyView(SignedInView, View):
    def post(self, request, request_id):
        return _decide(
            request,
            back=reverse("ui:access-requests"),
            action=access_request_deny,
            form_class=AccessRequestDecisionForm,
            done=_denied,
            request_id=request_id,
        )


class AccessRequestRevokeView(SignedInView, View):
    """Ends an approved grant before its time, from the workspace page it is listed on."""

    def post(self, request, request_id):
        access_request = access_request_get_for(user=request.user, request_id=request_id)
        return _decide(
            request,
            back=reverse("ui:workspace-detail", args=[access_request.workspace_id]),
            action=access_request_revoke,
            form_class=AccessRequestDecisionForm,
            done=_revoked,
            request_id=request_id,
        )
