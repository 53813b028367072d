"""Keyset pagination for every list: a page is `ORDER BY <key> LIMIT n+1` after the last row seen, never OFFSET.

Each page costs the same however deep it lies, and rows added or removed meanwhile cannot shift a page into
duplicates or gaps. The cursor is the last row's key values, signed with SECRET_KEY and bound to the ordering:
a cursor that was altered, or that belongs to another list, is refused (InvalidInput naming `cursor`).
Pure ORM, no HTTP: selectors page their querysets here; core/http/pagination.py reads the query parameters.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core import signing
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import BooleanField, Expression, F, Field, Model, Q, QuerySet, Value

from core.exceptions import InvalidInput

T = TypeVar("T")

CURSOR_MAX_LENGTH = 1000
_SALT = "coderauth.pagination.v1"
_INVALID_CURSOR = "Invalid cursor; use the `next` link of the previous page."


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the cursor of the next (None on the last page)."""

    items: list[T]
    next_cursor: str | None


def page_size_check(page_size: int | None) -> int:
    """The page size to use: the default when none is given, InvalidInput naming `page_size` out of range."""
    maximum = settings.CODERAUTH_MAX_PAGE_SIZE
    if page_size is None:
        return min(settings.CODERAUTH_PAGE_SIZE, maximum)
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= maximum:
        raise InvalidInput(f"Must be an integer between 1 and {maximum}.", field="page_size")
    return page_size


def keyset_page(
    queryset: QuerySet[T], *, ordering: Sequence[str], cursor: str | None, page_size: int | None = None
) -> Page[T]:
    """The page of `queryset`, ordered by `ordering`, that follows `cursor` (the first page when None).

    `ordering` names fields (a leading "-" for descending, "__" to follow relations); together they must be
    unique and never NULL, e.g. ("-created_at", "-id") or ("owner_id", "name") under a unique constraint.
    """
    size = page_size_check(page_size)
    keys = [_Key.parse(queryset.model, entry) for entry in ordering]
    queryset = queryset.order_by(*ordering)
    if cursor:
        queryset = queryset.filter(_after(keys, _decode(cursor, keys=keys, ordering=ordering)))
    items = list(queryset[: size + 1])
    if len(items) <= size:
        return Page(items=items, next_cursor=None)
    items = items[:size]
    return Page(items=items, next_cursor=_encode([key.value_of(items[-1]) for key in keys], ordering=ordering))


@dataclass(frozen=True)
class _Key:
    path: str
    descending: bool
    field: Field

    @classmethod
    def parse(cls, model: type[Model], entry: str) -> _Key:
        path = entry.removeprefix("-")
        field = None
        for part in path.split("__"):
            try:
                field = model._meta.get_field(part)
            except FieldDoesNotExist:
                raise ValueError(f"{model.__name__} has no field {part!r} (ordering {entry!r}).") from None
            model = field.related_model or model
        return cls(path=path, descending=entry.startswith("-"), field=field)

    def value_of(self, item: Any) -> Any:
        if isinstance(item, dict) and self.path in item:
            return item[self.path]  # a values() row names related fields by their whole path
        value = item
        for part in self.path.split("__"):
            value = value[part] if isinstance(value, dict) else getattr(value, part)
        if isinstance(value, Model):
            value = value.pk
        return value


class _RowCompare(Expression):
    """`(a, b, ...) > (x, y, ...)` (or `<`): PostgreSQL compares row values in one index range scan."""

    conditional = True
    output_field = BooleanField()

    def __init__(self, columns: list[Any], values: list[Any], operator: str):
        super().__init__()
        self.columns, self.values, self.operator = columns, values, operator

    def get_source_expressions(self):
        return [*self.columns, *self.values]

    def set_source_expressions(self, expressions):
        self.columns, self.values = expressions[: len(self.columns)], expressions[len(self.columns) :]

    def as_sql(self, compiler, connection):
        sides = []
        params: list[Any] = []
        for side in (self.columns, self.values):
            parts = []
            for expression in side:
                sql, part_params = compiler.compile(expression)
                parts.append(sql)
                params.extend(part_params)
            sides.append(f"({', '.join(parts)})")
        return f"{sides[0]} {self.operator} {sides[1]}", params


def _after(keys: list[_Key], values: list[Any]) -> Q | Expression:
    """Rows strictly after `values` in the order of `keys`."""
    first = keys[0]
    # The leading bound on k1 alone keeps the scan on k1's index where the row comparison cannot: when the keys
    # span joined tables (owner, workspace, agent), it is a join filter, and each page would re-read all before it.
    leading = Q(**{f"{first.path}__{'lte' if first.descending else 'gte'}": values[0]})
    if len({key.descending for key in keys}) == 1:
        columns = [F(key.path) for key in keys]
        bound = [Value(value, output_field=key.field) for key, value in zip(keys, values, strict=True)]
        return leading & _RowCompare(columns, bound, "<" if first.descending else ">")
    # Mixed directions have no row-value form: (k1 after v1) or (k1 = v1 and k2 after v2) or ...
    condition = Q()
    equal = Q()
    for key, value in zip(keys, values, strict=True):
        condition |= equal & Q(**{f"{key.path}__{'lt' if key.descending else 'gt'}": value})
        equal &= Q(**{key.path: value})
    return leading & condition


def _salt(ordering: Sequence[str]) -> str:
    return f"{_SALT}:{','.join(ordering)}"


def _to_json(value: Any) -> Any:
    # Full precision: a datetime cut to milliseconds would repeat or skip rows at the page boundary.
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _encode(values: list[Any], *, ordering: Sequence[str]) -> str:
    return signing.dumps([_to_json(value) for value in values], salt=_salt(ordering))


def _decode(cursor: str, *, keys: list[_Key], ordering: Sequence[str]) -> list[Any]:
    if not isinstance(cursor, str) or len(cursor) > CURSOR_MAX_LENGTH:
        raise InvalidInput(_INVALID_CURSOR, field="cursor")
    try:
        raw = signing.loads(cursor, salt=_salt(ordering))
        if not isinstance(raw, list) or len(raw) != len(keys):
            raise ValueError
        values = [key.field.to_python(value) for key, value in zip(keys, raw, strict=True)]
        if any(value is None for value in values):
            raise ValueError
    except (signing.BadSignature, ValidationError, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidInput(_INVALID_CURSOR, field="cursor") from None
    return values
