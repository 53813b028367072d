"""Domain errors raised by services and selectors. They carry no HTTP status: core/http/errors.py maps them."""

from __future__ import annotations

import math


class ApplicationError(Exception):
    """A business rule refused the request. `field` names the input at fault; `extra` adds keys to the error body."""

    def __init__(self, detail: str, *, field: str | None = None, extra: dict | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra or {}


class InvalidInput(ApplicationError):
    """The input breaks a rule (the API answers 400 with the field named)."""


class NotPermitted(ApplicationError):
    """The principal may not do this (403)."""


class ObjectNotFound(ApplicationError):
    """No such object, or none the principal may see (404). Selectors named `*_get` raise it; `*_find` return None."""

    def __init__(self, detail: str = "Not found.", **kwargs):
        super().__init__(detail, **kwargs)


class Conflict(ApplicationError):
    """The request clashes with the current state, e.g. a cap on what may exist at once is reached (409)."""


class LimitReached(ApplicationError):
    """A budget over time is spent (429); `retry_after` is the whole seconds until it refills (Retry-After)."""

    def __init__(self, detail: str, *, retry_after: int, **kwargs):
        super().__init__(detail, **kwargs)
        self.retry_after = max(1, math.ceil(retry_after))
