"""Status assertions that show the response body when the status differs."""

from __future__ import annotations


def assert_status(response, expected: int) -> None:
    """Assert a status code and show the body when it differs."""
    body = getattr(response, "data", None) or response.content[:2000]
    assert response.status_code == expected, f"expected {expected}, got {response.status_code}: {body!r}"


def check_status(response, expected: int) -> bytes:
    """assert_status for streamed and plain responses alike; returns the whole body."""
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert response.status_code == expected, f"expected {expected}, got {response.status_code}: {body[:2000]!r}"
    return body
