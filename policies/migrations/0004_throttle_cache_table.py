"""Create the database cache table that holds throttle counters (login attempts).

Throttling must be shared by every app process, so it lives in PostgreSQL (CACHES in
settings). `migrate` alone must leave a working server, hence a migration rather than a
separate `createcachetable` step that an operator could forget (logins would then fail).
"""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("policies", "0003_role_groups")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
