"""The permissions report's "latest git SSH key read" per agent: a partial index of those rows (audit/models.py).

Built CONCURRENTLY, so an installation with a large audit log keeps recording and sealing events while it builds;
that needs a migration outside a transaction, and one index per migration, so that each is recorded once built. A
build that fails leaves an INVALID index behind: drop it and migrate again.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("audit", "0005_user_data_reads_index"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("action", "agent.user_data_accessed"), ("details__route", "gitsshkey")),
                fields=["agent_id", "time"],
                name="audit_git_ssh_key_reads",
            ),
        ),
    ]
