"""Reads of access requests, restricted to what the caller may see: an agent its own, admins and auditors every
one, a member those of the workspaces they own (another's is not found). A read that meets a lapsed request
records its `access_request.expired` audit row first (once; agents/services/elevation.py)."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from agents.models import AccessRequest, Workspace
from agents.services import elevation as services
from core.exceptions import InvalidInput, ObjectNotFound
from core.pagination import Page, keyset_page
from core.roles import can_read_everything
from policies import rules

# Newest first; the id breaks ties between requests made in the same microsecond.
ACCESS_REQUEST_ORDERING = ("-requested_at", "-id")
STATES = (
    AccessRequest.PENDING,
    AccessRequest.APPROVED,
    AccessRequest.DENIED,
    AccessRequest.REVOKED,
    AccessRequest.EXPIRED,
)

_NOT_FOUND = "No such access request."


def _base() -> QuerySet[AccessRequest]:
    return AccessRequest.objects.select_related("workspace__owner", "agent", "decided_by", "revoked_by")


def _visible_to(user) -> QuerySet[AccessRequest]:
    queryset = _base()
    if can_read_everything(user):
        return queryset
    return queryset.filter(workspace__owner=user)


def _state_q(state: str) -> Q:
    """The read state as a filter: `pending` and `approved` exclude the lapsed ones, `expired` is exactly them."""
    now = timezone.now()
    if state == AccessRequest.EXPIRED:
        return services.lapsed_q(now)
    if state in (AccessRequest.PENDING, AccessRequest.APPROVED):
        return Q(state=state) & services.open_q(now)
    if state in STATES:
        return Q(state=state)
    raise InvalidInput(f"One of: {', '.join(STATES)}.", field="state")


def _recorded(queryset: QuerySet[AccessRequest]) -> QuerySet[AccessRequest]:
    services.access_requests_expired_record(queryset=queryset)
    return queryset


def access_request_list_for_agent(*, agent_id) -> QuerySet[AccessRequest]:
    """The agent's own requests, newest first."""
    return _recorded(_base().filter(agent_id=agent_id).order_by(*ACCESS_REQUEST_ORDERING))


def access_request_page_for_agent(*, agent_id, cursor: str | None, page_size: int | None = None) -> Page:
    return keyset_page(
        access_request_list_for_agent(agent_id=agent_id),
        ordering=ACCESS_REQUEST_ORDERING,
        cursor=cursor,
        page_size=page_size,
    )


def access_request_get_for_agent(*, agent_id, request_id) -> AccessRequest:
    """One of the agent's own requests; another agent's is not found."""
    found = services.access_request_find(request_id=request_id)
    if found is None or str(found.agent_id) != str(agent_id):
        raise ObjectNotFound(_NOT_FOUND)
    return _fresh(found)


def _fresh(found: AccessRequest) -> AccessRequest:
    """Record its expiry if it just lapsed, and read it back with its relations."""
    if services.access_request_state(found) == AccessRequest.EXPIRED and found.expired_recorded_at is None:
        services.access_requests_expired_record(queryset=AccessRequest.objects.filter(pk=found.pk))
    return _base().get(pk=found.pk)


def access_request_list_for(
    *, user, state: str | None = None, workspace_id=None, agent_id=None
) -> QuerySet[AccessRequest]:
    """Admins and auditors see every request, members those of their own workspaces; newest first."""
    queryset = _visible_to(user)
    if workspace_id is not None:
        queryset = queryset.filter(workspace_id=workspace_id)
    if agent_id is not None:
        queryset = queryset.filter(agent_id=agent_id)
    _recorded(queryset)
    if state:
        queryset = queryset.filter(_state_q(state))
    return queryset.order_by(*ACCESS_REQUEST_ORDERING)


def access_request_page_for(
    *,
    user,
    cursor: str | None,
    page_size: int | None = None,
    state: str | None = None,
    workspace_id=None,
    agent_id=None,
) -> Page:
    return keyset_page(
        access_request_list_for(user=user, state=state, workspace_id=workspace_id, agent_id=agent_id),
        ordering=ACCESS_REQUEST_ORDERING,
        cursor=cursor,
        page_size=page_size,
    )


def access_request_get_for(*, user, request_id) -> AccessRequest:
    found = services.access_request_find(request_id=request_id)
    if found is None or not (can_read_everything(user) or found.workspace.owner_id == user.pk):
        raise ObjectNotFound(_NOT_FOUND)
    return _fresh(found)


def access_request_pending_count_for(*, user) -> int:
    """Pending requests, not lapsed, that `user` may decide (for a badge)."""
    queryset = AccessRequest.objects.filter(_state_q(AccessRequest.PENDING))
    if rules.may_decide_access_request(user, owner_id=-1):
        return queryset.count()  # an admin decides any
    if not rules.may_decide_access_request(user, owner_id=user.pk):
        return 0
    return queryset.filter(workspace__owner=user).count()


def access_request_active_grants_for_workspace(*, workspace: Workspace) -> list[AccessRequest]:
    """The live grants of the workspace's agents, soonest to end first."""
    return list(
        _base()
        .filter(workspace=workspace, state=AccessRequest.APPROVED, expires_at__gt=timezone.now())
        .order_by("expires_at", "id")
    )


def access_request_may_decide(*, user, access_request: AccessRequest) -> bool:
    """For buttons: may `user` decide this request (whatever its state)?"""
    return rules.may_decide_access_request(user, owner_id=access_request.workspace.owner_id)
