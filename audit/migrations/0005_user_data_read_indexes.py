"""Partial indexes for the permissions report's "latest user-data read" columns (audit/models.py).

Built CONCURRENTLY, so an installation with a large audit log keeps recording events while they build; that needs
a migration outside a transaction. A build that fails leaves an INVALID index behind: drop it and migrate again.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("audit", "0004_audit_stream_cursor"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("action", "agent.user_data_accessed")),
                fields=["agent_id", "time"],
                name="audit_user_data_reads",
            ),
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("action", "agent.user_data_accessed"), ("details__route", "gitsshkey")),
                fields=["agent_id", "time"],
                name="audit_git_ssh_key_reads",
            ),
        ),
        AddIndexConcurrently(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(
                    ("action", "agent.user_data_accessed"), ("details__route__in", ["external-auth", "gitauth"])
                ),
                fields=["agent_id", "time"],
                name="audit_external_auth_reads",
            ),
        ),
    ]
