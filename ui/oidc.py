"""The web UI's OpenID Connect client, on Authlib: discovery, the authorization request (state, nonce and a PKCE
S256 challenge), the code exchange, and the ID token's checks (its signature against the provider's JWKS, issuer,
audience, expiry and nonce). No token is parsed or checked by hand here.

Each failure becomes a `SignInFailure` with a reason code (for the audit row), an HTTP status and a sentence for
the page; nothing the provider sent back, no code and no token, is kept, logged or shown.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.django_client import OAuth
from django.conf import settings
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError

# The discovery document is read again after an hour; the JWKS whenever an ID token names a key it does not hold
# (a provider that rotated its keys, or restarted with new ones), by Authlib.
DISCOVERY_TTL_SECONDS = 3600
# Each call to the provider (discovery, JWKS, token, UserInfo): a provider that drops packets costs a page, not a
# worker held until gunicorn kills it.
TIMEOUT_SECONDS = 5
# Clocks drift: an ID token is accepted this many seconds past its `exp` (and before its `iat`).
CLOCK_SKEW_SECONDS = 60
_NAME = "coderauth"
# A provider's `error` is shown and audited only as a short code.
_ERROR_CODE = re.compile(r"[^a-z0-9_]")

_clients: dict[tuple, tuple[float, object]] = {}
_clients_lock = threading.Lock()


class _WithoutCodeVerifier(logging.Filter):
    """Authlib logs each flow's PKCE verifier at DEBUG; until its code is redeemed the verifier is a secret. The
    settings keep the `authlib` loggers at WARNING; this holds even when someone turns every logger to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "code_verifier" not in str(record.msg)


logging.getLogger("authlib.integrations.base_client.sync_app").addFilter(_WithoutCodeVerifier())


