"""Delivering the webhook outbox (agents/services/webhook_delivery.py) to a real receiver on loopback: signed,
retried with backoff until it is accepted, never lost by a worker that dies, never sent by two workers at once."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from agents.models import WebhookDelivery
from agents.services.webhook_delivery import (
    RETRY_BASE_SECONDS,
    RETRY_CAP_SECONDS,
    webhook_deliveries_deliver_due,
    webhook_retry_delay,
)
from tests.helpers.webhooks import WebhookReceiver, due_delivery, signature_is_valid
from tests.reliability.servers import ROOT, server_environment
from tests.test_docs import code_blocks

SECRET = "receiver-shared-secret"


@pytest.fixture
def receiver():
    server = WebhookReceiver()
    yield server
    server.close()


@pytest.fixture
def failing_twice():
    server = WebhookReceiver(fail_first=2)
    yield server
    server.close()


@pytest.fixture
def secret(settings):
    settings.CODERAUTH_ELEVATION_WEBHOOK_SECRET = SECRET
    return SECRET


@pytest.mark.django_db
def test_delivered_once_with_a_valid_signature(receiver, secret):
    delivery = due_delivery(receiver.url, event="access_request.approved")

    result = webhook_deliveries_deliver_due()

    assert (result.delivered, result.retrying) == (1, 0)
    [request] = receiver.received
    assert request.body == delivery.body.encode(), "the exact stored bytes are POSTed"
    assert signature_is_valid(request, secret)
    assert not signature_is_valid(request, secret + "x")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-coderauth-event"] == "access_request.approved"
    assert request.headers["x-coderauth-delivery"] == str(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.delivered_at is not None
    assert (delivery.attempts, delivery.last_status, delivery.last_error) == (1, 204, "")
    assert webhook_deliveries_deliver_due().attempted == 0, "a delivered row is not sent again"
    assert len(receiver.received) == 1


@pytest.mark.django_db
def test_failing_receiver_is_retried_with_backoff_then_delivered(failing_twice, secret):
    delivery = due_delivery(failing_twice.url)
    start = timezone.now()

    first = webhook_deliveries_deliver_due(now=start)
    delivery.refresh_from_db()
    assert (first.delivered, first.retrying) == (0, 1)
    assert (delivery.attempts, delivery.last_status, delivery.last_error) == (1, 500, "HTTP 500")
    assert delivery.delivered_at is None
    first_delay = delivery.next_attempt_at - start
    assert timedelta(seconds=RETRY_BASE_SECONDS / 2) <= first_delay <= timedelta(seconds=RETRY_BASE_SECONDS)
    assert webhook_deliveries_deliver_due(now=start + first_delay / 2).attempted == 0, "not due before its time"

    second_at = delivery.next_attempt_at
    assert webhook_deliveries_deliver_due(now=second_at).retrying == 1
    delivery.refresh_from_db()
    second_delay = delivery.next_attempt_at - second_at
    assert timedelta(seconds=RETRY_BASE_SECONDS) <= second_delay <= timedelta(seconds=2 * RETRY_BASE_SECONDS)

    assert webhook_deliveries_deliver_due(now=delivery.next_attempt_at).delivered == 1
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.last_status, delivery.last_error) == (3, 204, "")
    assert delivery.delivered_at is not None
    assert failing_twice.delivery_ids() == [delivery.pk] * 3
    assert len({request.body for request in failing_twice.received}) == 1, "every retry sends the same bytes"
    assert all(signature_is_valid(request, secret) for request in failing_twice.received)


def _documented(language: str, marker: str) -> str:
    [block] = [
        block.text
        for block in code_blocks((ROOT / "docs" / "elevation.md").read_text(encoding="utf-8"))
        if block.language == language and marker in block.text
    ]
    return block


@pytest.mark.django_db
def test_the_documented_signature_checks_accept_a_delivery_and_refuse_a_forgery(receiver, secret, tmp_path):
    """docs/elevation.md's Python and openssl checks, run on what a receiver really got."""
    due_delivery(receiver.url)
    webhook_deliveries_deliver_due()
    [request] = receiver.received
    header = request.headers["x-coderauth-signature"]

    namespace = {}
    exec(_documented("python", "def verify("), namespace)  # noqa: S102 - the documentation's own example
    assert namespace["verify"](request.body, header, secret)
    assert not namespace["verify"](request.body + b" ", header, secret)

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    (tmp_path / "body.json").write_bytes(request.body)
    script = _documented("sh", "openssl dgst")
    forged = header[:-1] + ("1" if header.endswith("0") else "0")
    for signature, answer in ((header, "valid"), (forged, "forged")):
        environment = {"PATH": os.environ["PATH"], "CODERAUTH_ELEVATION_WEBHOOK_SECRET": secret, "SIGNATURE": signature}
        result = subprocess.run(  # noqa: S603 - the documentation's own example
            ["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=environment, capture_output=True, text=True
        )
        assert result.stdout.strip() == answer, result.stderr


@pytest.mark.parametrize("attempts", [1, 2, 3, 5, 7, 8, 20, 1000])
def test_retry_delay_doubles_with_jitter_up_to_the_cap(attempts):
    ceiling = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempts - 1))
    delays = [webhook_retry_delay(attempts=attempts).total_seconds() for _ in range(50)]
    assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
    assert len(set(delays)) > 1, "jittered: rows failing together do not come back together"


