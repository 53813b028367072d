"""`manage.py break_glass_signin USERNAME`: a one-time code that signs an admin in to the web UI when password
sign-in is off and the OpenID Provider cannot be reached. The code goes to this command's output only."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from agents.services.break_glass import MAX_MINUTES, break_glass_code_issue
from core.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Print a one-time code that signs an active admin in to the web UI at /login/break-glass/, once, within a "
        "few minutes, whatever CODERAUTH_PASSWORD_LOGIN says. Audited (user_token.issued, then user.login)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username", help="An active admin (a superuser or a member of the group admin).")
        parser.add_argument(
            "--minutes", type=int, default=10, help=f"How long the code lasts, 1 to {MAX_MINUTES} (default 10)."
        )
        parser.add_argument("--url", default="", help="Where the app is served, such as https://coderauth.example.com")

    def handle(self, *args, username: str, minutes: int, url: str, **options):
        try:
            issued = break_glass_code_issue(username=username, minutes=minutes)
        except ApplicationError as error:
            raise CommandError(error.detail)
        page = url.rstrip("/") + reverse("ui:break-glass")
        expires = issued.code.expires_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        self.stdout.write(f"One-time sign-in for {username}, valid once until {expires}:")
        self.stdout.write(f"  open  {page}")
        self.stdout.write(f"  code  {issued.plaintext}")
