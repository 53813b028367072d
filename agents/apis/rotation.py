"""Rotation of the caller's own child token (the MCP server's renewal token), with reuse detection."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from agents.apis.agent import AgentApi
from agents.apis.workspaces import IssuedAgentTokenSerializer, issued_agent_token_body
from agents.authentication import INVALID_TOKEN
from agents.services import rotation
from core.http.openapi import errors
from policies.scopes import ANY_VALID_AGENT_TOKEN


class AgentTokenRotateApi(AgentApi):
    """A child token is replaced by a successor with a new secret that takes over its children; the old one is
    revoked, and presenting it again revokes the whole lineage (agents/services/rotation.py)."""

    required_scope = ANY_VALID_AGENT_TOKEN
    carries_secret = True  # the successor: Cache-Control: no-store (core/http/no_store.py)

    @extend_schema(request=None, responses={201: IssuedAgentTokenSerializer, **errors(400, 401)})
    def post(self, request):
        issued = rotation.agent_token_rotate(principal=request.auth)
        if issued is None:
            # Revoked or rotated while the request waited for the tree: the same answer as at authentication.
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        return Response(issued_agent_token_body(issued), status=status.HTTP_201_CREATED)
