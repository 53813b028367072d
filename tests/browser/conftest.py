"""Real-browser fixtures: Playwright driving Debian's Chromium against pytest-django's live server.

No browser is downloaded: `make test` installs the `chromium` package when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.core.cache import cache

CHROMIUM = os.environ.get("CODERAUTH_CHROMIUM", "/usr/bin/chromium")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser():
    """One Chromium per module. Module scope, not session: Playwright's sync API keeps an asyncio loop
    running in this thread while it is open, which would break later tests that call asyncio.run()."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (or: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    # That running loop also trips Django's async guard on the tests' own (synchronous, same-thread)
    # ORM calls; it is a false alarm here, so lift the guard only while the browser is open.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True)
def _plain_http_cookies(settings):
    """The live server speaks plain HTTP; production keeps Secure cookies (settings: not DEBUG)."""
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False


@pytest.fixture
def page(browser, live_server):
    # Sign-in attempts are rate-limited per address (127.0.0.1 for every test); start each test afresh.
    cache.clear()
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1366, "height": 900}, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()
