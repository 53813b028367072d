"""Web UI page loads, measured."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext


def count_queries(client, url, params=None) -> int:
    """SQL queries one successful page load makes."""
    with CaptureQueriesContext(connection) as context:
        response = client.get(url, params or {})
    assert response.status_code == 200, response.content[:500]
    return len(context.captured_queries)
