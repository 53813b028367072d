"""Moving a test database between migration states, for tests of upgrades and data migrations.

Migrations run DDL and commit, so tests that use this need `transactional_db`, and must leave the
database at the leaf nodes for the tests that follow (`Migrator.migrate_to_leaves`).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import StateApps

Node = tuple[str, str]


class Migrator:
    """Migrates one database to a migration state and hands out the historical models of that state."""

    def __init__(self, using: str = "default") -> None:
        self.connection = connections[using]

    def _executor(self) -> MigrationExecutor:
        # A fresh executor for every move: its loader reads which migrations are applied once, when it is built.
        return MigrationExecutor(self.connection)

    def leaf_nodes(self) -> list[Node]:
        """The newest migration of every app: the state the current code expects."""
        return self._executor().loader.graph.leaf_nodes()

    def migrate(self, nodes: Iterable[Node]) -> StateApps:
        """Apply or unapply migrations until the database is at `nodes`; the historical models of that state."""
        nodes = list(nodes)
        executor = self._executor()
        executor.migrate(nodes)
        return executor.loader.project_state(nodes).apps

    def migrate_to_leaves(self) -> None:
        """What `manage.py migrate` does: every app at its newest migration."""
        executor = self._executor()
        executor.migrate(executor.loader.graph.leaf_nodes())

    def table_row_counts(self) -> dict[str, int]:
        """Rows per table, `django_migrations` aside (migrating changes it by design)."""
        counts = {}
        with self.connection.cursor() as cursor:
            for table in self.connection.introspection.table_names(cursor):
                if table != "django_migrations":
                    cursor.execute(f"SELECT count(*) FROM {self.connection.ops.quote_name(table)}")
                    counts[table] = cursor.fetchone()[0]
        return counts
