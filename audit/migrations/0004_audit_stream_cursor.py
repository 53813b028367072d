"""One cursor per SIEM sink: how far `manage.py stream_audit` has delivered the audit log (audit/streaming/).

A plain table, outside the audit log's guards: the cursor moves with every acknowledged batch. Existing
installations start with no rows; each configured sink gets its row on the worker's first pass.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_sealed_chain")]

    operations = [
        migrations.CreateModel(
            name="AuditStreamCursor",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("sink", models.CharField(max_length=64, unique=True)),
                ("last_id", models.BigIntegerField(default=0)),
                ("last_hash", models.CharField(blank=True, max_length=64)),
                ("delivered", models.BigIntegerField(default=0)),
                ("failures", models.IntegerField(default=0)),
                ("next_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.CharField(blank=True, max_length=300)),
                ("last_error_at", models.DateTimeField(blank=True, null=True)),
                ("last_delivered_at", models.DateTimeField(blank=True, null=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
    ]
