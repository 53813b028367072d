"""The HTTP side of list pages: the `page_size` and `cursor` query parameters, the `{"results", "next"}` body
and its OpenAPI description. The paging itself is core/pagination.py."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from core.pagination import Page, page_size_check


@dataclass(frozen=True)
class PageRequest:
    """What the client asked for: the cursor (None for the first page) and the page size."""

    cursor: str | None
    page_size: int


def page_request(request) -> PageRequest:
    """`page_size` (an integer within bounds, default CODERAUTH_PAGE_SIZE) and `cursor`; bad values are a 400
    naming the parameter. Empty values mean the defaults, as an empty form field does."""
    raw_size = (request.query_params.get("page_size") or "").strip()
    page_size = None
    if raw_size:
        try:
            page_size = int(raw_size)
        except ValueError:
            page_size = -1  # refused below with the same message as any other bad size
    # The cursor itself is checked where it is decoded (core/pagination.py).
    return PageRequest(cursor=request.query_params.get("cursor") or None, page_size=page_size_check(page_size))


def next_page_url(request, cursor: str | None) -> str | None:
    """The absolute URL of the next page: this request's URL with `cursor` replaced, or None on the last page."""
    if not cursor:
        return None
    query = request.query_params.copy()
    query["cursor"] = cursor
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def paged_response(request, page: Page, serializer_class, **serializer_kwargs) -> Response:
    """`{"results": [...], "next": <absolute URL or null>}` for one page."""
    results = serializer_class(page.items, many=True, **serializer_kwargs).data
    return Response({"results": results, "next": next_page_url(request, page.next_cursor)})


def page_parameters() -> list[OpenApiParameter]:
    """The query parameters of every paged list, for extend_schema(parameters=...)."""
    return [
        OpenApiParameter(
            "page_size",
            int,
            description=(
                f"Items per page, 1 to {settings.CODERAUTH_MAX_PAGE_SIZE} (CODERAUTH_MAX_PAGE_SIZE); "
                f"default {settings.CODERAUTH_PAGE_SIZE} (CODERAUTH_PAGE_SIZE)."
            ),
        ),
        OpenApiParameter("cursor", str, description="Opaque; taken from `next`. Omit it for the first page."),
    ]


def paged(name: str, item_serializer) -> serializers.Serializer:
    """The OpenAPI body of a page of `item_serializer` items, as the component `name`."""
    return inline_serializer(
        name,
        fields={
            "results": item_serializer(many=True) if isinstance(item_serializer, type) else item_serializer,
            "next": serializers.URLField(allow_null=True, help_text="The next page, or null on the last."),
        },
    )
