"""coderauth's REST API as the MCP server uses it, and the narrow child tokens it runs on.

Token plan (docs/mcp.md). The parent agent token is used at start-up only:
1. it reads the manifest (is the token valid, what may it do now),
2. it mints the *renewal token*: a child holding only agent:connect + agent:report (what the manifest
   allows of those), living as long as the parent. It never makes an API call other than minting and
   revoking the working token, so it rarely leaves memory;
3. the *working token*, a child of the renewal token with the same scopes and a 15-minute lifetime, is
   used for every tool call and replaced once two thirds of its lifetime have passed.
After start-up the parent is dropped, so its `last_used_at` stops moving and a memory dump of the
running server never yields the parent's wider scopes (git SSH key, external auth). A clean exit
revokes the renewal token, which revokes the working token with it (revocation covers a subtree).
Why not renew from the working token itself: a child never outlives its parent, so renewing from the
current child could never extend the lifetime.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

logger = logging.getLogger("coderauth.mcp")

AGENT_CONNECT = "agent:connect"
AGENT_REPORT = "agent:report"
MCP_SCOPES = (AGENT_CONNECT, AGENT_REPORT)

WORKING_TOKEN_LIFETIME_SECONDS = 15 * 60
RENEW_AFTER_FRACTION = 2 / 3
# Asked for, then clamped by the server to the parent's own expiry (a child never outlives its parent).
RENEWAL_TOKEN_LIFETIME_SECONDS = 365 * 86400

RETRY_STATUSES = frozenset({502, 503, 504})
# Methods safe to repeat after the request may have been applied. PATCH qualifies because the only PATCH
# (app-status) repeats an identical body, so a retry at worst records the same status twice. POST mints tokens:
# a repeat would leave a duplicate token behind.
REPEATABLE_METHODS = frozenset({"GET", "PATCH", "DELETE"})
# Raised before the request left this process (no connection, or none free), so any method may be retried.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAX_ATTEMPTS = 4
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 2.0
REQUEST_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class ApiError(Exception):
    """coderauth answered with an error status. The message is readable and holds no token."""

    def __init__(self, status: int, body: Any, *, method: str, path: str):
        self.status = status
        self.body = body if isinstance(body, dict) else {}
        self.method = method
        self.path = path
        super().__init__(self.describe())

    @property
    def detail(self) -> str:
        detail = self.body.get("detail")
        return detail if isinstance(detail, str) else ""

    def describe(self) -> str:
        parts = [f"{self.status}"]
        if self.detail:
            parts.append(self.detail)
        field_errors = [
            f"{name}: {' '.join(map(str, errors))}"
            for name, errors in self.body.items()
            if name not in ("detail", "required_scope", "permission_mode") and isinstance(errors, list)
        ]
        if field_errors:
            parts.append("; ".join(field_errors))
        if self.body.get("required_scope"):
            parts.append(f"(required scope {self.body['required_scope']}, mode {self.body.get('permission_mode')})")
        return " ".join(parts)


class Unreachable(Exception):
    """coderauth gave no answer: unreachable after the retries, or a POST whose answer was lost (not retried)."""


@dataclass
class ChildToken:
    id: str
    token: str
    scopes: tuple[str, ...]
    expires_at: str
    renew_at: float = 0.0  # time.monotonic() value

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"ChildToken(id={self.id!r}, scopes={self.scopes!r}, expires_at={self.expires_at!r})"


class CoderClient:
    """One httpx client with bounded retry and backoff on transient failures only.

    Retried for every method: failures before the request was sent (connection refused, connect timeout).
    Retried for GET, PATCH, DELETE only: read timeouts, dropped connections and 502/503/504, after which the
    request may have been applied; a POST then is not repeated, so a lost answer never mints a second token.
    Never retried: any 4xx, which is an answer, not an accident.
    """

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        max_attempts: int = MAX_ATTEMPTS,
    ):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=f"{self.base_url}/api/v2/",
            timeout=REQUEST_TIMEOUT,
            transport=transport,
            headers={"User-Agent": "coderauth-mcp", "Accept": "application/json"},
            follow_redirects=False,
        )
        self._sleep = sleep
        self._max_attempts = max_attempts

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, token: str, json: Any = None) -> Any:
        """The decoded JSON body (None for 204). Raises ApiError or Unreachable."""
        headers = {"Authorization": f"Bearer {token}"}
        repeatable = method.upper() in REPEATABLE_METHODS
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = await self._http.request(method, path, headers=headers, json=json)
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__} {exc}".strip()
                if not (repeatable or isinstance(exc, NOT_SENT_ERRORS)):
                    raise Unreachable(
                        f"no answer from {self.base_url} to {method} {path}: {failure}; "
                        "not retried, as the server may have applied it"
                    ) from None
                if attempt == self._max_attempts:
                    raise Unreachable(f"cannot reach {self.base_url}: {failure}") from None
                logger.warning("%s %s failed (%s); retrying", method, path, type(exc).__name__)
            else:
                if not repeatable or response.status_code not in RETRY_STATUSES or attempt == self._max_attempts:
                    return self._decode(response, method=method, path=path)
                logger.warning("%s %s answered %s; retrying", method, path, response.status_code)
            delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
            await self._sleep(delay * (0.5 + random.random() / 2))  # jitter: many agents restart together
        raise AssertionError("unreachable")  # the loop always returns or raises

    @staticmethod
    def _decode(response: httpx.Response, *, method: str, path: str) -> Any:
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.is_success:
            return body
        if body is None:
            body = {"detail": response.reason_phrase or "error"}
        raise ApiError(response.status_code, body, method=method, path=path)


class AgentCredentials:
    """The renewal and working child tokens (see the module docstring), renewed lazily before use."""

    def __init__(self, client: CoderClient, *, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self._clock = clock
        self._lock = anyio.Lock()
        self.renewal: ChildToken | None = None
        self.working: ChildToken | None = None
        self.manifest: dict[str, Any] = {}

    async def read_manifest(self, *, parent_token: str) -> dict[str, Any]:
        """Validate the parent agent token: the manifest says whose it is and what it may do now."""
        self.manifest = await self.client.request("GET", "workspaceagents/me/manifest", token=parent_token)
        return self.manifest

    async def mint(self, *, parent_token: str) -> None:
        """Mint the renewal and the working token from the parent. The parent is not kept."""
        allowed = set(self.manifest.get("scopes") or [])
        scopes = [scope for scope in MCP_SCOPES if scope in allowed]
        if AGENT_REPORT not in allowed:
            logger.warning(
                "the agent's mode %r does not allow %s now; coder_report_task will fail until it does",
                self.manifest.get("permission_mode"),
                AGENT_REPORT,
            )
        body = await self.client.request(
            "POST",
            "workspaceagents/me/tokens",
            token=parent_token,
            json={
                "name": "coderauth-mcp renewal",
                "scopes": scopes,
                "lifetime_seconds": RENEWAL_TOKEN_LIFETIME_SECONDS,
            },
        )
        self.renewal = _child_from(body)
        self.working = await self._mint_working(self.renewal)

    async def _mint_working(self, renewal: ChildToken) -> ChildToken:
        payload = {"name": "coderauth-mcp", "lifetime_seconds": WORKING_TOKEN_LIFETIME_SECONDS}
        path = "workspaceagents/me/tokens"
        try:
            body = await self.client.request(
                "POST", path, token=renewal.token, json={**payload, "scopes": list(renewal.scopes)}
            )
        except ApiError as exc:
            if exc.status != 400:
                raise
            # The mode was narrowed since start-up: take what is allowed now, try the full set next renewal.
            body = await self.client.request("POST", path, token=renewal.token, json=payload)
        child = _child_from(body)
        child.renew_at = self._clock() + WORKING_TOKEN_LIFETIME_SECONDS * RENEW_AFTER_FRACTION
        return child

    async def renew(self, *, stale: ChildToken | None = None) -> ChildToken:
        """Replace the working token (unless another caller already replaced `stale`) and revoke the old one."""
        async with self._lock:
            old, renewal = self.working, self.renewal
            if renewal is None:
                raise RuntimeError("the MCP server's child tokens were revoked; it is shutting down")
            if stale is not None and old is not stale:
                return old  # renewed meanwhile by a concurrent call
            fresh = self.working = await self._mint_working(renewal)
        # Renewals only: at start-up the server's single "ready" line already names the scopes.
        logger.info("working token %s renewed with %s", fresh.id, ", ".join(fresh.scopes))
        if old is not None:
            try:
                await self.client.request("DELETE", f"workspaceagents/me/tokens/{old.id}", token=renewal.token)
            except (ApiError, Unreachable) as exc:
                logger.warning("could not revoke the previous working token %s: %s", old.id, exc)
        return fresh

    async def working_token(self) -> ChildToken:
        current = self.working
        if current is None:
            raise RuntimeError("the MCP server holds no child token (not started, or shutting down)")
        if self._clock() >= current.renew_at:
            current = await self.renew(stale=current)
        return current

    async def agent_request(self, method: str, path: str, *, json: Any = None) -> Any:
        """A call with the working token. One renewal and retry when the token was refused (401) or holds
        fewer scopes than the renewal token (403 after a mode was loosened again)."""
        current = await self.working_token()
        renewal = self.renewal
        try:
            return await self.client.request(method, path, token=current.token, json=json)
        except ApiError as exc:
            narrower = renewal is not None and set(current.scopes) < set(renewal.scopes)
            if not (exc.status == 401 or (exc.status == 403 and narrower)):
                raise
        current = await self.renew(stale=current)
        return await self.client.request(method, path, token=current.token, json=json)

    async def close(self) -> None:
        """Revoke the renewal token and with it the working token (clean exit). Never raises."""
        renewal, self.renewal, self.working = self.renewal, None, None
        if renewal is None:
            return
        try:
            await self.client.request("DELETE", f"workspaceagents/me/tokens/{renewal.id}", token=renewal.token)
            logger.info("child tokens revoked")
        except (ApiError, Unreachable) as exc:
            logger.warning("could not revoke the child tokens on exit: %s", exc)


def _child_from(body: dict[str, Any]) -> ChildToken:
    return ChildToken(
        id=str(body["id"]), token=body["token"], scopes=tuple(body.get("scopes") or ()), expires_at=body["expires_at"]
    )
