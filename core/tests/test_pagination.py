"""Keyset pages (core/pagination.py): every row once, in order, at the same cost however deep; cursors are strict."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from agents.models import AgentToken, Workspace
from agents.services.tokens import agent_token_issue
from core.exceptions import InvalidInput
from core.pagination import keyset_page
from policies.models import PermissionMode
from tests.helpers.factories import CustomModeFactory, UserFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

NEWEST_FIRST = ("-created_at", "-id")


def _walk(queryset, ordering, page_size):
    """Every item, page by page, and the number of pages."""
    items, cursor, pages = [], None, 0
    while True:
        page = keyset_page(queryset, ordering=ordering, cursor=cursor, page_size=page_size)
        items.extend(page.items)
        pages += 1
        if page.next_cursor is None:
            return items, pages
        cursor = page.next_cursor


@pytest.fixture
def tokens(member, agent):
    """Seven tokens; four share one creation time, two differ from it by a single microsecond."""
    issued = [agent_token_issue(actor=member, agent=agent, name=f"t{number}").token for number in range(7)]
    moment = timezone.now() - timedelta(hours=1)
    AgentToken.objects.filter(pk__in=[token.pk for token in issued[:4]]).update(created_at=moment)
    AgentToken.objects.filter(pk=issued[4].pk).update(created_at=moment + timedelta(microseconds=1))
    AgentToken.objects.filter(pk=issued[5].pk).update(created_at=moment - timedelta(microseconds=1))
    return AgentToken.objects.filter(agent=agent)


@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 50])
def test_pages_return_every_row_once_in_order_even_when_keys_tie(tokens, page_size):
    items, pages = _walk(tokens, NEWEST_FIRST, page_size)
    assert [token.pk for token in items] == list(tokens.order_by(*NEWEST_FIRST).values_list("pk", flat=True))
    assert pages == max(1, -(-7 // page_size))


def test_mixed_directions_page_in_order(db):
    """Built-in modes first (descending), then by name (ascending): no row-value form, the Q expansion."""
    for name in ("alpha", "beta", "gamma", "delta"):
        CustomModeFactory(name=name, scopes=["agent:connect"])
    ordering = ("-builtin", "name")
    items, _ = _walk(PermissionMode.objects.all(), ordering, 2)
    assert [mode.name for mode in items] == list(
        PermissionMode.objects.order_by(*ordering).values_list("name", flat=True)
    )
    assert [mode.builtin for mode in items].index(False) > 0


def test_a_deep_page_is_a_seek_not_an_offset(tokens):
    """The page after a cursor filters on the key and reads page_size + 1 rows: no OFFSET, whatever the depth."""
    first = keyset_page(tokens, ordering=NEWEST_FIRST, cursor=None, page_size=2)
    with CaptureQueriesContext(connection) as queries:
        keyset_page(tokens, ordering=NEWEST_FIRST, cursor=first.next_cursor, page_size=2)
    (sql,) = [query["sql"] for query in queries]
    assert "OFFSET" not in sql.upper()
    assert "LIMIT 3" in sql
    assert '("agents_agenttoken"."created_at", "agents_agenttoken"."id") <' in sql


def test_keys_across_joined_tables_seek_on_the_leading_key(db):
    """Ordered by the owner's name, then the workspace's: the row comparison spans two tables, so it can only
    filter the join; the leading key's own bound lets PostgreSQL start the owner index scan at the cursor, or
    every page would re-read all the rows before it. Pages still come out complete and in order, across owners
    whose names tie on nothing but whose workspaces' names repeat."""
    for username in ("carol", "alice", "bob"):
        owner = UserFactory(username=username)
        for name in ("b", "a", "c"):
            WorkspaceFactory(owner=owner, name=name)
    ordering = ("owner__username", "name")
    workspaces = Workspace.objects.select_related("owner")  # the cursor reads the owner's name
    first = keyset_page(workspaces, ordering=ordering, cursor=None, page_size=2)
    with CaptureQueriesContext(connection) as queries:
        keyset_page(workspaces, ordering=ordering, cursor=first.next_cursor, page_size=2)
    (sql,) = [query["sql"] for query in queries]
    assert '"auth_user"."username" >= ' in sql
    items, _ = _walk(workspaces, ordering, 2)
    assert [(workspace.owner.username, workspace.name) for workspace in items] == [
        (owner, name) for owner in ("alice", "bob", "carol") for name in ("a", "b", "c")
    ]