class SignInFailure(Exception):
    """A sign-in that did not complete: `reason` for the audit row, `status` and `message` for the page, and the
    provider's own error code when it sent one."""

    def __init__(self, reason: str, status: int, message: str, provider_error: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.message = message
        self.provider_error = provider_error


@dataclass(frozen=True)
class VerifiedSignIn:
    """A sign-in whose ID token passed every check: its issuer, its claims (with UserInfo's), where to go next."""

    issuer: str
    claims: dict
    next_url: str


def enabled() -> bool:
    return bool(settings.CODERAUTH_OIDC_ISSUER)


def _client():
    """One Authlib client per configuration, remade after DISCOVERY_TTL_SECONDS so discovery is read again."""
    key = (
        settings.CODERAUTH_OIDC_ISSUER,
        settings.CODERAUTH_OIDC_CLIENT_ID,
        settings.CODERAUTH_OIDC_CLIENT_SECRET,
        tuple(settings.CODERAUTH_OIDC_SCOPES),
    )
    with _clients_lock:
        made_at, client = _clients.get(key, (0.0, None))
        if client is None or time.monotonic() - made_at > DISCOVERY_TTL_SECONDS:
            client = OAuth().register(
                _NAME,
                client_id=settings.CODERAUTH_OIDC_CLIENT_ID,
                client_secret=settings.CODERAUTH_OIDC_CLIENT_SECRET,
                server_metadata_url=settings.CODERAUTH_OIDC_ISSUER.rstrip("/") + "/.well-known/openid-configuration",
                client_kwargs={
                    "scope": " ".join(settings.CODERAUTH_OIDC_SCOPES),
                    "code_challenge_method": "S256",
                    "token_endpoint_auth_method": "client_secret_basic",
                    "default_timeout": TIMEOUT_SECONDS,
                },
            )
            _clients[key] = (time.monotonic(), client)
    return client


def _metadata(client) -> dict:
    """The discovery document, read once per client; it must name the configured issuer (OpenID Connect Discovery
    4.3: otherwise another provider could stand in for it) and the endpoints the flow needs."""
    metadata = client.load_server_metadata()
    if str(metadata.get("issuer", "")).rstrip("/") != settings.CODERAUTH_OIDC_ISSUER.rstrip("/"):
        raise SignInFailure(
            "issuer_mismatch",
            502,
            "The identity provider's discovery document names another issuer than the one "
            "configured (CODERAUTH_OIDC_ISSUER). An administrator must correct the setting.",
        )
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(metadata.get(endpoint), str):
            raise SignInFailure("provider_bad_answer", 502, f"The identity provider's discovery lacks {endpoint}.")
    return metadata


def authorization_url(request, *, redirect_uri: str, next_url: str) -> str:
    """Where to send the browser to sign in. The state, nonce and PKCE verifier stay in this browser's session
    (Authlib's store, one entry per flow, expiring in an hour), so only this browser can finish the flow."""
    client = _client()
    with _provider_errors():
        _metadata(client)
        authorization = client.create_authorization_url(redirect_uri)
    client.framework.set_state_data(
        request.session,
        authorization["state"],
        {
            "redirect_uri": redirect_uri,
            "nonce": authorization["nonce"],
            "code_verifier": authorization["code_verifier"],
            "next": next_url,
        },
    )
    return authorization["url"]


def verified_sign_in(request) -> VerifiedSignIn:
    """The provider's answer at the redirect URI, checked: the state must be one this session started and not yet
    used (it is spent now, whatever follows), the code is exchanged with the PKCE verifier, and the ID token must
    be signed by the provider, for this client, unexpired and carry this flow's nonce."""
    client = _client()
    state = request.GET.get("state", "")
    flow = client.framework.get_state_data(request.session, state) if state else None
    if state:
        client.framework.clear_state_data(request.session, state)
    error = _ERROR_CODE.sub("", request.GET.get("error", "").lower())[:40]
    if error == "access_denied":
        raise SignInFailure("provider_denied", 403, "The identity provider did not sign you in.", error)
    if error or "error" in request.GET:
        raise SignInFailure("provider_error", 502, f"The identity provider answered with an error ({error}).", error)
    if not state:
        raise SignInFailure(
            "missing_state", 400, "The answer from the identity provider carries no state. Start again."
        )
    if flow is None:
        raise SignInFailure(
            "unknown_state",
            400,
            "This sign-in was already completed, has expired, or was started in another browser. Start again.",
        )
    code = request.GET.get("code", "")
    if not code:
        raise SignInFailure("missing_code", 400, "The answer from the identity provider carries no code. Start again.")
    with _provider_errors():
        metadata = _metadata(client)
        token = client.fetch_access_token(
            redirect_uri=flow["redirect_uri"], code=code, code_verifier=flow["code_verifier"]
        )
        if "id_token" not in token:
            raise SignInFailure("no_id_token", 502, "The identity provider sent no ID token.")
        claims = dict(client.parse_id_token(token, nonce=flow["nonce"], leeway=CLOCK_SKEW_SECONDS))
        if isinstance(metadata.get("userinfo_endpoint"), str):
            # Many providers put profile and group claims in UserInfo only. Its `sub` must be the ID token's
            # (OpenID Connect Core 5.3.2); the ID token's own claims win over UserInfo's.
            userinfo = client.userinfo(token=token)
            if userinfo.get("sub") != claims["sub"]:
                raise SignInFailure("userinfo_subject_mismatch", 401, "The identity provider's answers disagree.")
            claims = {**userinfo, **claims}
    return VerifiedSignIn(issuer=metadata["issuer"], claims=claims, next_url=flow.get("next", ""))


_CLAIM_REASONS = {"aud": "wrong_audience", "azp": "wrong_audience", "nonce": "bad_nonce", "iss": "wrong_issuer"}
_ID_TOKEN_REFUSED = (
    "The identity provider's ID token was refused ({}). Start again; if it happens again, tell an admin."
)


@contextmanager
def _provider_errors():
    """Every way a call to the provider can fail, as a SignInFailure: never a 500, never the provider's own text."""
    try:
        yield
    except ExpiredTokenError:
        raise SignInFailure("expired_id_token", 401, _ID_TOKEN_REFUSED.format("it has expired"))
    except ClaimError as error:
        reason = _CLAIM_REASONS.get(error.claim, "invalid_id_token")
        raise SignInFailure(reason, 401, _ID_TOKEN_REFUSED.format(f"claim {error.claim}"))
    except JoseError:
        raise SignInFailure("invalid_id_token", 401, _ID_TOKEN_REFUSED.format("its signature does not verify"))
    except OAuthError as error:
        code = _ERROR_CODE.sub("", str(error.error or "").lower())[:40]
        raise SignInFailure(
            "token_refused", 502, f"The identity provider refused to complete the sign-in ({code}).", code
        )
    except requests.exceptions.JSONDecodeError:
        raise SignInFailure("provider_bad_answer", 502, "The identity provider answered something that is not JSON.")
    except requests.HTTPError as error:
        if error.response is not None and error.response.status_code < 500:
            raise SignInFailure("provider_bad_answer", 502, "The identity provider refused a request of coderauth.")
        raise _unavailable()
    except requests.RequestException:
        raise _unavailable()
    except (KeyError, TypeError, ValueError):
        raise SignInFailure("provider_bad_answer", 502, "The identity provider answered something unexpected.")


def _unavailable() -> SignInFailure:
    return SignInFailure(
        "provider_unavailable", 503, "The identity provider cannot be reached right now. Try again in a minute."
    )
