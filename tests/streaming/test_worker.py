"""manage.py stream_audit as it runs beside the app: a process that SIGTERM stops cleanly, that can be stopped and
started again, killed mid-batch, or run twice at once, without losing an event or sending an acknowledged one again;
and --once, which says which sink failed and exits 1."""

from __future__ import annotations

import signal
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditStreamCursor
from tests.helpers.audit import record_events
from tests.reliability.servers import ROOT, free_port, server_environment
from tests.streaming.conftest import SECRET
from tests.streaming.receivers import chain_verified, wait_until


def _worker() -> subprocess.Popen:
    """A running worker: returned once it says it is streaming, when SIGTERM is its to handle."""
    env = {
        **server_environment(),
        "CODERAUTH_AUDIT_STREAM_RETRY_SECONDS": "0.05",
        "CODERAUTH_AUDIT_STREAM_RETRY_MAX_SECONDS": "0.2",
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(  # noqa: S603 - a fixed command line
        [sys.executable, "manage.py", "stream_audit", "--interval", "0.05", "--batch-size", "4"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    first_line = process.stdout.readline().decode()
    assert first_line.startswith("Streaming the audit log to 1 sink(s)"), first_line + _stop(process)
    return process


def _stop(process: subprocess.Popen) -> str:
    """SIGTERM, and the worker's whole output once it has exited."""
    try:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return output.decode()


def test_sigterm_stops_the_worker_and_a_restart_goes_on_from_its_cursor(transactional_db, configure, tcp_receiver):
    configure(tcp_receiver.url)
    first = record_events(5)
    process = _worker()
    assert len(tcp_receiver.wait_for(5, timeout=60)) == 5, process.poll()
    output = _stop(process)
    assert process.returncode == 0, output
    assert output.rstrip().endswith("Stopped.") and "Traceback" not in output

    later = record_events(6)
    process = _worker()
    received = tcp_receiver.wait_for(11, timeout=60)
    output = _stop(process)

    assert process.returncode == 0, output
    assert [event["id"] for event in received] == [event.id for event in first + later]
    assert chain_verified(received)
    assert not tcp_receiver.violations


def test_a_worker_killed_mid_batch_moves_no_cursor_and_the_batch_is_sent_again(
    transactional_db, configure, http_receiver, stream
):
    """SIGKILL while the receiver holds the batch: the cursor stays, and the next worker sends the batch again (the
    receiver sees it twice, with the same ids to deduplicate on). Nothing is lost."""
    events = record_events(3)
    sinks = configure(http_receiver.url)
    http_receiver.hold = True
    process = _worker()
    try:
        assert http_receiver.arrived.wait(60)
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
    assert AuditStreamCursor.objects.get(sink=sinks[0].name).last_id == 0
    http_receiver.hold = False
    http_receiver.release.set()

    assert stream(sinks).delivered == 3

    ids = [event.id for event in events]
    assert wait_until(lambda: len(http_receiver.batches) == 2)
    assert [event["id"] for event in http_receiver.acknowledged()] == ids + ids
    assert AuditStreamCursor.objects.get(sink=sinks[0].name).delivered == 3


def test_two_worker_processes_at_once_send_each_event_once(transactional_db, configure, http_receiver):
    configure(http_receiver.url)
    events = record_events(30)
    workers = [_worker(), _worker()]
    try:
        assert wait_until(lambda: len(http_receiver.acknowledged()) >= 30)
        more = record_events(10)
        assert wait_until(lambda: len(http_receiver.acknowledged()) >= 40)
    finally:
        outputs = [_stop(process) for process in workers]

    assert [process.returncode for process in workers] == [0, 0], outputs
    assert [event["id"] for event in http_receiver.acknowledged()] == [event.id for event in events + more]
    assert all(batch.status == 204 and batch.signature_valid for batch in http_receiver.batches)
    assert all(SECRET not in output for output in outputs)


@pytest.mark.django_db
def test_once_delivers_what_is_pending_and_exits_1_naming_the_failed_sink(configure, tcp_receiver):
    events = record_events(2)
    configure(f"{tcp_receiver.url}?name=siem", f"syslog+tcp://127.0.0.1:{free_port()}?name=down")
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command("stream_audit", "--once", stdout=out)

    assert str(raised.value) == "1 sink(s) failed: down. They are retried on the next run."
    lines = out.getvalue().splitlines()
    assert lines[0] == f"siem: delivered 2; cursor {events[-1].id}, lag 0"
    assert lines[1].startswith("down: delivered 0, failed: ConnectionRefusedError") and lines[1].endswith("lag 2")
    assert [event["id"] for event in tcp_receiver.wait_for(2)] == [event.id for event in events]


@pytest.mark.django_db
def test_once_retries_a_failed_sink_at_once_and_succeeds(configure, tcp_receiver, stream):
    record_events(2)
    sinks = configure(tcp_receiver.url + "?name=siem")
    tcp_receiver.stop()
    assert stream(sinks).failed
    tcp_receiver.start()
    out = StringIO()

    call_command("stream_audit", "--once", stdout=out)

    assert out.getvalue().startswith("siem: delivered 2;")
    assert AuditStreamCursor.objects.get(sink="siem").failures == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sinks", "message"),
    [
        ([], "CODERAUTH_AUDIT_SINKS is empty: there is nowhere to stream the audit log to."),
        (["udp://siem.example.com"], "CODERAUTH_AUDIT_SINKS entry 1 has the scheme 'udp'"),
    ],
)
def test_the_worker_refuses_to_run_without_usable_sinks(settings, sinks, message):
    settings.CODERAUTH_AUDIT_SINKS = sinks
    with pytest.raises(CommandError, match=message):
        call_command("stream_audit", "--once")


@pytest.mark.django_db
@pytest.mark.parametrize("arguments", [["--interval", "0"], ["--batch-size", "0"], ["--batch-size", "5001"]])
def test_bad_options_are_refused(configure, arguments):
    configure("syslog+udp://127.0.0.1:514")
    with pytest.raises(CommandError):
        call_command("stream_audit", "--once", *arguments)
