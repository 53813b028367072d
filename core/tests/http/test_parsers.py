"""The JSON parser's own limits, independent of the headers a client sends."""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import RequestDataTooBig
from rest_framework.exceptions import ParseError

from core.http.parsers import JSONParser


def test_body_over_the_limit_is_refused_even_without_content_length(settings):
    """A chunked body has no Content-Length for the middleware to check; the parser stops reading at the limit."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = io.BytesIO(b'{"pad": "' + b"x" * 5000 + b'"}')
    with pytest.raises(RequestDataTooBig):
        JSONParser().parse(body, "application/json", {})
    assert body.tell() == 1001, "read no further than the limit"


def test_body_at_the_limit_is_parsed(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 20
    assert JSONParser().parse(io.BytesIO(b'{"a": "0123456789"}'), "application/json", {}) == {"a": "0123456789"}


def test_deep_nesting_is_a_parse_error():
    with pytest.raises(ParseError):
        JSONParser().parse(io.BytesIO(b"[" * 100_000), "application/json", {})


@pytest.mark.django_db
def test_view_answers_413_when_the_parser_refuses(settings):
    """Past the middleware (as a chunked body would be), the parser's refusal still becomes a JSON 413."""
    from rest_framework.test import APIRequestFactory

    from agents.apis.users import UserLoginApi

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    request = APIRequestFactory().post("/api/v2/users/login", {"username": "x" * 500, "password": "y"}, format="json")
    response = UserLoginApi.as_view()(request)
    assert response.status_code == 413
    assert response.data == {"detail": "Request body too large."}
