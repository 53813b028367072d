"""Limits under abuse: each agent token's chain depth (filled in for the tokens already there, so the cap
counts existing chains too), the rotated-out link of refresh-token rotation, which token reported each app
status, the per-agent report quota windows, and the indexes the live-children cap, log retention and the
keyset-paged token lists use. The per-token `last_rejected_at` goes: rejected tokens are audited once per agent
and period, with a count."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

DEPTH_SQL = """
WITH RECURSIVE tree AS (
    SELECT id, 0 AS depth FROM agents_agenttoken WHERE parent_id IS NULL
    UNION ALL
    SELECT child.id, tree.depth + 1 FROM agents_agenttoken child JOIN tree ON child.parent_id = tree.id
)
UPDATE agents_agenttoken token SET depth = tree.depth FROM tree WHERE token.id = tree.id AND tree.depth > 0
"""


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0004_token_key_id'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AgentReportWindow',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('logs', 'Logs'), ('app_status', 'App statuses')], max_length=20)),
                ('window_start', models.DateTimeField()),
                ('rows', models.BigIntegerField(default=0)),
                ('bytes', models.BigIntegerField(default=0)),
            ],
        ),
        migrations.AddField(
            model_name='agenttoken',
            name='depth',
            field=models.PositiveSmallIntegerField(default=0, editable=False),
        ),
        # Existing children get their real depth: the number of ancestors, walked down from the roots.
        migrations.RunSQL(DEPTH_SQL, migrations.RunSQL.noop),
        migrations.AddField(
            model_name='agenttoken',
            name='rotated_to',
            field=models.OneToOneField(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='rotated_from', to='agents.agenttoken'),
        ),
        migrations.AddField(
            model_name='appstatus',
            name='token',
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='agents.agenttoken'),
        ),
        # Rejections are folded per agent now (audit/folding.py), not per token.
        migrations.RemoveField(
            model_name='agenttoken',
            name='last_rejected_at',
        ),
        migrations.AddIndex(
            model_name='agenttoken',
            index=models.Index(fields=['agent', '-created_at', '-id'], name='agent_token_list'),
        ),
        migrations.AddIndex(
            model_name='usertoken',
            index=models.Index(fields=['user', 'kind', '-created_at', '-id'], name='user_token_list'),
        ),
        migrations.AddIndex(
            model_name='agentlog',
            index=models.Index(fields=['received_at'], name='agent_log_received'),
        ),
        migrations.AddIndex(
            model_name='agenttoken',
            index=models.Index(condition=models.Q(('parent__isnull', False), ('revoked_at__isnull', True)), fields=['agent', 'expires_at'], name='agent_token_live_children'),
        ),
        migrations.AddField(
            model_name='agentreportwindow',
            name='agent',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='agents.workspaceagent'),
        ),
        migrations.AddConstraint(
            model_name='agentreportwindow',
            constraint=models.UniqueConstraint(fields=('agent', 'kind'), name='one_report_window_per_agent_kind'),
        ),
    ]
