"""Single sign-on in a real browser: Chromium follows "Sign in with …" to the OpenID Provider (npm's
oidc-provider on loopback), fills in the provider's own login form, and lands on the dashboard with the role the
provider's groups map to."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.sso.conftest import point_at
from tests.sso.harness import ADMIN_GROUP, OpenIdProvider

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def provider(live_server, settings, tmp_path):
    provider = OpenIdProvider(redirect_uris=[f"{live_server.url}/sso/callback/"], workdir=tmp_path).start()
    point_at(settings, provider)
    settings.CODERAUTH_PASSWORD_LOGIN = False
    yield provider
    provider.stop()


def test_sign_in_through_the_providers_form_lands_on_the_dashboard_as_admin(page, provider):
    provider.accounts(
        judy={"sub": "sub-judy", "email": "judy@example.com", "preferred_username": "judy", "groups": [ADMIN_GROUP]}
    )
    refused = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    page.goto("/")
    expect(page.get_by_label("Password")).to_have_count(0)
    page.get_by_role("link", name="Sign in with Acme SSO").click()

    expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
    assert page.url.startswith(provider.issuer)
    page.get_by_label("Login name").fill("judy")
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator(".who")).to_contain_text("judy")
    expect(page.locator(".who .role")).to_have_text("admin")
    expect(page.get_by_role("link", name="Audit log")).to_be_visible()
    assert not refused, refused


def test_the_failure_page_and_the_one_time_code_page_keep_the_policy(page, provider):
    refused = []
    page.on(
        "console", lambda message: refused.append(message.text) if "Content Security Policy" in message.text else None
    )
    page.goto("/sso/callback/?state=forged&code=forged")
    expect(page.get_by_role("alert")).to_contain_text("already completed, has expired")
    page.get_by_role("link", name="Back to sign-in").click()
    page.get_by_role("link", name="one-time code").click()
    page.get_by_label("One-time code").fill("cdb_not-a-real-code")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown, already used or expired")
    assert not refused, refused