@pytest.mark.django_db
def test_unreachable_receiver_is_retried_and_its_error_names_no_credentials(receiver):
    """The stored error and the page show what failed, never the URL's user info or query (often a secret)."""
    port = receiver.server.server_address[1]
    receiver.close()
    delivery = due_delivery(f"http://hook-user:hunter2@127.0.0.1:{port}/hook?token=query-secret")

    result = webhook_deliveries_deliver_due()

    assert result.retrying == 1
    delivery.refresh_from_db()
    assert delivery.delivered_at is None and delivery.attempts == 1 and delivery.last_status is None
    assert delivery.last_error.startswith("ConnectError")
    assert "hunter2" not in delivery.last_error and "query-secret" not in delivery.last_error
    assert delivery.next_attempt_at > timezone.now()


@pytest.mark.django_db
def test_the_receiver_url_and_the_secret_stay_out_of_the_logs(caplog, secret):
    """A webhook URL often is the receiver's credential (a path or query token): neither httpx's request log nor
    the worker's failure warning may print it, nor the signing secret."""
    failing = WebhookReceiver(fail_first=1)
    try:
        url = failing.url.replace("/hook", "/hook/path-secret?token=query-secret")
        due_delivery(url)
        with caplog.at_level(logging.DEBUG):
            assert webhook_deliveries_deliver_due().retrying == 1
            assert webhook_deliveries_deliver_due(now=timezone.now() + timedelta(hours=1)).delivered == 1
    finally:
        failing.close()
    assert "failed, attempt 1: HTTP 500" in caplog.text
    for leaked in ("path-secret", "query-secret", secret):
        assert leaked not in caplog.text


@pytest.mark.django_db
def test_a_bad_url_is_recorded_as_an_error_not_raised(receiver):
    delivery = due_delivery("ftp://127.0.0.1/hook")
    assert webhook_deliveries_deliver_due().retrying == 1
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("UnsupportedProtocol")


@pytest.mark.django_db
def test_redirects_are_not_followed(receiver):
    """Only a 2xx counts: a 3xx is a failure, retried, and the worker never POSTs to where it points."""
    delivery = due_delivery(receiver.url.replace("/hook", "/redirect"))
    assert webhook_deliveries_deliver_due().retrying == 1
    delivery.refresh_from_db()
    assert (delivery.last_status, delivery.last_error) == (307, "HTTP 307")
    assert [request.path for request in receiver.received] == ["/redirect"]


def test_a_row_in_flight_is_not_sent_by_a_second_worker(transactional_db, receiver):
    """While one worker's POST is in flight, its row stays locked: a second worker skips it, sends nothing."""
    delivery = due_delivery(receiver.url)
    receiver.hold = True
    outcome = {}

    def first_worker():
        try:
            outcome["result"] = webhook_deliveries_deliver_due()
        finally:
            connection.close()

    worker = threading.Thread(target=first_worker)
    worker.start()
    try:
        assert receiver.arrived.wait(10)
        assert webhook_deliveries_deliver_due().attempted == 0
        assert WebhookDelivery.objects.get(pk=delivery.pk).attempts == 0
    finally:
        receiver.release.set()
        worker.join(30)
    assert outcome["result"].delivered == 1
    assert receiver.delivery_ids() == [delivery.pk]


def test_two_workers_deliver_each_row_exactly_once(transactional_db, receiver):
    deliveries = [due_delivery(receiver.url) for _ in range(40)]
    results = []
    start = threading.Barrier(2)

    def worker():
        try:
            start.wait(10)
            results.append(webhook_deliveries_deliver_due())
        finally:
            connection.close()

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)

    assert sorted(receiver.delivery_ids()) == sorted(delivery.pk for delivery in deliveries)
    assert sum(result.delivered for result in results) == 40
    assert all(result.delivered for result in results), "both workers took part"
    assert set(WebhookDelivery.objects.values_list("attempts", flat=True)) == {1}
    assert not WebhookDelivery.objects.filter(delivered_at__isnull=True).exists()


def _worker_process(*arguments: str) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - a fixed command line
        [sys.executable, "manage.py", "deliver_webhooks", "--interval", "0.2", *arguments],
        cwd=ROOT,
        env=server_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_a_worker_killed_mid_post_loses_nothing(transactional_db, receiver, secret):
    """SIGKILL while the POST is in flight: the row stays due, unattempted, and the next worker delivers it
    (the receiver sees it twice, with the same delivery id to deduplicate on)."""
    delivery = due_delivery(receiver.url)
    receiver.hold = True
    process = _worker_process()
    try:
        assert receiver.arrived.wait(60), process.stdout.read1().decode() if process.poll() is not None else ""
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()

    row = WebhookDelivery.objects.get(pk=delivery.pk)
    assert row.delivered_at is None and row.attempts == 0 and row.next_attempt_at <= timezone.now()
    receiver.hold = False
    receiver.release.set()
    assert webhook_deliveries_deliver_due().delivered == 1
    assert receiver.delivery_ids() == [delivery.pk, delivery.pk]
    assert all(signature_is_valid(request, secret) for request in receiver.received)


def test_sigterm_stops_the_worker_cleanly(transactional_db, receiver, secret):
    process = _worker_process()
    try:
        due_delivery(receiver.url)
        deadline = time.monotonic() + 60
        while not receiver.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert receiver.received, "the running worker picks up a row written after it started"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    text = output.decode()
    assert process.returncode == 0, text
    assert "delivered 1, retrying 0" in text
    assert text.rstrip().endswith("Stopped.")
    assert "Traceback" not in text and secret not in text
