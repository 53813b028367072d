"""manage.py deliver_webhooks --once: what is due goes out, the line says how it went; an access request and its
decision reach a real receiver, signed, as the JSON the elevation services wrote."""

from __future__ import annotations

import json
import os
import signal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError

from agents.authentication import AgentTokenAuthentication
from agents.management.commands import deliver_webhooks
from agents.models import WebhookDelivery, Workspace
from agents.services.elevation import access_request_approve, access_request_create
from agents.services.tokens import agent_token_issue
from agents.services.webhook_delivery import DeliveryPass
from tests.helpers.webhooks import WebhookReceiver, due_delivery, signature_is_valid

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


def _deliver(*args: str) -> str:
    out = StringIO()
    call_command("deliver_webhooks", *args, stdout=out)
    return out.getvalue()


def test_once_delivers_what_is_due_and_says_how_it_went(receiver):
    good = [due_delivery(receiver.url) for _ in range(3)]
    failing = due_delivery(receiver.url.replace("/hook", "/fail"))

    assert _deliver("--once") == "delivered 3, retrying 1\n"

    assert sorted(receiver.delivery_ids()) == sorted([*(row.pk for row in good), failing.pk])
    assert WebhookDelivery.objects.filter(delivered_at__isnull=False).count() == 3
    failing.refresh_from_db()
    assert failing.delivered_at is None and failing.last_error == "HTTP 500"
    assert _deliver("--once") == "delivered 0, retrying 0\n", "the failed row waits for its backoff"


def test_once_with_nothing_due_sends_nothing(receiver):
    assert _deliver("--once") == "delivered 0, retrying 0\n"
    assert receiver.received == []


@pytest.mark.parametrize("interval", ["0", "-1", "100000"])
def test_interval_out_of_range_is_refused(interval):
    with pytest.raises(CommandError, match="--interval"):
        _deliver("--interval", interval)


def test_an_access_request_and_its_approval_reach_the_receiver(receiver, settings, agent, member, admin_user):
    settings.CODERAUTH_ELEVATION_WEBHOOK_URL = [receiver.url]
    settings.CODERAUTH_ELEVATION_WEBHOOK_SECRET = "shared-with-the-receiver"
    plaintext = agent_token_issue(actor=member, agent=agent, name="full").plaintext
    Workspace.objects.filter(pk=agent.workspace_id).update(permission_mode="no-user-data")
    request = type("Request", (), {"headers": {"Authorization": f"Bearer {plaintext}"}})()
    principal = AgentTokenAuthentication().authenticate(request)[0]
    created = access_request_create(
        principal=principal, scopes=["agent:gitsshkey"], reason="push the release tag", duration_seconds=600
    )
    access_request_approve(actor=admin_user, request_id=created.id, reason="release day")

    assert _deliver("--once") == "delivered 2, retrying 0\n"

    events = [(request.headers["x-coderauth-event"], json.loads(request.body)) for request in receiver.received]
    assert [event for event, _ in events] == ["access_request.created", "access_request.approved"]
    assert all(body["request"]["id"] == str(created.id) for _, body in events)
    assert [body["event"] for _, body in events] == ["access_request.created", "access_request.approved"]
    assert all(signature_is_valid(request, "shared-with-the-receiver") for request in receiver.received)
    assert plaintext not in "".join(request.body.decode() for request in receiver.received)


def test_a_database_error_is_survived_and_sigterm_stops_the_loop(monkeypatch):
    """The forever loop outlives a lost database (it reconnects on the next poll) and ends cleanly on SIGTERM,
    finishing the pass it is in."""
    calls = []

    def deliver_due(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        os.kill(os.getpid(), signal.SIGTERM)
        return DeliveryPass(delivered=1)

    monkeypatch.setattr(deliver_webhooks, "webhook_deliveries_deliver_due", deliver_due)
    previous = signal.getsignal(signal.SIGTERM)
    out, err = StringIO(), StringIO()

    call_command("deliver_webhooks", "--interval", "0.05", stdout=out, stderr=err)

    assert len(calls) == 2
    assert err.getvalue() == "database error, retrying: OperationalError\n"
    assert out.getvalue().splitlines()[1:] == ["delivered 1, retrying 0", "Stopped."]
    assert signal.getsignal(signal.SIGTERM) is previous, "the command puts the previous handler back"
