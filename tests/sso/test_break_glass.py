"""`manage.py break_glass_signin`: a one-time, short-lived code for an admin, usable once at /login/break-glass/
whatever CODERAUTH_PASSWORD_LOGIN says, audited at issue and at use, and never logged."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from agents.models import BreakGlassCode
from audit import chain
from audit.models import AuditEvent
from tests.helpers.factories import AdminFactory, AuditorFactory
from tests.test_no_secrets_in_logs import every_log_record


def _issue(username: str, *args: str) -> str:
    out = StringIO()
    call_command("break_glass_signin", username, *args, stdout=out)
    return re.search(r"code\s+(cdb_\w+)", out.getvalue()).group(1)


@pytest.fixture
def ops(db, settings):
    settings.CODERAUTH_PASSWORD_LOGIN = False
    return AdminFactory(username="ops")


def test_the_code_signs_the_admin_in_once(ops):
    code = _issue("ops")
    client = Client()
    response = client.post("/login/break-glass/", {"code": code})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.session["_auth_user_id"] == str(ops.pk)
    assert client.get("/").status_code == 200

    again = Client()
    replay = again.post("/login/break-glass/", {"code": code})
    assert replay.status_code == 403 and b"unknown, already used or expired" in replay.content
    assert "_auth_user_id" not in again.session


def test_issue_and_use_are_audited_with_the_hint_only(ops):
    code = _issue("ops", "--minutes", "5")
    Client().post("/login/break-glass/", {"code": code})
    Client().post("/login/break-glass/", {"code": code})
    stored = BreakGlassCode.objects.get()
    issued = AuditEvent.objects.get(action="user_token.issued")
    assert (issued.actor_type, issued.actor) == ("system", "break_glass_signin")
    assert issued.details["kind"] == "break_glass" and issued.details["username"] == "ops"
    assert issued.details["token_hint"] == f"cdb_…{code[-4:]}" == stored.hint
    assert stored.expires_at - stored.created_at == timedelta(minutes=5)
    login = AuditEvent.objects.get(action="user.login")
    assert login.actor == "ops" and login.details["method"] == "break_glass"
    failed = AuditEvent.objects.get(action="user.login_failed")
    assert failed.details["reason"] == "used_code"
    dump = "\n".join(json.dumps(chain.canonical_fields(row)) for row in AuditEvent.objects.values(*chain.FIELDS))
    assert code not in dump and code[4:] not in dump


def test_an_expired_code_is_refused(ops):
    code = _issue("ops")
    BreakGlassCode.objects.update(
        created_at=timezone.now() - timedelta(minutes=20), expires_at=timezone.now() - timedelta(minutes=10)
    )
    response = Client().post("/login/break-glass/", {"code": code})
    assert response.status_code == 403
    assert AuditEvent.objects.get(action="user.login_failed").details["reason"] == "expired_code"


def test_an_unknown_code_is_refused(ops):
    response = Client().post("/login/break-glass/", {"code": "cdb_" + "x" * 30})
    assert response.status_code == 403
    failed = AuditEvent.objects.get(action="user.login_failed")
    assert failed.details == {"method": "break_glass", "reason": "unknown_code"}


def test_a_code_whose_user_lost_the_admin_role_is_refused(ops):
    code = _issue("ops")
    ops.groups.clear()
    assert Client().post("/login/break-glass/", {"code": code}).status_code == 403
    assert AuditEvent.objects.get(action="user.login_failed").details["reason"] == "not_admin"


@pytest.mark.parametrize("who", ["auditor", "inactive", "nobody"])
def test_only_an_active_admin_gets_a_code(ops, who):
    if who == "auditor":
        AuditorFactory(username="auditor")
    if who == "inactive":
        AdminFactory(username="inactive", is_active=False)
    with pytest.raises(CommandError):
        call_command("break_glass_signin", who, stdout=StringIO())
    assert not BreakGlassCode.objects.exists()
    assert not AuditEvent.objects.filter(action="user_token.issued").exists()


def test_minutes_are_bounded(ops):
    with pytest.raises(CommandError, match="1 to 60 minutes"):
        call_command("break_glass_signin", "ops", "--minutes", "61", stdout=StringIO())


def test_the_command_prints_the_page_to_open(ops):
    out = StringIO()
    call_command("break_glass_signin", "ops", "--url", "https://coderauth.example.com/", stdout=out)
    assert "open  https://coderauth.example.com/login/break-glass/" in out.getvalue()


def test_the_code_reaches_no_log(ops, capfd):
    """Security regression: issuing and using the code logs it nowhere (every logger at DEBUG, stdout and stderr
    of the process aside from the command's own output, which is where the code goes)."""
    out = StringIO()
    with every_log_record() as logged:
        call_command("break_glass_signin", "ops", stdout=out)
        code = re.search(r"code\s+(cdb_\w+)", out.getvalue()).group(1)
        Client().post("/login/break-glass/", {"code": code})
        Client().post("/login/break-glass/", {"code": code})
    captured = capfd.readouterr()
    text = logged.getvalue() + captured.out + captured.err
    assert code[4:20] not in text and code[-16:] not in text
    assert "Forbidden: /login/break-glass/" in text, "the capture saw the refused second use"
