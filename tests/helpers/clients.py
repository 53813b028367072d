"""Clients per principal: API clients carrying a bearer token, and a signed-in browser session."""

from __future__ import annotations

from django.test import Client
from rest_framework.test import APIClient

from agents.services.users import user_token_issue


def client_for_user(user) -> APIClient:
    """An API client carrying a fresh user API token for `user`."""
    issued = user_token_issue(user=user, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


def client_for_agent_token(plaintext: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def client_logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client
