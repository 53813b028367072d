"""coderauth's REST API as the MCP server uses it, and the narrow child tokens it runs on.

Token plan (docs/mcp.md). The parent agent token is used at start-up only, and only in a short-lived
process (`coderauth.mcp.bootstrap`), so it never enters the long-lived server:
1. it reads the manifest (is the token valid, what may it do now),
2. it mints the *renewal token*: a child holding only agent:connect + agent:report (what the manifest
   allows of those), living as long as the parent. It never makes an API call other than rotating
   itself and minting and revoking the working token, so it rarely leaves memory;
3. the *working token*, a child of the renewal token with the same scopes and a 15-minute lifetime, is
   used for every tool call and replaced once two thirds of its lifetime have passed. Each replacement
   first rotates the renewal token (the old one is revoked, the working tokens move under the new one),
   so a stolen copy of either is noticed: presenting a rotated-out token revokes the whole lineage, and
   this server then answers every tool with "credentials revoked".
A clean exit revokes the renewal token, which revokes the working token with it (revocation covers a
subtree). Why not renew from the working token itself: a child never outlives its parent, so renewing
from the current child could never extend the lifetime.
"""

from __future__ import annotations

import json as jsonlib
import logging
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx

from coderauth.mcp import answers
from coderauth.mcp.answers import BadAnswer, ChildToken

logger = logging.getLogger("coderauth.mcp")

AGENT_CONNECT = "agent:connect"
AGENT_REPORT = "agent:report"
MCP_SCOPES = (AGENT_CONNECT, AGENT_REPORT)

MANIFEST_PATH = "workspaceagents/me/manifest"
TOKENS_PATH = "workspaceagents/me/tokens"
ROTATE_PATH = "workspaceagents/me/tokens/rotate"
ACCESS_REQUESTS_PATH = "workspaceagents/me/access-requests"

WORKING_TOKEN_LIFETIME_SECONDS = 15 * 60
RENEW_AFTER_FRACTION = 2 / 3
# A working token is not used for a manifest re-read this close to its expiry (clocks and latency).
VALIDITY_MARGIN_SECONDS = 60
# Asked for, then clamped by the server to the parent's own expiry (a child never outlives its parent).
RENEWAL_TOKEN_LIFETIME_SECONDS = 365 * 86400

# Limits under a misbehaving or hostile upstream. Read at call time, so tests can lower them.
MAX_RESPONSE_BYTES = 1024 * 1024  # a larger answer is cut off and refused, never held in full
CALL_DEADLINE_SECONDS = 30.0  # one deadline per tool call, retries and slow trickles included
# When the mode is known to lack agent:report, the manifest is re-read at most this often to notice a change.
MANIFEST_RECHECK_SECONDS = 30.0
# Revocations on the way out get this long, even when the call that failed was cancelled by its deadline.
REVOKE_DEADLINE_SECONDS = 5.0

RETRY_STATUSES = frozenset({502, 503, 504})
# Methods safe to repeat after the request may have been applied. PATCH qualifies because the only PATCH
# (app-status) repeats an identical body, so a retry at worst records the same status twice. POST mints or
# rotates tokens: a repeat would leave a duplicate token behind, or look like the reuse of a stolen token.
REPEATABLE_METHODS = frozenset({"GET", "PATCH", "DELETE"})
# Raised before the request left this process (no connection, or none free), so any method may be retried.
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MAX_ATTEMPTS = 4
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 2.0
REQUEST_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

CREDENTIALS_REVOKED = "credentials revoked; restart the MCP server with a fresh agent token"


class ApiError(Exception):
    """coderauth answered with an error status. The message is readable and holds no token."""

    def __init__(self, status: int, body: Any, *, method: str, path: str, retry_after: int | None = None):
        self.status = status
        self.body = body if isinstance(body, dict) else {}
        self.method = method
        self.path = path
        self.retry_after = retry_after  # seconds, from a 429's Retry-After (delta-seconds form only)
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
            f"{name}: {' '.join(_messages(errors))}"
            for name, errors in self.body.items()
            if name not in ("detail", "required_scope", "permission_mode") and isinstance(errors, (list, dict))
        ]
        if field_errors:
            parts.append("; ".join(field_errors))
        if self.body.get("required_scope"):
            parts.append(f"(required scope {self.body['required_scope']}, mode {self.body.get('permission_mode')})")
        return " ".join(parts)