def test_rows_added_between_pages_neither_repeat_nor_shift_the_next_page(member):
    for name in ("b", "d", "f", "h"):
        WorkspaceFactory(owner=member, name=name)
    queryset = Workspace.objects.filter(owner=member)
    ordering = ("owner_id", "name")
    first = keyset_page(queryset, ordering=ordering, cursor=None, page_size=2)
    assert [workspace.name for workspace in first.items] == ["b", "d"]
    WorkspaceFactory(owner=member, name="a")
    WorkspaceFactory(owner=member, name="e")
    second = keyset_page(queryset, ordering=ordering, cursor=first.next_cursor, page_size=2)
    assert [workspace.name for workspace in second.items] == ["e", "f"]


def _forged(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda cursor: "not-a-cursor", id="garbage"),
        pytest.param(lambda cursor: cursor[:-1] + ("A" if cursor[-1] != "A" else "B"), id="signature-altered"),
        pytest.param(lambda cursor: "e" + cursor[1:] if cursor[0] != "e" else "f" + cursor[1:], id="payload-altered"),
        pytest.param(lambda cursor: _forged(["2026-01-01T00:00:00+00:00", "x"]), id="unsigned-json"),
        pytest.param(lambda cursor: cursor.split(":")[0], id="signature-dropped"),
        pytest.param(lambda cursor: cursor + "A" * 1000, id="too-long"),
        pytest.param(lambda cursor: "\x00", id="nul"),
    ],
)
def test_a_tampered_cursor_is_invalid_input_naming_cursor(tokens, tamper):
    """A cursor is the server's own: any change to it is refused as bad input (400), never a 500 or a seek."""
    cursor = keyset_page(tokens, ordering=NEWEST_FIRST, cursor=None, page_size=2).next_cursor
    with pytest.raises(InvalidInput) as refused:
        keyset_page(tokens, ordering=NEWEST_FIRST, cursor=tamper(cursor), page_size=2)
    assert refused.value.field == "cursor"


def test_a_cursor_of_another_list_is_refused(tokens, member):
    """Cursors are bound to their ordering: one list's position cannot be replayed against another."""
    for name in ("a", "b", "c"):
        WorkspaceFactory(owner=member, name=name)
    cursor = keyset_page(tokens, ordering=NEWEST_FIRST, cursor=None, page_size=2).next_cursor
    with pytest.raises(InvalidInput) as refused:
        keyset_page(Workspace.objects.all(), ordering=("owner_id", "name"), cursor=cursor, page_size=2)
    assert refused.value.field == "cursor"


@pytest.mark.parametrize("page_size", [0, -1, 6, True, "2"])
def test_page_size_out_of_bounds_is_invalid_input_naming_page_size(tokens, settings, page_size):
    settings.CODERAUTH_MAX_PAGE_SIZE = 5
    with pytest.raises(InvalidInput) as refused:
        keyset_page(tokens, ordering=NEWEST_FIRST, cursor=None, page_size=page_size)
    assert refused.value.field == "page_size"


def test_page_size_defaults_to_the_setting_and_reaches_the_maximum(tokens, settings):
    settings.CODERAUTH_PAGE_SIZE = 2
    settings.CODERAUTH_MAX_PAGE_SIZE = 7
    default = keyset_page(tokens, ordering=NEWEST_FIRST, cursor=None)
    assert len(default.items) == 2 and default.next_cursor
    largest = keyset_page(tokens, ordering=NEWEST_FIRST, cursor=None, page_size=7)
    assert len(largest.items) == 7 and largest.next_cursor is None
