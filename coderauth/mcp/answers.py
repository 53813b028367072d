"""The shapes coderauth's answers must have before the MCP server uses them: nothing upstream is trusted.

Each check returns the answer (or the value built from it) or raises BadAnswer with a short message that
names the endpoint and what was wrong, never the body itself (it may hold a token).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

AGENT_TOKEN_PREFIX = "cda_"
# coderauth's tokens are 40 characters (core/tokens.py); anything far longer is not a token it minted.
TOKEN_MAX_LENGTH = 200


class BadAnswer(Exception):
    """coderauth answered, but not with what the endpoint promises (not JSON, wrong shape, too large)."""


@dataclass
class ChildToken:
    id: str
    token: str
    scopes: tuple[str, ...]
    expires_at: str
    renew_at: float = 0.0  # time.monotonic() value
    valid_until: float = 0.0  # time.monotonic() value, a margin before expiry

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"ChildToken(id={self.id!r}, scopes={self.scopes!r}, expires_at={self.expires_at!r})"


def _dict(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadAnswer(f"{what}: expected a JSON object, got {_kind(body)}")
    return body


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "nothing"}.get(type(value), "a value")


def _string(body: dict[str, Any], key: str, what: str, *, optional: bool = False) -> str | None:
    value = body.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise BadAnswer(f"{what}: {key!r} is missing or not a string")
    return value


def _uuid(body: dict[str, Any], key: str, what: str) -> str:
    value = body.get(key)
    try:
        if isinstance(value, str):
            return str(uuid.UUID(value))
    except ValueError:
        pass
    raise BadAnswer(f"{what}: {key!r} is missing or not a UUID")


def _string_list(body: dict[str, Any], key: str, what: str) -> list[str]:
    value = body.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadAnswer(f"{what}: {key!r} is missing or not a list of strings")
    return value


def child_token(body: Any, *, what: str = "the minted token") -> ChildToken:
    """A child mint or a rotation: `id` a UUID, `token` a cda_ string, `scopes` strings, `expires_at`."""
    body = _dict(body, what)
    token = _string(body, "token", what)
    if not (token.startswith(AGENT_TOKEN_PREFIX) and len(token) <= TOKEN_MAX_LENGTH and token.isascii()):
        raise BadAnswer(f"{what}: 'token' is not an agent token")
    return ChildToken(
        id=_uuid(body, "id", what),
        token=token,
        scopes=tuple(_string_list(body, "scopes", what)),
        expires_at=_string(body, "expires_at", what),
    )


def manifest(body: Any) -> dict[str, Any]:
    what = "the agent manifest"
    body = _dict(body, what)
    for key in ("agent_id", "workspace_id"):
        _uuid(body, key, what)
    for key in ("agent_name", "workspace_name", "owner_username", "permission_mode"):
        _string(body, key, what)
    _string_list(body, "scopes", what)
    return body


def app_status(body: Any) -> dict[str, Any]:
    what = "the stored app status"
    body = _dict(body, what)
    for key in ("app_slug", "state", "message", "uri"):
        _string(body, key, what)
    return body


def user(body: Any) -> dict[str, Any]:
    what = "the authenticated user"
    body = _dict(body, what)
    if not isinstance(body.get("id"), (int, str)):
        raise BadAnswer(f"{what}: 'id' is missing")
    _string(body, "username", what)
    return body


def workspace(body: Any) -> dict[str, Any]:
    what = "the workspace"
    body = _dict(body, what)
    _uuid(body, "id", what)
    _string(body, "name", what)
    _string(body, "owner", what)
    return body


def workspace_page(body: Any) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `GET workspaces`: `{"results": [...], "next": absolute URL or null}`."""
    what = "the workspace list"
    body = _dict(body, what)
    results = body.get("results")
    if not isinstance(results, list):
        raise BadAnswer(f"{what}: 'results' is missing or not a list")
    return [workspace(item) for item in results], _string(body, "next", what, optional=True)


ACCESS_REQUEST_STATES = frozenset({"pending", "approved", "denied", "revoked", "expired"})
# Longer than any duration coderauth grants or keeps a request pending; a larger number is not a time left.
TIME_LEFT_MAX_SECONDS = 366 * 86400


def access_request(body: Any) -> dict[str, Any]:
    """An access request: `id` a UUID, `state` one of ACCESS_REQUEST_STATES, `scopes` strings, `expires_at` a
    string or null; the optional fields, when present, of their type. Returns only these fields."""
    what = "the access request"
    body = _dict(body, what)
    state = _string(body, "state", what)
    if state not in ACCESS_REQUEST_STATES:
        raise BadAnswer(f"{what}: 'state' is not one of {', '.join(sorted(ACCESS_REQUEST_STATES))}")
    checked: dict[str, Any] = {
        "id": _uuid(body, "id", what),
        "state": state,
        "scopes": _string_list(body, "scopes", what),
        "expires_at": _string(body, "expires_at", what, optional=True),
    }
    for key in ("reason", "requested_at", "decided_at", "decided_by", "decision_reason", "revoked_at", "revoke_reason"):
        value = _string(body, key, what, optional=True)
        if value is not None:
            checked[key] = value
    for key in ("duration_seconds", "time_left_seconds"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= TIME_LEFT_MAX_SECONDS:
            raise BadAnswer(f"{what}: {key!r} is not a number of seconds")
        checked[key] = int(value)
    return checked


def open_request_conflict(body: dict[str, Any]) -> dict[str, Any] | None:
    """A 409 to a new request names the agent's open request: its `id` (a UUID) and, when given, its
    `state`. None when the body names no such request (another conflict)."""
    try:
        request_id = _uuid(body, "id", "the conflict")
    except BadAnswer:
        return None
    state = body.get("state")
    return {"id": request_id, "state": state if state in ("pending", "approved") else None}
