"""`manage.py changepassword`: Django's command (its prompts and password validators), with the change audited
as `user.password_changed` and the user's sessions and tokens revoked, in the transaction that saves it."""

from __future__ import annotations

import getpass

from django.contrib.auth import get_user_model
from django.contrib.auth.management.commands import changepassword
from django.db import transaction

from agents.services.users import user_password_changed_record


class Command(changepassword.Command):
    help = (
        "Change a user's password. Audited (user.password_changed); unless CODERAUTH_PASSWORD_CHANGE_REVOKES is "
        "off, the user's web sessions, API login sessions and API tokens are revoked."
    )

    def handle(self, *args, **options):
        database = options["database"]
        username = options["username"] or getpass.getuser()
        # The transaction is open while the password is typed; it holds no row lock until the save.
        with transaction.atomic(using=database):
            done = super().handle(*args, **options)
            user = get_user_model()._default_manager.db_manager(database).get_by_natural_key(username)
            revoked = user_password_changed_record(actor=None, user=user, method="changepassword")
        self.stdout.write(f"Revoked for '{user.get_username()}': {revoked.summary()}.")
        return done
