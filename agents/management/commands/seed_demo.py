"""Create the idempotent demo of `make run`: an admin, a workspace, an agent and an agent token.

Secrets are printed once, when they are created. Re-running changes nothing; `--reset`
sets a new admin password and replaces the demo token (revoking the old one).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from agents.models import AgentToken, Workspace, WorkspaceAgent
from agents.services.tokens import agent_token_issue, agent_token_revoke
from agents.services.users import user_account_snapshot, user_admin_save_record
from agents.services.workspaces import agent_create, workspace_create

DEMO_ADMIN = "admin"
DEMO_WORKSPACE = "demo"
DEMO_AGENT = "main"
DEMO_TOKEN_NAME = "demo"


class Command(BaseCommand):
    help = "Create (idempotently) the demo admin, workspace, agent and agent token."

    def add_arguments(self, parser):
        parser.add_argument("--reset", action="store_true", help="New admin password and a new demo agent token.")
        parser.add_argument("--force", action="store_true", help="Allow running with DEBUG off.")
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="Where the app is served (printed).")

    def handle(self, *args, reset: bool, force: bool, url: str, **options):
        if not settings.DEBUG and not force:
            raise CommandError("seed_demo creates an admin with a printed password; it runs only with DEBUG=true.")
        User = get_user_model()
        with transaction.atomic():
            existing = User.objects.filter(username=DEMO_ADMIN).first()
            before = user_account_snapshot(user_id=existing.pk) if existing else None
            admin, created = User.objects.get_or_create(username=DEMO_ADMIN, defaults={"is_staff": True})
            admin.groups.add(Group.objects.get_or_create(name="admin")[0])
            password = None
            if created or reset:
                password = secrets.token_urlsafe(12)
                admin.set_password(password)
                admin.is_staff = True
                admin.is_superuser = True
                admin.save()
            # user.created, or user.updated naming what changed (a reset: password_changed); nothing new, no row.
            user_admin_save_record(actor=None, user=admin, before=before, method="seed_demo")

        workspace = Workspace.objects.filter(owner=admin, name=DEMO_WORKSPACE).first()
        if workspace is None:
            workspace = workspace_create(actor=admin, name=DEMO_WORKSPACE)
        agent = (
            WorkspaceAgent.objects.select_related("workspace__permission_mode", "permission_mode")
            .filter(workspace=workspace, name=DEMO_AGENT)
            .first()
        )
        if agent is None:
            agent = agent_create(actor=admin, workspace=workspace, name=DEMO_AGENT)
            agent = WorkspaceAgent.objects.select_related("workspace__permission_mode", "permission_mode").get(
                pk=agent.pk
            )

        live_tokens = AgentToken.objects.filter(
            agent=agent, name=DEMO_TOKEN_NAME, parent=None, revoked_at=None, expires_at__gt=timezone.now()
        )
        token_plaintext = None
        if reset:
            for token in live_tokens:
                agent_token_revoke(actor=admin, token=token)
        if reset or not live_tokens.exists():
            token_plaintext = agent_token_issue(actor=admin, agent=agent, name=DEMO_TOKEN_NAME).plaintext

        self.stdout.write(self.style.SUCCESS("coderauth demo"))
        self.stdout.write(f"  web UI        {url}  (API docs: {url.rstrip('/')}/api/schema/docs/)")
        self.stdout.write(f"  admin user    {DEMO_ADMIN}")
        self.stdout.write(f"  password      {password or '(unchanged; `make demo-reset` sets a new one)'}")
        self.stdout.write(f"  workspace     {workspace.name}  id={workspace.id}  mode={workspace.permission_mode_id}")
        self.stdout.write(f"  agent         {agent.name}  id={agent.id}")
        if token_plaintext:
            self.stdout.write(f"  agent token   {token_plaintext}")
            self.stdout.write(
                self.style.WARNING("  The token and password are shown once and stored only as digests/hashes.")
            )
        else:
            self.stdout.write("  agent token   (issued earlier; `make demo-reset` issues a new one)")
