"""Races on tokens over HTTP: agent tokens issued, children minted, subtrees revoked by the owner and by the
agent itself while the tokens are in use; user tokens issued, used and revoked. Afterwards: no 5xx, one
audit event per change, no live child under a revoked parent, and no token accepted after its revocation."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.urls import reverse

from agents.models import AgentToken, UserToken
from agents.services.tokens import agent_token_issue
from audit import actions
from audit.models import AuditEvent
from tests.helpers.factories import AgentFactory, WorkspaceFactory, mode
from tests.reliability.harness import (
    NOTHING,
    SIZES,
    Writes,
    assert_audit_chain_verifies,
    assert_no_server_errors,
    assert_no_use_after_revocation,
    assert_one_event_per_change,
    mixed,
    revoked_before,
)


class TokenPool:
    """The tokens issued so far (id -> plaintext, id -> parent id), shared by the threads."""

    def __init__(self, race):
        self.random = race.random
        self.plaintexts: dict[str, str] = {}
        self.parents: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def add(self, token_id: str, plaintext: str, parent: str | None = None) -> None:
        with self._lock:
            self.plaintexts[token_id] = plaintext
            self.parents[token_id] = parent

    def pick(self) -> tuple[str, str]:
        with self._lock:
            token_id = self.random.choice(list(self.plaintexts))
            return token_id, self.plaintexts[token_id]

    def descendant_or_self(self, token_id: str) -> str:
        with self._lock:
            below = [token_id] + [t for t in self.parents if self._ancestors(t) & {token_id}]
            return self.random.choice(below)

    def _ancestors(self, token_id: str) -> set[str]:
        found = set()
        while (token_id := self.parents.get(token_id)) is not None:
            found.add(token_id)
        return found


def _subtree(token_id: str) -> set[str]:
    """The token and every descendant of it, from the database."""
    children: dict[str, list[str]] = {}
    for pk, parent in AgentToken.objects.values_list("pk", "parent_id"):
        children.setdefault(str(parent), []).append(str(pk))
    found, pending = set(), [token_id]
    while pending:
        current = pending.pop()
        found.add(current)
        pending.extend(children.get(current, []))
    return found


def assert_token_tree_whole() -> None:
    """No live token under a revoked ancestor; no child created after, wider than or outliving its parent."""
    tokens = {str(t.pk): t for t in AgentToken.objects.all()}
    problems = []
    for token in tokens.values():
        parent = tokens.get(str(token.parent_id)) if token.parent_id else None
        if parent is None:
            continue
        if parent.revoked_at is not None and (token.revoked_at is None or token.created_at >= parent.revoked_at):
            problems.append(f"{token.pk}: live or created after its parent {parent.pk} was revoked")
        if not set(token.scopes) <= set(parent.scopes) or token.expires_at > parent.expires_at:
            problems.append(f"{token.pk}: wider than or outliving its parent {parent.pk}")
    assert not problems, "\n".join(problems[:20])


def assert_each_revocation_recorded_once(model, action: str, ids_of) -> None:
    """Every revoked token appears in exactly one revocation event, and every event's tokens are revoked."""
    recorded = Counter(token_id for event in AuditEvent.objects.filter(action=action) for token_id in ids_of(event))
    revoked = {str(pk) for pk in model.objects.filter(revoked_at__isnull=False).values_list("pk", flat=True)}
    assert set(recorded) == revoked
    assert not [token_id for token_id, count in recorded.items() if count != 1]


def assert_no_child_after_its_parent_revoked_in_the_log(start_id: int) -> None:
    """In commit order: no child is issued under a parent an earlier event revoked."""
    revoked: set[str] = set()
    for event in AuditEvent.objects.filter(id__gt=start_id).order_by("id"):
        if event.action == actions.AGENT_TOKEN_REVOKED:
            revoked.update(event.details["revoked_ids"])
        elif event.action == actions.AGENT_TOKEN_ISSUED:
            assert event.details["parent_id"] not in revoked, f"event {event.id}: child of a revoked parent"


