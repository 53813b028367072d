"""Fixtures for the streaming tests: real receivers on loopback, the sinks configured to reach them, fast retries."""

from __future__ import annotations

import pytest
from django.test import Client

from audit.streaming.delivery import StreamTransports, audit_stream_deliver
from audit.streaming.sinks import sinks_configured
from tests.helpers.clients import client_logged_in
from tests.streaming.receivers import HttpReceiver, SyslogStreamReceiver, SyslogUdpReceiver, make_tls_files

SECRET = "stream-hmac-secret-0123456789-abcdefghijklmnop"


@pytest.fixture(autouse=True)
def stream_settings(settings):
    """A known HMAC secret, and backoff in milliseconds rather than seconds."""
    settings.CODERAUTH_AUDIT_STREAM_HMAC_SECRET = SECRET
    settings.CODERAUTH_AUDIT_STREAM_RETRY_SECONDS = 0.05
    settings.CODERAUTH_AUDIT_STREAM_RETRY_MAX_SECONDS = 0.4
    settings.CODERAUTH_AUDIT_SINKS = []
    return settings


@pytest.fixture
def configure(stream_settings):
    """Point CODERAUTH_AUDIT_SINKS at these URLs; returns the parsed sinks."""

    def sinks(*urls: str):
        stream_settings.CODERAUTH_AUDIT_SINKS = list(urls)
        return sinks_configured()

    return sinks


@pytest.fixture
def stream():
    """deliver(sinks, **options): one pass, through transports kept for the whole test (as a worker keeps them)."""
    opened: list[StreamTransports] = []

    def deliver(sinks, **options):
        transports = options.pop("transports", None)
        if transports is None:
            if not opened:
                opened.append(StreamTransports(sinks))
            transports = opened[0]
        return audit_stream_deliver(sinks=sinks, transports=transports, seal_wait_seconds=0, **options)

    yield deliver
    for transports in opened:
        transports.close()


@pytest.fixture
def udp_receiver():
    receiver = SyslogUdpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def tcp_receiver():
    receiver = SyslogStreamReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_receiver(tls_files):
    receiver = SyslogStreamReceiver(tls_files.server_context())
    yield receiver
    receiver.close()


@pytest.fixture
def http_receiver():
    receiver = HttpReceiver(SECRET)
    yield receiver
    receiver.close()


@pytest.fixture
def web_for(admin_user, auditor_user, member):
    """A browser session per role, for the status page."""
    clients = {
        "admin": client_logged_in(admin_user),
        "auditor": client_logged_in(auditor_user),
        "member": client_logged_in(member),
        "anonymous": Client(),
    }
    return clients.__getitem__


@pytest.fixture
def admin_web(web_for) -> Client:
    return web_for("admin")


@pytest.fixture
def auditor_web(web_for) -> Client:
    return web_for("auditor")


@pytest.fixture
def member_web(web_for) -> Client:
    return web_for("member")