class Unreachable(Exception):
    """coderauth gave no answer: unreachable after the retries, or a POST whose answer was lost (not retried)."""


class CredentialsRevoked(Exception):
    """The renewal lineage is gone (refused with 401, or abandoned after a rotation of unknown outcome)."""

    def __init__(self) -> None:
        super().__init__(CREDENTIALS_REVOKED)


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
        """The decoded JSON body (None for an empty answer). Raises ApiError, Unreachable or BadAnswer.

        `path` is relative to /api/v2/, or an absolute URL the caller has checked (a page's `next`).
        """
        headers = {"Authorization": f"Bearer {token}"}
        repeatable = method.upper() in REPEATABLE_METHODS
        for attempt in range(1, self._max_attempts + 1):
            try:
                status, reason, content, retry_after = await self._send(method, path, headers=headers, json=json)
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
                if not repeatable or status not in RETRY_STATUSES or attempt == self._max_attempts:
                    return self._decode(status, reason, content, method=method, path=path, retry_after=retry_after)
                logger.warning("%s %s answered %s; retrying", method, path, status)
            delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
            await self._sleep(delay * (0.5 + random.random() / 2))  # jitter: many agents restart together
        raise AssertionError("unreachable")  # the loop always returns or raises

    async def _send(
        self, method: str, path: str, *, headers: dict[str, str], json: Any
    ) -> tuple[int, str, bytes, int | None]:
        """Status, reason, body and Retry-After, the body read as a stream and refused past MAX_RESPONSE_BYTES."""
        limit = MAX_RESPONSE_BYTES
        async with self._http.stream(method, path, headers=headers, json=json) as response:
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                raise BadAnswer(f"{method} {path}: the answer is larger than {limit} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():  # decoded size: a compressed bomb is cut off as well
                size += len(chunk)
                if size > limit:
                    raise BadAnswer(f"{method} {path}: the answer is larger than {limit} bytes")
                chunks.append(chunk)
            return response.status_code, response.reason_phrase, b"".join(chunks), _retry_after(response)

    @staticmethod
    def _decode(
        status: int, reason: str, content: bytes, *, method: str, path: str, retry_after: int | None = None
    ) -> Any:
        body: Any = None
        decoded = True
        if content:
            try:
                body = jsonlib.loads(content)
            except ValueError:
                decoded = False
        if 200 <= status < 300:
            if not decoded:
                raise BadAnswer(f"{method} {path}: the answer is not JSON")
            return body
        if not isinstance(body, dict):
            body = {"detail": reason or "error"}
        raise ApiError(status, body, method=method, path=path, retry_after=retry_after)


class AgentCredentials:
    """The renewal and working child tokens (see the module docstring), renewed lazily before use.

    Also what this server last saw of the mode (`allowed`), so a report the mode refuses is refused here
    without minting, revoking or retrying upstream.
    """

    def __init__(self, client: CoderClient, *, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self._clock = clock
        self._lock = anyio.Lock()
        self.renewal: ChildToken | None = None
        self.working: ChildToken | None = None
        self.manifest: dict[str, Any] = {}
        self.allowed: frozenset[str] = frozenset()  # the MCP scopes the mode allowed when last seen
        self.revoked = False
        self._manifest_read_at = -math.inf

    # Start-up, in the short-lived bootstrap process: the only methods that take the parent token.

    async def read_manifest(self, *, parent_token: str) -> dict[str, Any]:
        """Validate the parent agent token: the manifest says whose it is and what it may do now."""
        self.note_manifest(await self.client.request("GET", MANIFEST_PATH, token=parent_token))
        return self.manifest

    async def mint_renewal(self, *, parent_token: str) -> ChildToken:
        """Mint the renewal token from the parent. A malformed answer naming a token id revokes that token."""
        scopes = [scope for scope in MCP_SCOPES if scope in self.allowed]
        if AGENT_REPORT not in self.allowed:
            logger.warning(
                "the agent's mode %r does not allow %s now; coder_report_task will refuse until a restart after "
                "the mode allows it",
                self.manifest.get("permission_mode"),
                AGENT_REPORT,
            )
        body = await self.client.request(
            "POST",
            TOKENS_PATH,
            token=parent_token,
            json={
                "name": "coderauth-mcp renewal",
                "scopes": scopes,
                "lifetime_seconds": RENEWAL_TOKEN_LIFETIME_SECONDS,
            },
        )
        try:
            self.renewal = answers.child_token(body, what="the renewal token")
        except BadAnswer:
            token_id = body.get("id") if isinstance(body, dict) else None
            if isinstance(token_id, str) and _is_uuid(token_id):
                await self.revoke_quietly(token_id, token=parent_token)
            raise
        return self.renewal

    # In the server process.

    def adopt(self, *, renewal: ChildToken, manifest: dict[str, Any]) -> None:
        """Take over the renewal token the bootstrap process minted, and the manifest it read."""
        self.renewal = renewal
        self.note_manifest(manifest)

    def note_manifest(self, body: Any) -> dict[str, Any]:
        """Check a manifest answer's shape and remember what the mode allows now."""
        self.manifest = answers.manifest(body)
        self.allowed = frozenset(self.manifest["scopes"]) & frozenset(MCP_SCOPES)
        self._manifest_read_at = self._clock()
        return self.manifest

    async def start_working(self) -> ChildToken:
        """The first working token, from the renewal token (no rotation: it was minted just now)."""
        async with self._lock:
            self._check_alive()
            self.working = await self._mint_working(self.renewal)
        return self.working

    def _check_alive(self) -> None:
        if self.revoked:
            raise CredentialsRevoked()
        if self.renewal is None:
            raise RuntimeError("the MCP server holds no child token (not started, or shutting down)")

    def _lineage_revoked(self) -> CredentialsRevoked:
        """A 401 for the renewal token: its lineage was revoked, by a user or because a stolen copy was used."""
        if not self.revoked:
            logger.error(
                "coderauth refused the renewal token (401): its lineage was revoked, by a user or because a "
                "rotated-out copy was presented (possible theft); %s",
                CREDENTIALS_REVOKED,
            )
        self.revoked = True
        self.renewal = self.working = None
        return CredentialsRevoked()

    async def _mint_working(self, renewal: ChildToken) -> ChildToken:
        payload = {"name": "coderauth-mcp", "lifetime_seconds": WORKING_TOKEN_LIFETIME_SECONDS}
        fallback = False
        try:
            body = await self.client.request(
                "POST", TOKENS_PATH, token=renewal.token, json={**payload, "scopes": list(renewal.scopes)}
            )
        except ApiError as exc:
            if exc.status == 401:
                raise self._lineage_revoked() from None
            if exc.status != 400:
                raise
            # The mode was narrowed since start-up: take what is allowed now, try the full set next renewal.
            fallback = True
            try:
                body = await self.client.request("POST", TOKENS_PATH, token=renewal.token, json=payload)
            except ApiError as again:
                if again.status == 401:
                    raise self._lineage_revoked() from None
                raise
        child = answers.child_token(body, what="the working token")
        minted = frozenset(child.scopes) & frozenset(MCP_SCOPES)
        self.allowed = minted if fallback else self.allowed | minted
        now = self._clock()
        child.renew_at = now + WORKING_TOKEN_LIFETIME_SECONDS * RENEW_AFTER_FRACTION
        child.valid_until = now + WORKING_TOKEN_LIFETIME_SECONDS - VALIDITY_MARGIN_SECONDS
        return child

    async def _rotate(self, renewal: ChildToken) -> ChildToken:
        """The renewal token's successor. Never retried once sent: a repeat would look like the reuse of a
        stolen token. When the outcome is unknown, the lineage is revoked rather than left live unseen."""
        try:
            body = await self.client.request("POST", ROTATE_PATH, token=renewal.token, json={})
            return answers.child_token(body, what="the rotated renewal token")
        except ApiError as exc:
            if exc.status == 401:
                raise self._lineage_revoked() from None
            if exc.status < 500:
                # An answer: nothing was rotated, so the renewal token stays valid and in use.
                logger.warning("could not rotate the renewal token: %s", exc)
                return renewal
            failure: Exception = exc
        except (Unreachable, BadAnswer) as exc:
            failure = exc
        except anyio.get_cancelled_exc_class():
            await self._abandon(renewal, "the call's deadline passed during the rotation")
            raise
        await self._abandon(renewal, str(failure))
        raise CredentialsRevoked()

    async def _abandon(self, renewal: ChildToken, reason: str) -> None:
        """After a rotation of unknown outcome: present the old renewal token once more, to revoke it. If the
        rotation did happen, coderauth takes that as reuse and revokes the whole lineage; either way no token
        of this server is left live without it knowing."""
        logger.error("rotating the renewal token gave no usable answer (%s); revoking its lineage", reason)
        self.revoked = True
        self.renewal = self.working = None
        await self.revoke_quietly(renewal.id, token=renewal.token)

    async def revoke_quietly(self, token_id: str, *, token: str) -> bool:
        """Revoke, shielded from cancellation and bounded in time. Never raises."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(REVOKE_DEADLINE_SECONDS):
            try:
                await self.client.request("DELETE", f"{TOKENS_PATH}/{token_id}", token=token)
                return True
            except (ApiError, Unreachable, BadAnswer) as exc:
                logger.warning("could not revoke token %s: %s", token_id, exc)
        return False

    async def renew(self, *, stale: ChildToken | None = None) -> ChildToken:
        """Rotate the renewal token, mint a working token from the new one, revoke the old working token
        (unless another caller already replaced `stale`)."""
        async with self._lock:
            self._check_alive()
            old = self.working
            if stale is not None and old is not stale:
                return old  # renewed meanwhile by a concurrent call
            renewal = self.renewal = await self._rotate(self.renewal)
            fresh = self.working = await self._mint_working(renewal)
        # Renewals only: at start-up the server's single "ready" line already names the scopes.
        logger.info("working token %s renewed with %s", fresh.id, ", ".join(fresh.scopes))
        if old is not None:
            try:
                await self.client.request("DELETE", f"{TOKENS_PATH}/{old.id}", token=renewal.token)
            except (ApiError, Unreachable, BadAnswer) as exc:
                logger.warning("could not revoke the previous working token %s: %s", old.id, exc)
        return fresh

    async def working_token(self) -> ChildToken:
        self._check_alive()
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
            if exc.status == 403 and isinstance(exc.body.get("required_scope"), str):
                self.allowed -= {exc.body["required_scope"]}
            narrower = renewal is not None and set(current.scopes) < set(renewal.scopes)
            if not (exc.status == 401 or (exc.status == 403 and narrower)):
                raise
        current = await self.renew(stale=current)
        return await self.client.request(method, path, token=current.token, json=json)

    async def may_report(self) -> bool:
        """Whether agent:report is allowed now, at the cost of at most one upstream request: a manifest
        re-read, at most once per MANIFEST_RECHECK_SECONDS, with the current working token (never a mint)."""
        self._check_alive()
        if AGENT_REPORT not in self.renewal.scopes:
            return False  # no working token can hold it before a restart
        if AGENT_REPORT in self.allowed:
            return True
        working, now = self.working, self._clock()
        if now - self._manifest_read_at < MANIFEST_RECHECK_SECONDS or working is None or now >= working.valid_until:
            return False
        self._manifest_read_at = now  # a failing re-read is not repeated at once either
        try:
            self.note_manifest(await self.client.request("GET", MANIFEST_PATH, token=working.token))
        except (ApiError, Unreachable, BadAnswer) as exc:
            logger.warning("could not re-read the manifest: %s", exc)
            return False
        return AGENT_REPORT in self.allowed

    async def close(self, *, announce: bool = True) -> None:
        """Revoke the renewal token and with it the working token (exit). Never raises. `announce=False`
        keeps a failed start-up to its single stderr line."""
        renewal, self.renewal, self.working = self.renewal, None, None
        if renewal is None:
            return
        if await self.revoke_quietly(renewal.id, token=renewal.token) and announce:
            logger.info("child tokens revoked")


def _messages(errors: Any, depth: int = 0) -> list[str]:
    """A field's error messages, also those of a list's items (`{"0": ["…"]}`), without their positions."""
    if isinstance(errors, dict):
        errors = list(errors.values())
    if not isinstance(errors, list):
        return [str(errors)]
    if depth > 2:  # DRF nests one level per list or object field; deeper is not an error shape it sends
        return []
    return [message for item in errors for message in _messages(item, depth + 1)]


def _retry_after(response: httpx.Response) -> int | None:
    """A 429's Retry-After in seconds; the HTTP-date form and anything implausible are ignored."""
    value = response.headers.get("Retry-After", "").strip() if response.status_code == 429 else ""
    return int(value) if value.isdigit() and len(value) <= 6 else None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
