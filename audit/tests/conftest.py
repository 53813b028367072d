"""Fixtures for the audit log's tests: events on the chain."""

from __future__ import annotations

import pytest

from tests.helpers.audit import record_events
from tests.helpers.audit_keys import KeyFiles, write_key_pair


@pytest.fixture
def chain_of_five(db) -> list:
    return record_events(5)


@pytest.fixture(scope="session")
def audit_keys(tmp_path_factory) -> KeyFiles:
    """The operator's signing key pair, generated once per run."""
    return write_key_pair(tmp_path_factory.mktemp("audit-keys"))


@pytest.fixture(scope="session")
def attacker_keys(tmp_path_factory) -> KeyFiles:
    """A key nobody trusts: what someone who can write to the database may sign with."""
    return write_key_pair(tmp_path_factory.mktemp("attacker-keys"), "attacker-key")


@pytest.fixture
def audit_signing_key(settings, audit_keys) -> KeyFiles:
    """The installation configured to sign archives and checkpoints with `audit_keys`."""
    settings.CODERAUTH_AUDIT_SIGNING_KEY_FILE = str(audit_keys.private)
    settings.CODERAUTH_AUDIT_PUBLIC_KEYS_FILE = ""
    return audit_keys
