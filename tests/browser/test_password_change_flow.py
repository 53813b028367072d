"""A person changes their password in a real browser: the page says what was revoked, this browser stays
signed in, and the API token and the other browser signed in before stop working."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from agents.services.users import user_token_issue
from tests.helpers.browser import sign_in
from tests.helpers.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a fresh and long passphrase 31"


def test_a_password_change_in_the_browser_revokes_the_other_credentials(page, browser, live_server):
    member = UserFactory(username="mo")
    api_token = user_token_issue(user=member, name="laptop").plaintext
    elsewhere = browser.new_context(base_url=live_server.url)
    other_page = elsewhere.new_page()
    sign_in(other_page, "mo")

    sign_in(page, "mo")
    page.get_by_role("link", name="mo", exact=True).click()
    expect(page.get_by_role("heading", name="Change your password")).to_be_visible()
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("New password again").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("Revoked elsewhere: 1 session and 1 API token")

    page.get_by_role("link", name="Workspaces", exact=True).click()
    expect(page.get_by_role("heading", name="Workspaces", exact=True)).to_be_visible()
    other_page.goto("/workspaces/")
    expect(other_page.get_by_role("button", name="Sign in")).to_be_visible()
    me = httpx.get(f"{live_server.url}/api/v2/users/me", headers={"Authorization": f"Bearer {api_token}"})
    assert me.status_code == 401
    elsewhere.close()
