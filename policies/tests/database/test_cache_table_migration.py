"""`migrate` alone leaves a working server: the throttle cache table comes from a migration."""

from __future__ import annotations

import importlib

import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db

migration = importlib.import_module("policies.migrations.0004_throttle_cache_table")


def test_migration_creates_the_throttle_cache_table():
    table = settings.CACHES["default"]["LOCATION"]
    with connection.cursor() as cursor:
        cursor.execute(f'DROP TABLE "{table}"')  # rolled back with the test's transaction
    assert table not in connection.introspection.table_names()

    with connection.schema_editor() as schema_editor:
        migration.create_cache_table(apps=None, schema_editor=schema_editor)

    assert table in connection.introspection.table_names()
