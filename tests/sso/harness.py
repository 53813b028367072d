"""A real OpenID Provider on loopback for the single sign-on tests: npm's certified oidc-provider, configured by
tests/sso/provider/provider.mjs, installed by `make oidc-provider` into .cache/oidc-provider/.

The tests skip only when node itself is missing; a missing package is a failure that says how to install it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "sso" / "provider" / "provider.mjs"
PROVIDER_HOME = ROOT / ".cache" / "oidc-provider"
# The clients provider.mjs registers: a well-behaved one, and two whose ID tokens are wrong in one way each.
CLIENT_ID = "coderauth"
WRONG_AUDIENCE_CLIENT_ID = "coderauth-wrong-audience"
CLOCK_BEHIND_CLIENT_ID = "coderauth-clock-behind"
ADMIN_GROUP = "coderauth-admins"
AUDITOR_GROUP = "coderauth-auditors"


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the single sign-on tests run npm's oidc-provider on loopback")
    if not (PROVIDER_HOME / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("The test OpenID Provider is not installed: run `make oidc-provider` (make test does).")
    return node


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OpenIdProvider:
    """One oidc-provider process. `accounts()` says who may sign in; a restart keeps the port (so the issuer) and
    signs with a new key."""

    def __init__(self, *, redirect_uris: list[str], workdir: Path):
        self.port = free_port()
        self.client_secret = secrets.token_urlsafe(24)
        self.redirect_uris = redirect_uris
        self.accounts_file = workdir / "accounts.json"
        self.log_file = workdir / "provider.log"
        self.accounts()
        self._process: subprocess.Popen | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accounts(self, **accounts: dict) -> None:
        """Who may sign in, by login name: {"sub": ..., "groups": [...], "email": ..., "preferred_username": ...}."""
        self.accounts_file.write_text(json.dumps(accounts), encoding="utf-8")

    def start(self) -> OpenIdProvider:
        env = {
            **os.environ,
            "OIDC_PROVIDER_HOME": str(PROVIDER_HOME),
            "PORT": str(self.port),
            "REDIRECT_URIS": ",".join(self.redirect_uris),
            "CLIENT_SECRET": self.client_secret,
            "ACCOUNTS_FILE": str(self.accounts_file),
        }
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv
                [node_or_skip(), str(SCRIPT)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"the OpenID Provider did not start:\n{self.log_file.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def key_ids(self) -> list[str]:
        return [key["kid"] for key in httpx.get(f"{self.issuer}/jwks", timeout=5).json()["keys"]]

    def sign_in(self, authorization_url: str, *, login: str, cancel: bool = False) -> str:
        """Play the browser at the provider: follow the authorization URL to the provider's login form, submit
        `login` (or press Cancel), and return the URL the provider sends the browser back to (the app's)."""
        url = authorization_url
        with httpx.Client(timeout=10) as browser:
            for _ in range(10):
                if not url.startswith(self.issuer):
                    return url
                response = browser.get(url)
                if response.is_redirect:
                    url = urljoin(url, response.headers["location"])
                    continue
                form = re.search(r'action="(/interaction/[\w-]+)/login"', response.text)
                assert response.status_code == 200 and form, (response.status_code, response.text[:2000])
                action = f"{form.group(1)}/{'abort' if cancel else 'login'}"
                response = browser.post(urljoin(self.issuer, action), data={"login": login, "password": "unused"})
                assert response.is_redirect, (response.status_code, response.text[:2000])
                url = urljoin(url, response.headers["location"])
        raise AssertionError(f"the provider never sent the browser back: {url}")


class SsoBrowser:
    """A browser at coderauth (Django's test client) that signs in through the provider (over HTTP)."""

    def __init__(self, client, provider: OpenIdProvider):
        self.client = client
        self.provider = provider

    def start(self, next_url: str = "") -> str:
        """Press "Sign in with …": the authorization URL coderauth redirects to."""
        response = self.client.get("/sso/login/", {"next": next_url} if next_url else {})
        assert response.status_code == 302, (response.status_code, response.content[:2000])
        return response["Location"]

    def callback_url(self, login: str, *, next_url: str = "", tamper=None, cancel: bool = False) -> str:
        """The provider's answer, not yet delivered to coderauth; `tamper` may rewrite the authorization URL."""
        authorization_url = self.start(next_url)
        if tamper is not None:
            authorization_url = tamper(authorization_url)
        return self.provider.sign_in(authorization_url, login=login, cancel=cancel)

    def sign_in(self, login: str, **kwargs):
        """The whole flow; coderauth's answer at the redirect URI."""
        return self.client.get(self.callback_url(login, **kwargs))
