"""The no-store rule: a view's `carries_secret` declaration, read from whatever `as_view()` returned."""

from __future__ import annotations

from types import SimpleNamespace

from django.http import HttpResponse
from django.views import View
from rest_framework.views import APIView

from core.http.no_store import NoStoreSecretsMiddleware, view_carries_secret


class SecretPage(View):
    carries_secret = True


class SecretApi(APIView):
    carries_secret = True


class PlainApi(APIView):
    pass


def secret_function(request):
    return HttpResponse()


secret_function.carries_secret = True


def test_declarations_are_read_from_class_based_views_drf_views_and_functions():
    assert view_carries_secret(SecretPage.as_view())
    assert view_carries_secret(SecretApi.as_view())
    assert view_carries_secret(secret_function)
    assert not view_carries_secret(PlainApi.as_view())


def test_only_true_counts():
    """A truthy value that is not True (a string, say) is a mistake, not a declaration."""

    class Ambiguous(View):
        carries_secret = "yes"

    assert not view_carries_secret(Ambiguous.as_view())


def _through_middleware(view, cache_control: str | None = None) -> HttpResponse:
    response = HttpResponse()
    if cache_control:
        response["Cache-Control"] = cache_control
    request = SimpleNamespace(resolver_match=SimpleNamespace(func=view) if view else None)
    return NoStoreSecretsMiddleware(lambda _request: response)(request)


def test_a_secret_view_answer_replaces_any_caching_directive_with_no_store():
    assert _through_middleware(SecretApi.as_view(), "public, max-age=3600")["Cache-Control"] == "no-store"


def test_other_answers_are_left_alone():
    assert _through_middleware(PlainApi.as_view(), "max-age=60")["Cache-Control"] == "max-age=60"
    assert "Cache-Control" not in _through_middleware(None)
