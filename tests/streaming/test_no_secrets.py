"""Nothing secret leaves with the stream: the HMAC key of the HTTPS sinks, and the token an ingest URL's path carries,
appear in no message, no log line at any level, no command output, no page and no metric."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.urls import reverse

from audit.models import AuditStreamCursor
from tests.helpers.audit import make_event, record_events
from tests.helpers.metrics import METRICS_TOKEN
from tests.streaming.conftest import SECRET
from tests.test_no_secrets_in_logs import every_log_record, leaks

PATH_TOKEN = "receiver-path-token"


@pytest.mark.django_db
def test_the_hmac_secret_and_the_url_token_never_leave(
    settings, configure, http_receiver, tcp_receiver, admin_web, capfd
):
    """Security regression: a stream that fails, retries and delivers, watched through every output it has."""
    settings.CODERAUTH_METRICS_TOKEN = METRICS_TOKEN
    record_events(3)
    make_event("user.login_failed", actor_type="user", actor="alice", details={"method": "web", "reason": "bad"})
    configure(f"{http_receiver.url}?format=ocsf&name=lake", f"{tcp_receiver.url}?name=siem")
    http_receiver.fail_next = 1
    output = StringIO()
    connection.force_debug_cursor = True
    try:
        with every_log_record() as logged:
            # httpx logs each request's URL at INFO; the settings keep it at WARNING, as they do for the webhooks.
            logging.getLogger("httpx").setLevel(settings.LOGGING["loggers"]["httpx"]["level"])
            with pytest.raises(CommandError):
                call_command("stream_audit", "--once", stdout=output)
            http_receiver.stop()
            with pytest.raises(CommandError):
                call_command("stream_audit", "--once", stdout=output)
            http_receiver.start()
            call_command("stream_audit", "--once", stdout=output)
            page = admin_web.get(reverse("ui:audit-streaming")).content.decode()
            scraped = Client().get(reverse("metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    finally:
        connection.force_debug_cursor = False
    captured = capfd.readouterr()

    assert len(http_receiver.acknowledged()) == 4 and len(tcp_receiver.wait_for(4)) == 4, "the stream did deliver"
    sent = [batch.body.decode() for batch in http_receiver.batches]
    sent += [
        repr({k: v for k, v in batch.headers.items() if k != "x-coderauth-audit-signature"})
        for batch in http_receiver.batches
    ]
    sent += [message.msg for message in tcp_receiver.messages]
    errors = list(AuditStreamCursor.objects.values_list("last_error", flat=True))
    watched = {
        "messages": "\n".join(sent),
        "log": logged.getvalue() + captured.out + captured.err,
        "command output": output.getvalue(),
        "status page": page,
        "metrics": scraped.content.decode(),
        "cursor errors": "\n".join(errors),
    }
    assert "HTTP 500" in watched["command output"] and "ConnectError" in watched["status page"], "failures were seen"
    for where, text in watched.items():
        assert not leaks({"hmac_secret": SECRET}, text), f"the HMAC secret reached the {where}"
        if where != "messages":
            assert PATH_TOKEN not in text, f"the ingest URL's path reached the {where}"
