"""Fixtures of the race suite: people with API tokens, and a race against the live server."""

from __future__ import annotations

import zlib

import pytest

from tests.helpers.factories import AdminFactory, UserFactory
from tests.reliability.harness import Person, Race, person
from tests.reliability.servers import AppServer


@pytest.fixture
def admin(transactional_db) -> Person:
    return person(AdminFactory)


@pytest.fixture
def owner(transactional_db) -> Person:
    """A member who owns the workspaces of the race: may only tighten their modes."""
    return person(UserFactory)


@pytest.fixture
def race(live_server, request) -> Race:
    """A race against the live server; its per-operation summary is printed after the test (`pytest -s`)."""
    race = Race(live_server.url, seed=zlib.crc32(request.node.nodeid.encode()))
    yield race
    race.close()
    print(f"\n{request.node.name}: {len(race.calls)} calls in {race.seconds:.1f} s\n{race.summary()}")


@pytest.fixture
def two_app_servers(transactional_db, tmp_path):
    """Two gunicorn processes on the test database (committed data: transactional_db), stopped before its flush."""
    servers = [AppServer(tmp_path / f"gunicorn-{number}.log") for number in (1, 2)]
    try:
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()
