"""Fixtures of the single sign-on tests: one OpenID Provider for the session, and coderauth pointed at it."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from tests.sso.harness import ADMIN_GROUP, AUDITOR_GROUP, CLIENT_ID, OpenIdProvider, SsoBrowser

# Django's test client serves coderauth as http://testserver.
REDIRECT_URI = "http://testserver/sso/callback/"


@pytest.fixture(scope="session")
def openid_provider(tmp_path_factory):
    provider = OpenIdProvider(redirect_uris=[REDIRECT_URI], workdir=tmp_path_factory.mktemp("openid-provider"))
    provider.start()
    yield provider
    provider.stop()


def point_at(settings, provider: OpenIdProvider, *, client_id: str = CLIENT_ID) -> None:
    settings.CODERAUTH_OIDC_ISSUER = provider.issuer
    settings.CODERAUTH_OIDC_CLIENT_ID = client_id
    settings.CODERAUTH_OIDC_CLIENT_SECRET = provider.client_secret
    settings.CODERAUTH_OIDC_NAME = "Acme SSO"
    settings.CODERAUTH_OIDC_ADMIN_GROUPS = [ADMIN_GROUP]
    settings.CODERAUTH_OIDC_AUDITOR_GROUPS = [AUDITOR_GROUP]


@pytest.fixture
def sso(db, settings, openid_provider) -> SsoBrowser:
    """coderauth with single sign-on through the session's provider, and a browser to sign in with."""
    point_at(settings, openid_provider)
    openid_provider.accounts()
    cache.clear()  # the sign-in budget per address: every test's requests come from 127.0.0.1
    return SsoBrowser(Client(), openid_provider)


@pytest.fixture
def own_provider(tmp_path, settings, db):
    """A provider of this test's own, which it may stop or restart."""
    provider = OpenIdProvider(redirect_uris=[REDIRECT_URI], workdir=tmp_path).start()
    point_at(settings, provider)
    cache.clear()
    yield provider
    provider.stop()
