"""Rotating CODERAUTH_TOKEN_DIGEST_KEY and CODERAUTH_ENCRYPTION_KEY (docs/operations.md, "Rotating keys"): live
tokens keep working, users' secrets stay readable, `rotate_keys` moves everything to the new keys and says when
the old ones can go."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from io import StringIO

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.management import CommandError, call_command
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from agents.models import AgentToken, ExternalAuthLink, ExternalAuthProvider, GitSSHKey, UserToken
from agents.services.principals import agent_principal_resolve
from agents.services.tokens import agent_child_token_issue, agent_token_issue
from agents.services.user_data import external_auth_link_set, git_ssh_key_get_or_create, git_ssh_private_key
from agents.services.users import user_token_issue
from audit import actions
from audit.models import AuditEvent
from core import crypto, keys, tokens
from tests.helpers.clients import client_for_agent_token
from tests.helpers.factories import AgentFactory, UserFactory
from tests.helpers.migrations import Migrator
from tests.helpers.responses import assert_status

KEY_A = "rotation-key-a-0123456789abcdef0123456789abcdef"
KEY_B = "rotation-key-b-fedcba9876543210fedcba9876543210"
ID_A, ID_B = keys.key_id(KEY_A), keys.key_id(KEY_B)
ACCESS_TOKEN = "gho_rotationAccessToken0123456789"
MANIFEST = "agents:agent-manifest"
ME = "agents:user-me"


def _use_keys(settings, *, current: str, previous: list[str]) -> None:
    """Both keys at once, as an operator rotating them together would set the environment."""
    settings.CODERAUTH_TOKEN_DIGEST_KEY = settings.CODERAUTH_ENCRYPTION_KEY = current
    settings.CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS = settings.CODERAUTH_ENCRYPTION_KEY_PREVIOUS = previous


def _rotate_keys(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("rotate_keys", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _bearer(token: str):
    return client_for_agent_token(token)


def _principal(plaintext: str):
    return agent_principal_resolve(raw_token=plaintext)


@pytest.fixture
def under_key_a(settings, db):
    _use_keys(settings, current=KEY_A, previous=[])
    return settings


@pytest.fixture
def installation(under_key_a, member, agent):
    """Tokens, an SSH key and an external-auth link, all written under key A."""
    provider = ExternalAuthProvider.objects.create(id="github", type="github", regex=r"github\.com")
    external_auth_link_set(user=member, provider=provider, access_token=ACCESS_TOKEN, token_extra={"scope": "repo"})
    key = git_ssh_key_get_or_create(user=member)
    return {
        "agent_used": agent_token_issue(actor=member, agent=agent, name="used").plaintext,
        "agent_idle": agent_token_issue(actor=member, agent=agent, name="idle").plaintext,
        "agent_forgotten": agent_token_issue(actor=member, agent=agent, name="forgotten").plaintext,
        "user_used": user_token_issue(user=member, name="used").plaintext,
        "user_idle": user_token_issue(user=member, name="idle").plaintext,
        "ssh_private_key": git_ssh_private_key(key),
        "member": member,
    }


def _assert_agent_reads_user_data(token: str, installation: dict) -> None:
    client = _bearer(token)
    ssh = client.get(reverse("agents:agent-gitsshkey"))
    assert_status(ssh, 200)
    assert ssh.json()["private_key"] == installation["ssh_private_key"]
    external = client.get(reverse("agents:agent-external-auth") + "?id=github")
    assert_status(external, 200)
    assert external.json()["access_token"] == ACCESS_TOKEN
    assert external.json()["token_extra"] == {"scope": "repo"}


def _stored_under(key_id: str) -> bool:
    """Every encrypted value names `key_id`."""
    values = [bytes(key.private_key_encrypted) for key in GitSSHKey.objects.all()]
    for link in ExternalAuthLink.objects.all():
        values += [bytes(link.access_token_encrypted), bytes(link.token_extra_encrypted)]
    return bool(values) and all(crypto.key_id_of(value) == key_id for value in values)


# --- End to end --------------------------------------------------------------------------------------------


def test_rotating_both_keys_keeps_tokens_and_user_data_working(settings, installation):
    """Key A to key B: old tokens authenticate and move to B on use, the agent still reads the SSH key and the
    OAuth token, rotate_keys re-encrypts under B, and once A is removed everything used since still works.
    A token nobody used after the switch works while A is configured, and the command reports it."""
    assert _stored_under(ID_A)
    _use_keys(settings, current=KEY_B, previous=[KEY_A])

    assert_status(_bearer(installation["agent_used"]).get(reverse(MANIFEST)), 200)
    moved = AgentToken.objects.get(name="used")
    assert (moved.digest, moved.key_id) == (tokens.digest(installation["agent_used"]), ID_B)
    user_client = _bearer(installation["user_used"])
    assert_status(user_client.get(reverse(ME)), 200)
    assert UserToken.objects.get(name="used").key_id == ID_B
    _assert_agent_reads_user_data(installation["agent_used"], installation)

    out, err = _rotate_keys()
    assert f"Re-encrypted under {ID_B}: git SSH private keys, 1 value." in out
    assert f"Re-encrypted under {ID_B}: external-auth tokens (access token and extras), 2 values." in out
    assert "rotate_keys: git SSH private keys: 1 value re-encrypted" in err
    assert "CODERAUTH_ENCRYPTION_KEY_PREVIOUS can be removed" in out
    assert _stored_under(ID_B)
    assert f"  agent tokens: 1 under the current key, 2 under previous key {ID_A}" in out
    assert f"  user tokens: 1 under the current key, 1 under previous key {ID_A}" in out
    assert "may still depend on a previous digest key: agent tokens: 2 and user tokens: 1." in out
    assert "CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS can be removed" not in out

    # Never used since the switch, still accepted while A is configured: and now it has moved too.
    assert_status(_bearer(installation["agent_idle"]).get(reverse(MANIFEST)), 200)
    assert f"  agent tokens: 2 under the current key, 1 under previous key {ID_A}" in _rotate_keys("--dry-run")[0]

    _use_keys(settings, current=KEY_B, previous=[])
    assert_status(_bearer(installation["agent_used"]).get(reverse(MANIFEST)), 200)
    assert_status(_bearer(installation["agent_idle"]).get(reverse(MANIFEST)), 200)
    assert_status(user_client.get(reverse(ME)), 200)
    _assert_agent_reads_user_data(installation["agent_idle"], installation)
    # Left under A past its removal: gone with A, like any token under a key nobody holds.
    assert_status(_bearer(installation["agent_forgotten"]).get(reverse(MANIFEST)), 401)
    assert_status(_bearer(installation["user_idle"]).get(reverse(ME)), 401)

    out, _ = _rotate_keys()
    assert "No previous digest key is configured." in out
    assert f"Every readable secret is under the encryption key {ID_B}." in out
    assert f"under {ID_A}, a key no longer configured (they fail)" in out


def test_reencryption_is_audited_per_batch(settings, under_key_a):
    """Each batch is one transaction with one user_data.reencrypted row naming the keys and users, no secret."""
    owners = [UserFactory() for _ in range(3)]
    private_keys = [git_ssh_private_key(git_ssh_key_get_or_create(user=owner)) for owner in owners]
    _use_keys(settings, current=KEY_B, previous=[KEY_A])

    _, err = _rotate_keys("--batch-size", "2")

    events = list(AuditEvent.objects.filter(action=actions.USER_DATA_REENCRYPTED).order_by("id"))
    assert [event.details["values"] for event in events] == [2, 1]
    assert all(event.actor_type == "system" and event.actor == "rotate_keys" for event in events)
    assert events[0].details["key_id"] == ID_B and events[0].details["from_key_ids"] == [ID_A]
    assert sorted(events[0].details["user_ids"] + events[1].details["user_ids"]) == sorted(o.pk for o in owners)
    assert err.count("rotate_keys: git SSH private keys:") == 2
    assert "PRIVATE KEY" not in str([event.details for event in events])
    assert [git_ssh_private_key(GitSSHKey.objects.get(user=owner)) for owner in owners] == private_keys


def test_reencryption_leaves_updated_at_alone(settings, installation):
    before = GitSSHKey.objects.get().updated_at
    _use_keys(settings, current=KEY_B, previous=[KEY_A])
    _rotate_keys()
    assert GitSSHKey.objects.get().updated_at == before


def test_version_1_ciphertexts_are_rewritten_to_name_their_key(under_key_a, member):
    """Values written before ciphertexts named their key are rewritten even without a rotation, so that later
    rotations can tell them apart."""
    git_ssh_key_get_or_create(user=member)
    key = GitSSHKey.objects.get()
    private_key = git_ssh_private_key(key)
    # The value as the version-1 format wrote it: 0x01 | nonce | ciphertext, the context alone as associated data.
    nonce = b"\x00" * 12
    cipher = AESGCM(hashlib.sha256(KEY_A.encode()).digest())
    version_1 = b"\x01" + nonce + cipher.encrypt(nonce, private_key.encode(), f"gitsshkey:{member.pk}".encode())
    GitSSHKey.objects.filter(pk=key.pk).update(private_key_encrypted=version_1)
    out, _ = _rotate_keys("--dry-run")
    assert "1 written before ciphertexts named their key" in out

    _rotate_keys()
    key.refresh_from_db()
    assert crypto.key_id_of(key.private_key_encrypted) == ID_A
    assert git_ssh_private_key(key) == private_key
    assert AuditEvent.objects.get(action=actions.USER_DATA_REENCRYPTED).details["from_key_ids"] == ["version-1"]


def test_a_value_no_configured_key_opens_is_reported_and_left_as_is(settings, installation):
    """A key removed before rotate_keys ran: the command finishes, names the unreadable value, changes nothing in it."""
    _use_keys(settings, current=KEY_B, previous=[])
    before = bytes(GitSSHKey.objects.get().private_key_encrypted)

    out, _ = _rotate_keys()

    assert f"Unreadable with every configured key, left as is: git_ssh_key {GitSSHKey.objects.get().pk}" in out
    assert f"1 under {ID_A}, a key no longer configured (unreadable)" in out
    assert bytes(GitSSHKey.objects.get().private_key_encrypted) == before
    assert not AuditEvent.objects.filter(action=actions.USER_DATA_REENCRYPTED).exists()


def test_dry_run_changes_nothing(settings, installation):
    _use_keys(settings, current=KEY_B, previous=[KEY_A])
    events = AuditEvent.objects.count()

    out, _ = _rotate_keys("--dry-run")

    assert "Dry run: 3 values to re-encrypt" in out
    assert _stored_under(ID_A)
    assert AuditEvent.objects.count() == events


# --- Tokens under a previous digest key --------------------------------------------------------------------


def test_revoke_tokens_revokes_those_under_previous_keys_with_their_children(settings, installation, agent):
    """--revoke-tokens cuts off tokens still under a previous key, and an agent token's children with it
    (a child never outlives its parent), even a child minted under the current key. Current tokens stay."""
    idle_principal = _principal(installation["agent_idle"])  # resolved under A, before the switch
    _use_keys(settings, current=KEY_B, previous=[KEY_A])
    assert_status(_bearer(installation["agent_used"]).get(reverse(MANIFEST)), 200)  # moves to B
    assert_status(_bearer(installation["user_used"]).get(reverse(ME)), 200)
    child = agent_child_token_issue(principal=idle_principal, scopes=["agent:connect"])
    assert AgentToken.objects.get(pk=child.token.pk).key_id == ID_B

    out, err = _rotate_keys("--revoke-tokens")

    revoked = set(AgentToken.objects.filter(revoked_at__isnull=False).values_list("name", flat=True))
    assert revoked == {"idle", "forgotten", "child"}
    assert set(UserToken.objects.filter(revoked_at__isnull=False).values_list("name", flat=True)) == {"idle"}
    assert "Revoked, not under the current digest key: agent tokens, 3." in out
    assert "Revoked, not under the current digest key: user tokens, 1." in out
    assert "CODERAUTH_TOKEN_DIGEST_KEY_PREVIOUS can be removed" in out
    events = AuditEvent.objects.filter(action__in=[actions.AGENT_TOKEN_REVOKED, actions.USER_TOKEN_REVOKED])
    assert {(e.action, e.actor_type, e.actor, e.details["reason"]) for e in events} == {
        (actions.AGENT_TOKEN_REVOKED, "system", "rotate_keys", "previous_digest_key"),
        (actions.USER_TOKEN_REVOKED, "system", "rotate_keys", "previous_digest_key"),
    }
    idle_event = events.get(details__token_hint=AgentToken.objects.get(name="idle").hint)
    assert str(child.token.pk) in idle_event.details["revoked_ids"]
    assert_status(_bearer(installation["agent_used"]).get(reverse(MANIFEST)), 200)
    assert_status(_bearer(child.plaintext).get(reverse(MANIFEST)), 401)


def test_revoke_tokens_is_refused_without_a_previous_digest_key(installation):
    """Without a previous key, a token whose key was never recorded may be under the current key: not revoked."""
    with pytest.raises(CommandError, match="no previous digest key"):
        _rotate_keys("--revoke-tokens")
    assert not AgentToken.objects.filter(revoked_at__isnull=False).exists()


def test_first_use_after_the_switch_costs_two_more_queries_then_one(
    settings, under_key_a, agent, member, django_assert_num_queries
):
    """The hot path stays one query for tokens under the current key, previous keys configured or not; a token
    under a previous key pays two more queries once, to move to the current key."""
    old = agent_token_issue(actor=member, agent=agent).plaintext
    _use_keys(settings, current=KEY_B, previous=[KEY_A])
    current = agent_token_issue(actor=member, agent=agent).plaintext
    for plaintext in (current, current):
        with django_assert_num_queries(1):
            assert_status(_bearer(plaintext).get(reverse(MANIFEST)), 200)
    with django_assert_num_queries(3):
        assert_status(_bearer(old).get(reverse(MANIFEST)), 200)
    with django_assert_num_queries(1):
        assert_status(_bearer(old).get(reverse(MANIFEST)), 200)


def test_unknown_token_is_still_unknown_under_previous_keys(settings, under_key_a, caplog):
    _use_keys(settings, current=KEY_B, previous=[KEY_A])
    assert_status(_bearer(tokens.generate("agent").plaintext).get(reverse(MANIFEST)), 401)
    assert_status(_bearer(tokens.generate("user").plaintext).get(reverse(ME)), 401)
    assert "Unknown agent token presented" in caplog.text


def test_a_revoked_token_under_a_previous_key_is_still_refused_and_audited(settings, installation):
    """Moving a token to the current key changes nothing about its state: revoked stays revoked."""
    AgentToken.objects.filter(name="idle").update(revoked_at=AgentToken.objects.get(name="idle").created_at)
    _use_keys(settings, current=KEY_B, previous=[KEY_A])
    assert_status(_bearer(installation["agent_idle"]).get(reverse(MANIFEST)), 401)
    assert AuditEvent.objects.get(action=actions.AGENT_TOKEN_REJECTED).details["reason"] == "revoked"


def test_a_row_without_a_key_id_gets_the_current_one_on_use_without_an_extra_query(
    under_key_a, agent, member, django_assert_num_queries
):
    """Rows stored before key ids were recorded (empty): the lookup that finds them by the current key fills it."""
    plaintext = agent_token_issue(actor=member, agent=agent).plaintext
    AgentToken.objects.update(key_id="", last_used_at=None)
    user_plaintext = user_token_issue(user=member, name="cli").plaintext
    UserToken.objects.update(key_id="")
    with django_assert_num_queries(1):
        assert_status(_bearer(plaintext).get(reverse(MANIFEST)), 200)
    assert AgentToken.objects.get().key_id == ID_A
    assert_status(_bearer(user_plaintext).get(reverse(ME)), 200)
    assert UserToken.objects.get(name="cli").key_id == ID_A


def test_concurrent_first_uses_after_the_switch_all_succeed(settings, transactional_db):
    """Several requests presenting the same old token at once: one moves it, the others find it moved."""
    _use_keys(settings, current=KEY_A, previous=[])
    owner = UserFactory()
    agent = AgentFactory(workspace__owner=owner)
    plaintext = agent_token_issue(actor=owner, agent=agent).plaintext
    _use_keys(settings, current=KEY_B, previous=[KEY_A])

    workers = 8
    barrier = threading.Barrier(workers)
    outcomes: list[object] = []

    def present() -> None:
        try:
            barrier.wait(timeout=10)
            outcomes.append(_principal(plaintext))
        except Exception as error:  # noqa: BLE001 - reported to the main thread
            outcomes.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=present) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outcomes) == workers
    assert all(outcome is not None and not isinstance(outcome, Exception) for outcome in outcomes), outcomes
    assert AgentToken.objects.get().key_id == ID_B


def test_the_migration_leaves_existing_tokens_unrecorded_until_their_next_use(settings, transactional_db):
    """Which key made a stored digest cannot be known without the token: the migration records none (empty), and
    the token's next use under the current key records it. New rows get the current key's id."""
    _use_keys(settings, current=KEY_A, previous=[])
    owner = UserFactory()
    agent = AgentFactory(workspace__owner=owner)
    migrator = Migrator()
    try:
        old_apps = migrator.migrate([("agents", "0003_agenttoken_last_rejected_at")])
        secret = tokens.generate("agent")
        old_apps.get_model("agents", "AgentToken").objects.create(
            agent_id=agent.id,
            digest=secret.digest,
            hint=secret.hint,
            scopes=["agent:connect"],
            created_at=timezone.now(),
            expires_at=timezone.now() + timedelta(days=1),
        )
    finally:
        migrator.migrate_to_leaves()

    assert AgentToken.objects.get().key_id == ""
    out, _ = _rotate_keys("--dry-run")
    assert "  agent tokens: 1 stored before key ids were recorded and unused since" in out
    assert_status(_bearer(secret.plaintext).get(reverse(MANIFEST)), 200)
    assert AgentToken.objects.get().key_id == ID_A
    assert agent_token_issue(actor=owner, agent=agent).token.key_id == ID_A
