"""`Cache-Control: no-store` on every response of a view that hands out a token or a secret.

A view declares it once, as a class attribute (`carries_secret = True`), and this middleware applies it to every
response the view gives, errors included: no browser, proxy or shared cache may keep a copy of a token, an SSH
private key or an OAuth access token. tests/test_no_store.py lists the routes that must declare it and checks
that every route whose documented response holds a secret field does.
"""

from __future__ import annotations

from collections.abc import Callable

NO_STORE = "no-store"


def view_carries_secret(view: Callable) -> bool:
    """True when the view (a function, or the class behind `as_view()`) declares `carries_secret = True`."""
    view_class = getattr(view, "view_class", None) or getattr(view, "cls", None)
    return getattr(view_class or view, "carries_secret", False) is True


class NoStoreSecretsMiddleware:
    """Sets `Cache-Control: no-store` (replacing any other caching directive) when the resolved view carries a
    secret. It runs after the view, so it sees the response of every path through it, a refusal included."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and view_carries_secret(match.func):
            response["Cache-Control"] = NO_STORE
        return response