@pytest.mark.parametrize("size", SIZES)
def test_agent_token_tree_race(race, owner, size):
    """Root tokens issued by the owner, children and grandchildren minted by the agent, subtrees revoked by the
    owner and by the agent, and every token used meanwhile, on 20 threads. No 5xx; one audit event per change;
    the tree stays whole (no live child under a revoked parent, in the database and in the log's commit
    order); each revoked token in exactly one revocation event; no token accepted by a request that started
    after its revocation (or its ancestor's) was answered."""
    workspace = WorkspaceFactory(owner=owner.user, permission_mode=mode("default"))
    agent = AgentFactory(workspace=workspace)
    pool = TokenPool(race)
    for _ in range(5):
        issued = agent_token_issue(actor=owner.user, agent=agent, name="seed")
        pool.add(str(issued.token.pk), issued.plaintext)
    start_id = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()

    def issue_root():
        call = race.call(
            "agent.token_issue", "POST", reverse("agents:agent-token-list", args=[agent.pk]), token=owner.token, json={}
        )
        if call.status == 201:
            pool.add(call.body["id"], call.body["token"])

    def mint_child():
        token_id, plaintext = pool.pick()
        scopes = race.random.choice([None, ["agent:connect"], ["agent:connect", "agent:gitsshkey"]])
        body = {"name": "child"} if scopes is None else {"name": "child", "scopes": scopes}
        call = race.call(
            "agent.child_mint",
            "POST",
            reverse("agents:agent-child-token"),
            token=plaintext,
            json=body,
            token_id=token_id,
        )
        if call.status == 201:
            pool.add(call.body["id"], call.body["token"], parent=token_id)

    def owner_revoke():
        token_id, _ = pool.pick()
        url = reverse("agents:agent-token-detail", args=[agent.pk, token_id])
        race.call("agent.token_revoke", "DELETE", url, token=owner.token, target=token_id)

    def agent_revoke_tree():
        token_id, plaintext = pool.pick()
        target = pool.descendant_or_self(token_id)
        url = reverse("agents:agent-child-token-detail", args=[target])
        race.call("agent.token_revoke_tree", "DELETE", url, token=plaintext, token_id=token_id, target=target)

    def use():
        token_id, plaintext = pool.pick()
        race.call("agent.token_use", "GET", reverse("agents:agent-manifest"), token=plaintext, token_id=token_id)

    operations = size.operations
    race.run(
        mixed(
            race,
            [
                (issue_root, operations // 2),
                (mint_child, operations),
                (owner_revoke, operations // 3),
                (agent_revoke_tree, operations // 3),
                (use, operations),
            ],
        )
    )

    assert_no_server_errors(race)
    assert_one_event_per_change(
        race,
        {
            "agent.token_issue": Writes(actions.AGENT_TOKEN_ISSUED),
            "agent.child_mint": Writes(actions.AGENT_TOKEN_ISSUED),
            "agent.token_revoke": Writes(actions.AGENT_TOKEN_REVOKED, least=0),
            "agent.token_revoke_tree": Writes(actions.AGENT_TOKEN_REVOKED, least=0),
            "agent.token_use": NOTHING,
        },
    )
    assert_token_tree_whole()
    assert_no_child_after_its_parent_revoked_in_the_log(start_id)
    assert_each_revocation_recorded_once(AgentToken, actions.AGENT_TOKEN_REVOKED, lambda e: e.details["revoked_ids"])
    revocations = race.ops("agent.token_revoke") + race.ops("agent.token_revoke_tree")
    revoked = revoked_before(revocations, lambda call: _subtree(call.meta["target"]))
    assert assert_no_use_after_revocation(race, revoked) > 0
    assert_audit_chain_verifies()


@pytest.mark.parametrize("size", SIZES)
def test_user_token_race(race, owner, size):
    """User API tokens issued, used and revoked (by another token of the user, or by themselves) on 20 threads.
    No 5xx; one audit event per change; each revoked token in exactly one revocation event; no token accepted
    by a request that started after its revocation was answered."""
    pool = TokenPool(race)
    start = race.call(
        "user.token_issue", "POST", reverse("agents:user-token-list"), token=owner.token, json={"name": "seed"}
    )
    pool.add(start.body["id"], start.body["token"])

    def issue():
        call = race.call(
            "user.token_issue", "POST", reverse("agents:user-token-list"), token=owner.token, json={"name": "race"}
        )
        if call.status == 201:
            pool.add(call.body["id"], call.body["token"])

    def revoke():
        token_id, plaintext = pool.pick()
        credential = race.random.choice([owner.token, plaintext])
        url = reverse("agents:user-token-detail", args=[token_id])
        race.call("user.token_revoke", "DELETE", url, token=credential, target=token_id)

    def use():
        token_id, plaintext = pool.pick()
        race.call("user.token_use", "GET", reverse("agents:user-me"), token=plaintext, token_id=token_id)

    operations = size.operations
    race.run(mixed(race, [(issue, operations // 2), (revoke, operations // 2), (use, operations)]))

    assert_no_server_errors(race)
    assert_one_event_per_change(
        race,
        {
            "user.token_issue": Writes(actions.USER_TOKEN_ISSUED),
            "user.token_revoke": Writes(actions.USER_TOKEN_REVOKED, least=0),
            "user.token_use": NOTHING,
        },
    )
    assert_each_revocation_recorded_once(UserToken, actions.USER_TOKEN_REVOKED, lambda e: [e.details["token_id"]])
    revoked = revoked_before(race.ops("user.token_revoke"), lambda call: [call.meta["target"]])
    assert assert_no_use_after_revocation(race, revoked) > 0
    assert_audit_chain_verifies()
