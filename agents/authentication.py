"""The two authentication flows as DRF sees them. Each stands alone and refuses the other's tokens.

Header -> prefix -> format and checksum (core.tokens, no database) -> agents.services.principals.
Unknown, revoked and expired tokens get the same message to guard against enumeration.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from agents.services.principals import agent_principal_resolve, user_token_resolve
from core import tokens
from core.http.metrics import agent_request_rejected

INVALID_TOKEN = "Invalid, expired or revoked token."
MALFORMED_TOKEN = "Malformed token."
AGENT_TOKEN_REQUIRED = "This route requires an agent token; user tokens are not accepted here."
USER_TOKEN_REQUIRED = "This route requires a user session or user token; agent tokens are not accepted here."


def token_from_headers(request) -> str | None:
    """`Authorization: Bearer <token>` or Coder's `Coder-Session-Token`; never the query string."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip() or " " in credentials.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        return credentials.strip()
    coder_header = request.headers.get("Coder-Session-Token", "").strip()
    return coder_header or None


def _well_formed_token(request, *, kind: tokens.TokenKind, wrong_kind_message: str) -> str | None:
    """The request's token if it is a well-formed token of `kind`; None when there is none at all."""
    raw = token_from_headers(request)
    if raw is None:
        return None
    claimed = tokens.kind_of(raw)
    if claimed is not None and claimed != kind:
        raise exceptions.AuthenticationFailed(wrong_kind_message)
    if claimed != kind or not tokens.is_well_formed(raw, kind):
        raise exceptions.AuthenticationFailed(MALFORMED_TOKEN)
    return raw


class AgentTokenAuthentication(authentication.BaseAuthentication):
    """Agent routes only: accepts `cda_` tokens, refuses user tokens and sessions."""

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="agent"'

    def authenticate(self, request):
        try:
            raw = _well_formed_token(request, kind="agent", wrong_kind_message=AGENT_TOKEN_REQUIRED)
            if raw is None:
                return None  # no token at all: HasAgentScope refuses (and counts) it
            principal = agent_principal_resolve(raw_token=raw)
            if principal is None:
                raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        except exceptions.AuthenticationFailed:
            agent_request_rejected(request)
            raise
        return principal, principal


class UserTokenAuthentication(authentication.BaseAuthentication):
    """User routes: `cdu_` session and API tokens. Agent tokens are refused outright."""

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="user"'

    def authenticate(self, request):
        raw = _well_formed_token(request, kind="user", wrong_kind_message=USER_TOKEN_REQUIRED)
        if raw is None:
            return None
        token = user_token_resolve(raw_token=raw)
        if token is None:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        return token.user, token


class UserSessionAuthentication(authentication.SessionAuthentication):
    """The web UI's session cookie, with CSRF enforced on unsafe methods (DRF's behaviour)."""


# How the OpenAPI schema names the three schemes (drf-spectacular finds these subclasses by import).


class AgentTokenScheme(OpenApiAuthenticationExtension):
    target_class = AgentTokenAuthentication
    name = "agentToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Agent token `cda_...` (also accepted in the `Coder-Session-Token` header).",
        }


class UserTokenScheme(OpenApiAuthenticationExtension):
    target_class = UserTokenAuthentication
    name = "userToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "User session or API token `cdu_...` (also accepted in `Coder-Session-Token`).",
        }


class UserSessionScheme(OpenApiAuthenticationExtension):
    target_class = UserSessionAuthentication
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
