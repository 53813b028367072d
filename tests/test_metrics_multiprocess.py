"""Metrics over several gunicorn workers, as deployed (coderauth/gunicorn.py; docs/operations.md#metrics).

Each worker counts in files of its own; a scrape, whichever worker answers it, sums every worker's. These tests
start a real gunicorn with two sync workers on the test database and check the sum against the requests sent,
that a start empties the directory, that the counts of a worker that died still count, that the master drops
a dead worker's live files (child_exit), and that a run without a configured directory gets one of its own.
"""

from __future__ import annotations

import json
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.urls import reverse
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from tests.helpers.metrics import METRICS_TOKEN, parse_samples, sample_value
from tests.reliability.servers import AppServer

AGENT_REQUESTS = "coderauth_agent_requests_total"
ALLOWED_MANIFEST = {"route": "agent-manifest", "outcome": "allowed"}
# More than enough for both workers to have served some: the kernel hands each connection to either.
MAX_REQUESTS = 400


def _start(tmp_path: Path, *, workers: int, environment: dict[str, str]) -> AppServer:
    server = AppServer(
        tmp_path / "gunicorn.log",
        workers=workers,
        environment={"CODERAUTH_METRICS_TOKEN": METRICS_TOKEN, **environment},
    )
    server.wait_ready()
    return server


def _scrape(server: AppServer) -> dict:
    response = httpx.get(
        server.url + reverse("metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    return parse_samples(response.text)


def _allowed_manifest_by_worker(directory: Path) -> dict[int, float]:
    """Each worker's own count of allowed manifest requests, read from its file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == AGENT_REQUESTS and labels == ALLOWED_MANIFEST:
                counts[int(path.stem.split("_")[1])] = value
    return counts


def _manifest_requests(server: AppServer, token: str, count: int) -> None:
    """`count` requests, four at a time, so that both workers are kept busy."""
    url = server.url + reverse("agents:agent-manifest")

    def one(_) -> int:
        return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(one, range(count))) == [200] * count


def _wait_until(condition, what: str, server: AppServer) -> None:
    """Polls; the deadline only keeps a broken run from hanging, nothing here is timed."""
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"{what}:\n{server.output()}"
        time.sleep(0.05)


@pytest.fixture
def server_with_directory(transactional_db, tmp_path):
    """Two workers counting in a configured directory, which a previous run left files in."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    stale = MmapedDict(str(directory / "counter_4242.db"))
    key = mmap_key(AGENT_REQUESTS, AGENT_REQUESTS, list(ALLOWED_MANIFEST), list(ALLOWED_MANIFEST.values()), "")
    stale.write_value(key, 1000.0, 0.0)
    stale.close()
    (directory / "notes.txt").write_text("not prometheus_client's: left alone")
    server = _start(tmp_path, workers=2, environment={"CODERAUTH_METRICS_DIR": str(directory)})
    try:
        yield server, directory
    finally:
        server.stop()


def test_a_scrape_sums_the_counts_of_every_worker(server_with_directory, agent_token):
    server, directory = server_with_directory
    assert not (directory / "counter_4242.db").exists(), "the start empties the directory"
    assert (directory / "notes.txt").exists(), "of prometheus_client's files only"

    sent = 0
    while len(_allowed_manifest_by_worker(directory)) < 2:
        assert sent < MAX_REQUESTS, f"one worker served all {sent} requests"
        _manifest_requests(server, agent_token, 20)
        sent += 20

    by_worker = _allowed_manifest_by_worker(directory)
    assert sum(by_worker.values()) == sent
    for _ in range(3):  # whichever worker answers the scrape
        assert sample_value(_scrape(server), AGENT_REQUESTS, **ALLOWED_MANIFEST) == sent

    # A worker dies: the master's child_exit drops its live files; its counts still count.
    dead = next(iter(by_worker))
    live_file = directory / f"gauge_livesum_{dead}.db"
    MmapedDict(str(live_file)).close()
    os.kill(dead, signal.SIGKILL)
    _wait_until(lambda: not live_file.exists(), "child_exit did not remove the dead worker's live file", server)
    assert sample_value(_scrape(server), AGENT_REQUESTS, **ALLOWED_MANIFEST) == sent


def test_a_run_without_a_configured_directory_gets_one_of_its_own_and_removes_it(
    transactional_db, tmp_path, agent_token
):
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = _start(tmp_path, workers=1, environment={"TMPDIR": str(temporary), "CODERAUTH_METRICS_DIR": ""})
    try:
        _manifest_requests(server, agent_token, 3)
        (run_directory,) = temporary.glob("coderauth-metrics-*")
        assert list(run_directory.glob("counter_*.db"))
        assert sample_value(_scrape(server), AGENT_REQUESTS, **ALLOWED_MANIFEST) == 3
    finally:
        server.stop()
    assert not run_directory.exists()
