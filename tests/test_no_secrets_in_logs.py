"""No secret reaches a log: the main flow (tests/test_main_flow.py's: login, token issue, the agent reading the SSH
key and an OAuth token, a denial, a revoke, a rejected replay) leaves no token plaintext, no SSH private key (nor
any "PRIVATE KEY" block), no OAuth access token and no password in anything logged, nor in /metrics.

Two captures. In this process: every logger at DEBUG, those that do not propagate included, with the SQL Django
logs at DEBUG (statements and their parameters), plus whatever reaches file descriptors 1 and 2. And a real
gunicorn started with the production settings and LOG_LEVEL=DEBUG, whose whole stdout and stderr (its own debug
and access logs included) is read after the flow ran over HTTP.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing, contextmanager
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from agents.models import WorkspaceAgent
from tests.helpers.factories import PASSWORD, AdminFactory, UserFactory
from tests.helpers.metrics import METRICS_TOKEN

ROOT = Path(__file__).resolve().parent.parent
B = "/api/v2"
# A secret's public counterpart, whose text may appear anywhere: the SSH private key's public key.
PUBLIC: dict[str, str] = {}


class Api:
    """The flow's one way of calling the API, over Django's test client or over HTTP."""

    def __init__(self, call):
        self._call = call

    def __call__(self, method: str, path: str, *, token: str | None = None, body: dict | None = None, status: int):
        answer_status, answer = self._call(method, path, token, body)
        assert answer_status == status, (method, path, answer_status, answer)
        return answer


def in_process_api() -> Api:
    def call(method, path, token, body):
        client = APIClient()
        if token:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        response = getattr(client, method)(path, body, format="json")
        return response.status_code, (response.json() if response.content else None)

    return Api(call)


def http_api(base_url: str) -> Api:
    http = httpx.Client(base_url=base_url, timeout=30)

    def call(method, path, token, body):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = http.request(method.upper(), path, json=body, headers=headers)
        return response.status_code, (response.json() if response.content else None)

    return Api(call)


def run_flow(api: Api, *, admin: str, owner: str) -> dict[str, str]:
    """The main flow, with an OAuth link so that the agent reads an access token too. Returns every secret."""
    found = {"password": PASSWORD, "access_token": "gho_" + secrets.token_urlsafe(30)}
    login = api("post", f"{B}/users/login", body={"username": admin, "password": PASSWORD}, status=201)
    found["admin_session"] = admin_token = login["session_token"]
    api("post", f"{B}/users/login", body={"username": owner, "password": PASSWORD + "-wrong"}, status=401)
    found["owner_session"] = owner_token = api(
        "post", f"{B}/users/login", body={"username": owner, "password": PASSWORD}, status=201
    )["session_token"]
    found["user_api_token"] = api("post", f"{B}/users/me/tokens", token=owner_token, body={"name": "cli"}, status=201)[
        "token"
    ]

    provider = {"id": "github", "type": "github", "regex": r"^https://github\.com/"}
    api("post", f"{B}/external-auth/providers", token=admin_token, body=provider, status=201)
    link = {"access_token": found["access_token"], "token_extra": {}}
    api("put", f"{B}/users/me/external-auth/github", token=owner_token, body=link, status=200)

    workspace = api("post", f"{B}/workspaces", token=owner_token, body={"name": "payments"}, status=201)
    agent = api(
        "post", f"{B}/workspaces/{workspace['id']}/agents", token=owner_token, body={"name": "main"}, status=201
    )
    issued = api("post", f"{B}/workspaceagents/{agent['id']}/tokens", token=owner_token, body={}, status=201)
    found["agent_token"] = token = issued["token"]

    api("get", f"{B}/workspaceagents/me/manifest", token=token, status=200)
    key = api("get", f"{B}/workspaceagents/me/gitsshkey", token=token, status=200)
    found["ssh_private_key"] = key["private_key"]
    PUBLIC[found["ssh_private_key"]] = key["public_key"]
    oauth = api("get", f"{B}/workspaceagents/me/external-auth?id=github", token=token, status=200)
    assert oauth["access_token"] == found["access_token"]
    api("get", f"{B}/workspaceagents/me/gitauth?url=https://github.com/acme/app.git", token=token, status=200)
    child = api("post", f"{B}/workspaceagents/me/tokens", token=token, body={"scopes": ["agent:report"]}, status=201)
    found["child_token"] = child["token"]

    # The denial: the workspace goes to no-user-data and the same token is refused the key.
    body = {"permission_mode": "no-user-data", "reason": "agent only reports status"}
    api("patch", f"{B}/workspaces/{workspace['id']}", token=owner_token, body=body, status=200)
    api("get", f"{B}/workspaceagents/me/gitsshkey", token=token, status=403)
    api("get", f"{B}/users/me", token=token, status=401)

    # Revoke, then replay the revoked token and its child: refused, logged by hint only.
    api("delete", f"{B}/workspaceagents/{agent['id']}/tokens/{issued['id']}", token=owner_token, status=204)
    api("get", f"{B}/workspaceagents/me/manifest", token=token, status=401)
    api("get", f"{B}/workspaceagents/me/manifest", token=found["child_token"], status=401)
    return found


def leaks(found: dict[str, str], text: str) -> list[str]:
    """Which secrets appear in `text`, whole or as any 16-character piece (a token minus its prefix, one line of
    the key's body); and any PEM private-key block at all. An OpenSSH private key holds its public key too:
    pieces of that public half are not secret."""
    leaked = ["a PRIVATE KEY block"] if "PRIVATE KEY" in text else []
    for name, secret in found.items():
        public = PUBLIC.get(secret, "")
        pieces = [secret] if len(secret) < 16 else [secret[i : i + 16] for i in range(len(secret) - 15)]
        pieces = [piece for piece in pieces if "-----" not in piece and "\n" not in piece and piece not in public]
        if any(piece in text for piece in pieces):
            leaked.append(name)
    return leaked


@contextmanager
def every_log_record():
    """Every record of every logger at DEBUG, into one buffer; the loggers' levels are restored afterwards."""
    buffer = StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        # A logger that does not propagate would keep its records from the root's handler.
        if logger is logging.getLogger() or not logger.propagate:
            logger.addHandler(handler)
    try:
        yield buffer
    finally:
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled
            logger.removeHandler(handler)


@pytest.mark.django_db
def test_main_flow_logs_no_secret_in_process(capfd):
    """Security regression: nothing logged at any level by any logger, SQL and its parameters included, nor
    written to stdout or stderr, holds a token, the SSH private key, the OAuth access token or the password."""
    AdminFactory(username="admin")
    owner = UserFactory(username="owner")
    connection.force_debug_cursor = True
    try:
        with every_log_record() as logged:
            found = run_flow(in_process_api(), admin="admin", owner="owner")
            # The web UI's one-time token page too.
            web = Client()
            web.force_login(owner)
            agent = WorkspaceAgent.objects.get(workspace__owner=owner)
            page = web.post(
                reverse("ui:agent-token-issue", args=[agent.pk]),
                {"name": "ui", "scopes": ["agent:connect"], "lifetime_days": "1"},
            )
            assert page.status_code == 201
            found["ui_agent_token"] = page.content.decode().split('id="new-token">', 1)[1].split("<", 1)[0]
            with override_settings(CODERAUTH_METRICS_TOKEN=METRICS_TOKEN):
                scraped = web.get(reverse("metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    finally:
        connection.force_debug_cursor = False
    output = capfd.readouterr()
    text = logged.getvalue() + output.out + output.err
    found["metrics_token"] = METRICS_TOKEN

    assert not leaks(found, text), leaks(found, text)
    assert scraped.status_code == 200 and b"coderauth_agent_requests_total" in scraped.content
    assert not leaks(found, scraped.content.decode()), leaks(found, scraped.content.decode())
    # The capture saw what it should: SQL at DEBUG, refusals at WARNING, the rejected token by its hint.
    assert "django.db.backends" in text and "agents_agenttoken" in text
    assert "Forbidden: /api/v2/workspaceagents/me/gitsshkey" in text
    assert "Rejected agent token presented" in text and found["agent_token"][-4:] in text


def _free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _test_database_url() -> str:
    """DATABASE_URL, pointed at the test database this session created."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path=f"/{connection.settings_dict['NAME']}"))


@pytest.fixture
def gunicorn_debug(transactional_db, tmp_path):
    """gunicorn on loopback with the production settings, every log at DEBUG, stdout and stderr to one file."""
    port = _free_port()
    log_path = tmp_path / "server.log"
    env = {
        **{key: value for key, value in os.environ.items() if key not in ("DJANGO_SETTINGS_MODULE", "DEBUG")},
        "DJANGO_SETTINGS_MODULE": "coderauth.settings",
        "DATABASE_URL": _test_database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "SERVED_OVER_HTTPS": "false",
        "LOG_LEVEL": "DEBUG",
        "CODERAUTH_METRICS_TOKEN": METRICS_TOKEN,
    }
    with log_path.open("wb") as log:
        server = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "python:coderauth.gunicorn",
                "coderauth.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "--log-level",
                "debug",
                "--access-logfile",
                "-",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base_url}{B}/users/me", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
                time.sleep(0.2)
        yield base_url, log_path
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_main_flow_logs_no_secret_from_a_real_server(gunicorn_debug):
    """Security regression: the same flow against gunicorn with the production settings at LOG_LEVEL=DEBUG; its
    whole output, access log included, holds no secret."""
    base_url, log_path = gunicorn_debug
    # The production settings check passwords with PBKDF2, not the tests' fast hasher.
    for user in (AdminFactory(username="admin"), UserFactory(username="owner")):
        user.password = PBKDF2PasswordHasher().encode(PASSWORD, secrets.token_hex(8))
        user.save(update_fields=["password"])
    found = run_flow(http_api(base_url), admin="admin", owner="owner")
    scraped = httpx.get(f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30)
    time.sleep(0.5)  # the last access-log lines
    text = log_path.read_text(errors="replace")
    found["metrics_token"] = METRICS_TOKEN

    assert not leaks(found, text), leaks(found, text)
    assert scraped.status_code == 200 and "coderauth_agent_requests_total" in scraped.text
    assert not leaks(found, scraped.text), leaks(found, scraped.text)
    assert "GET /api/v2/workspaceagents/me/gitsshkey" in text, "the access log is captured"
    assert "Rejected agent token presented" in text and found["agent_token"][-4:] in text
