"""The "Audit streaming" page and the stream's metrics: each sink's cursor, lag, deliveries and last error, for
admins and auditors (members get a 404, as on the webhook page), read in one query however many sinks there are."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.models import AuditEvent
from tests.helpers.audit import record_events
from tests.helpers.metrics import METRICS_TOKEN, parse_samples, sample_value
from tests.helpers.pages import count_queries
from tests.helpers.responses import assert_status
from tests.streaming.conftest import SECRET

pytestmark = pytest.mark.django_db

PAGE = "ui:audit-streaming"
PATH_TOKEN = "receiver-path-token"


@pytest.mark.parametrize(("role", "expected"), [("admin", 200), ("auditor", 200), ("member", 404), ("anonymous", 302)])
def test_who_may_see_the_page(web_for, role, expected):
    assert_status(web_for(role).get(reverse(PAGE)), expected)


def test_the_navigation_links_the_page_for_readers_only(admin_web, auditor_web, member_web):
    link = f'href="{reverse(PAGE)}"'
    assert link in admin_web.get(reverse("ui:home")).content.decode()
    assert link in auditor_web.get(reverse("ui:home")).content.decode()
    assert link not in member_web.get(reverse("ui:home")).content.decode()


def test_each_sink_shows_its_cursor_lag_deliveries_and_last_error(
    auditor_web, configure, stream, tcp_receiver, http_receiver
):
    events = record_events(3)
    sinks = configure(f"{tcp_receiver.url}?name=siem", f"{http_receiver.url}?format=ocsf&name=lake")
    http_receiver.stop()
    stream(sinks)
    more = record_events(2)

    body = auditor_web.get(reverse(PAGE)).content.decode()

    siem, lake = body.split("<code>siem</code>", 1)[1].split("<code>lake</code>", 1)
    assert f"#{events[-1].id}</a>" in siem and f"127.0.0.1:{tcp_receiver.port}" in siem
    assert ">2</span>" in siem, "siem has yet to receive the two events written since"
    sealed = AuditEvent.objects.exclude(hash="").count()
    assert sealed >= len(events + more)
    assert f">{sealed}</span>" in lake, "lake has received nothing"
    assert "ocsf" in lake and "none yet" in lake and "ConnectError" in lake and "1 failure in a row" in lake
    assert "1 failing" in body
    for secret in (PATH_TOKEN, SECRET):
        assert secret not in body


def test_a_bad_setting_is_shown_not_a_server_error(admin_web, settings):
    settings.CODERAUTH_AUDIT_SINKS = ["https://user:hunter2@siem.example.com/ingest/path-secret"]
    response = admin_web.get(reverse(PAGE))
    body = response.content.decode()
    assert response.status_code == 200
    assert "CODERAUTH_AUDIT_SINKS entry 1 (https://siem.example.com) carries credentials" in body
    assert "hunter2" not in body and "path-secret" not in body


def test_no_sink_configured(admin_web):
    assert "No sink configured" in admin_web.get(reverse(PAGE)).content.decode()


def test_the_page_reads_every_sink_in_one_query(admin_web, configure):
    configure("syslog+udp://127.0.0.1:514")
    one = count_queries(admin_web, reverse(PAGE))
    configure(*(f"syslog+udp://127.0.0.1:{port}" for port in range(514, 524)))
    assert count_queries(admin_web, reverse(PAGE)) == one


def test_metrics_give_each_sinks_lag_and_deliveries(settings, configure, stream, tcp_receiver):
    settings.CODERAUTH_METRICS_TOKEN = METRICS_TOKEN
    record_events(4)
    sinks = configure(f"{tcp_receiver.url}?name=siem", "syslog+tcp://127.0.0.1:9?name=down")
    stream(sinks)
    record_events(1)

    with CaptureQueriesContext(connection) as queries:
        response = Client().get(reverse("metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    samples = parse_samples(response.content.decode())

    assert sample_value(samples, "coderauth_audit_stream_delivered_total", sink="siem") == 4
    assert sample_value(samples, "coderauth_audit_stream_lag_events", sink="siem") == 1
    assert sample_value(samples, "coderauth_audit_stream_delivered_total", sink="down") == 0
    assert sample_value(samples, "coderauth_audit_stream_lag_events", sink="down") == 5
    assert len(queries) == 1, "one query for every sink"
    assert tcp_receiver.url.split("//")[1] not in response.content.decode(), "labelled by name, not by address"


def test_metrics_export_nothing_without_sinks(settings):
    settings.CODERAUTH_METRICS_TOKEN = METRICS_TOKEN
    with CaptureQueriesContext(connection) as queries:
        response = Client().get(reverse("metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert "coderauth_audit_stream" not in response.content.decode()
    assert len(queries) == 0
