"""Fixtures for the audit log's tests: events on the chain."""

from __future__ import annotations

import pytest

from tests.helpers.audit import record_events


@pytest.fixture
def chain_of_five(db) -> list:
    return record_events(5)
