"""Where a request came from, for audit rows written deep inside services."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    ip: str | None = None
    user_agent: str = ""
    request_id: str = ""


# The default is frozen, so sharing one instance between contexts is safe.
_current: ContextVar[RequestContext] = ContextVar("coderauth_request_context", default=RequestContext())  # noqa: B039


def current() -> RequestContext:
    return _current.get()


def set_current(context: RequestContext):
    return _current.set(context)


def reset(token) -> None:
    _current.reset(token)
