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


def page_results(response, expected: int = 200) -> list:
    """The `results` of one page of a list, after checking the status and the page's shape."""
    assert_status(response, expected)
    body = response.json()
    assert set(body) == {"results", "next"}, body
    return body["results"]


def all_results(client, url: str, params: dict | None = None) -> list:
    """Every item of a paged list, following `next` to the last page."""
    items: list = []
    response = client.get(url, params or {})
    while True:
        items.extend(page_results(response))
        next_url = response.json()["next"]
        if next_url is None:
            return items
        response = client.get(next_url)
