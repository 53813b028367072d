"""Just-in-time elevation: agents' access requests with their decisions and grants, and the webhook outbox that
announces them. New tables only; no existing row changes."""

import django.contrib.postgres.fields
import django.db.models.deletion
import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0005_abuse_limits'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='WebhookDelivery',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('event', models.CharField(max_length=60)),
                ('url', models.URLField(max_length=2000)),
                ('body', models.TextField()),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('attempts', models.PositiveIntegerField(default=0)),
                ('next_attempt_at', models.DateTimeField()),
                ('delivered_at', models.DateTimeField(blank=True, null=True)),
                ('last_status', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('last_error', models.CharField(blank=True, max_length=500)),
            ],
            options={
                'ordering': ['-id'],
                'indexes': [models.Index(condition=models.Q(('delivered_at__isnull', True)), fields=['next_attempt_at'], name='webhook_due')],
            },
        ),
        migrations.CreateModel(
            name='AccessRequest',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('scopes', django.contrib.postgres.fields.ArrayField(base_field=models.CharField(max_length=40), size=None)),
                ('reason', models.CharField(max_length=500)),
                ('duration_seconds', models.PositiveIntegerField()),
                ('state', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('denied', 'Denied'), ('revoked', 'Revoked')], default='pending', max_length=10)),
                ('requested_at', models.DateTimeField()),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('decision_reason', models.CharField(blank=True, max_length=500)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('revoke_reason', models.CharField(blank=True, max_length=500)),
                ('expired_recorded_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('agent', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='access_requests', to='agents.workspaceagent')),
                ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('revoked_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('token', models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='agents.agenttoken')),
                ('workspace', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='access_requests', to='agents.workspace')),
            ],
            options={
                'ordering': ['-requested_at', '-id'],
                'indexes': [models.Index(condition=models.Q(('state', 'approved')), fields=['agent', 'expires_at'], name='access_request_grant'), models.Index(fields=['agent', '-requested_at', '-id'], name='access_request_agent_list'), models.Index(fields=['-requested_at', '-id'], name='access_request_list'), models.Index(fields=['state', '-requested_at'], name='access_request_state')],
                'constraints': [models.CheckConstraint(condition=models.Q(('scopes__contained_by', ['agent:connect', 'agent:report', 'agent:gitsshkey', 'agent:external-auth'])), name='access_request_agent_scopes'), models.CheckConstraint(condition=models.Q(models.Q(('state', 'approved'), _negated=True), ('expires_at__isnull', False), _connector='OR'), name='access_request_approved_has_expiry')],
            },
        ),
    ]
