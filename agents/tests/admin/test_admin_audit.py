"""The Django admin cannot get round the sign-in throttle or the audit trail (security review, HIGH).

/admin/login/ is the web UI's throttled, audited sign-in; account changes in the admin are audited in the
same transaction; groups (the roles) are read-only there; a workspace owner cannot be deleted.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db.models import ProtectedError
from django.test import Client
from django.urls import reverse

from agents.models import GitSSHKey, UserToken, Workspace
from agents.services.user_data import git_ssh_key_get_or_create
from agents.services.users import user_token_issue
from audit.models import AuditEvent
from tests.helpers.factories import PASSWORD, UserFactory, ensure_builtins
from tests.helpers.responses import assert_status

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture(autouse=True)
def _fresh_throttle():
    cache.clear()  # throttle counters live in the database cache, which transactional tests do not flush


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.fixture
def superuser_web(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def _events(action: str):
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


# --- Sign-in -------------------------------------------------------------------------------------------


def test_admin_login_is_throttled_like_the_ui_sign_in(member):
    """Password guessing at /admin/login/ meets the same per-address budget as the UI and the API login."""
    client = Client()
    url = reverse("admin:login")
    assert url == "/admin/login/"
    statuses = [
        client.post(url, {"username": member.username, "password": f"guess-{n}"}).status_code for n in range(10)
    ]
    assert statuses == [200] * 10
    response = client.post(url, {"username": member.username, "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_admin_login_budget_is_shared_with_the_ui_sign_in(member):
    """Spreading guesses over /login/ and /admin/login/ does not double the budget."""
    client = Client()
    for n in range(5):
        client.post(reverse("ui:login"), {"username": member.username, "password": f"ui-{n}"})
        client.post(reverse("admin:login"), {"username": member.username, "password": f"admin-{n}"})
    response = client.post(reverse("admin:login"), {"username": member.username, "password": "one more"})
    assert response.status_code == 429


def test_failed_admin_sign_in_is_audited(superuser):
    """A wrong password at /admin/login/ writes user.login_failed, as the UI sign-in does."""
    Client().post(reverse("admin:login"), {"username": "root", "password": "wrong"})
    (event,) = _events("user.login_failed")
    assert event.actor == "root"
    assert event.details == {"method": "web", "reason": "bad_credentials"}
    assert "wrong" not in str(event.details)


def test_successful_admin_sign_in_is_audited_and_opens_the_admin(superuser):
    """A staff sign-in at /admin/login/ writes user.login and then the admin itself answers 200."""
    client = Client()
    response = client.post(
        reverse("admin:login"), {"username": "root", "password": PASSWORD, "next": reverse("admin:index")}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")
    (event,) = _events("user.login")
    assert event.actor == "root"
    assert event.details["method"] == "web"
    assert client.get(reverse("admin:index")).status_code == 200


def test_admin_redirects_anonymous_visitors_to_the_audited_sign_in():
    client = Client()
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={reverse('admin:index')}"
    page = client.get(response["Location"]).content.decode()
    assert f'action="{reverse("ui:login")}"' in page, "the form posts to the UI's throttled sign-in"
    assert f'name="next" value="{reverse("admin:index")}"' in page


def test_staff_signed_in_through_the_ui_can_use_the_admin(superuser):
    client = Client()
    response = client.post(
        reverse("ui:login"), {"username": "root", "password": PASSWORD, "next": reverse("admin:auth_user_changelist")}
    )
    assert response["Location"] == reverse("admin:auth_user_changelist")
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 200


@pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/admin/", "javascript:alert(1)"])
def test_admin_sign_in_never_redirects_off_site(superuser, next_url):
    """`next` is checked with url_has_allowed_host_and_scheme: an open redirect lands on the admin index."""
    client = Client()
    response = client.post(reverse("admin:login"), {"username": "root", "password": PASSWORD, "next": next_url})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:index")
    page = client.get(f"{reverse('admin:login')}?next={next_url}").content.decode()
    assert "evil.example" not in page and "javascript:" not in page


def test_signed_in_non_staff_sees_the_form_not_a_redirect_loop(member):
    """A member signed in is sent from /admin/ to the sign-in page, which does not send them back."""
    client = Client()
    client.force_login(member)
    response = client.get(reverse("admin:index"), follow=True)
    assert response.status_code == 200
    assert len(response.redirect_chain) == 1
    assert "may not use the Django admin" in response.content.decode()


def test_signed_in_staff_is_sent_on_from_the_admin_sign_in(superuser_web):
    target = reverse("admin:auth_user_changelist")
    response = superuser_web.get(f"{reverse('admin:login')}?next={target}")
    assert response.status_code == 302
    assert response["Location"] == target


# --- Account changes ------------------------------------------------------------------------------------


def _change_form(user, **overrides) -> dict:
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "groups": [],
        "user_permissions": [],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
        "_save": "Save",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def test_granting_admin_and_superuser_in_the_admin_is_audited(superuser_web, member):
    """Privilege changes name the fields and give before/after values; the password hash never appears."""
    ensure_builtins()
    admin_group = Group.objects.get(name="admin")
    response = superuser_web.post(
        reverse("admin:auth_user_change", args=[member.pk]),
        _change_form(member, is_superuser="on", is_staff="on", groups=[admin_group.pk], email="m@example.com"),
    )
    assert_status(response, 302)
    member.refresh_from_db()
    assert member.is_superuser and member.groups.filter(name="admin").exists()
    (event,) = _events("user.updated")
    assert event.actor == "root" and event.actor_type == "user"
    details = event.details
    assert sorted(details["changed"]) == ["email", "groups", "is_staff", "is_superuser"]
    assert details["from"] == {"groups": [], "is_staff": False, "is_superuser": False}
    assert details["to"] == {"groups": ["admin"], "is_staff": True, "is_superuser": True}
    assert details["password_changed"] is False
    assert "m@example.com" not in str(details), "profile fields are named, not copied"
    assert member.password not in str(details)


def test_deactivating_a_user_in_the_admin_is_audited(superuser_web, member):
    response = superuser_web.post(
        reverse("admin:auth_user_change", args=[member.pk]), _change_form(member, is_active=None)
    )
    assert_status(response, 302)
    (event,) = _events("user.updated")
    assert event.details["changed"] == ["is_active"]
    assert (event.details["from"], event.details["to"]) == ({"is_active": True}, {"is_active": False})


def test_saving_an_unchanged_user_writes_no_event(superuser_web, member):
    response = superuser_web.post(reverse("admin:auth_user_change", args=[member.pk]), _change_form(member))
    assert_status(response, 302)
    assert _events("user.updated") == []


def test_admin_user_change_fails_closed_when_the_audit_write_fails(superuser_web, member, monkeypatch):
    """If the audit row cannot be written, the privilege change is rolled back with it."""

    def broken_audit(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr("agents.services.users.audit_record", broken_audit)
    with pytest.raises(RuntimeError):
        superuser_web.post(reverse("admin:auth_user_change", args=[member.pk]), _change_form(member, is_superuser="on"))
    member.refresh_from_db()
    assert not member.is_superuser


def test_admin_password_change_is_audited_without_the_hash(superuser_web, member):
    """An admin setting another user's password writes user.password_changed (not user.updated), no hash in it."""
    old_hash = member.password
    response = superuser_web.post(
        reverse("admin:auth_user_password_change", args=[member.pk]),
        {"password1": "a new long passphrase 42", "password2": "a new long passphrase 42", "usable_password": "true"},
    )
    assert_status(response, 302)
    member.refresh_from_db()
    assert member.password != old_hash
    assert _events("user.updated") == []
    (event,) = _events("user.password_changed")
    assert event.actor == "root"
    assert event.details["method"] == "admin" and event.details["username"] == member.username
    serialized = str(event.details)
    assert old_hash not in serialized and member.password not in serialized and "passphrase" not in serialized


def test_admin_password_change_fails_closed_when_the_audit_write_fails(superuser_web, member, monkeypatch):
    old_hash = member.password
    monkeypatch.setattr("agents.services.users.audit_record", lambda **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        superuser_web.post(
            reverse("admin:auth_user_password_change", args=[member.pk]),
            {
                "password1": "a new long passphrase 42",
                "password2": "a new long passphrase 42",
                "usable_password": "true",
            },
        )
    member.refresh_from_db()
    assert member.password == old_hash


def test_creating_a_user_in_the_admin_is_audited(superuser_web):
    response = superuser_web.post(
        reverse("admin:auth_user_add"),
        {
            "username": "newbie",
            "password1": "a new long passphrase 42",
            "password2": "a new long passphrase 42",
            "usable_password": "true",
            "_save": "Save",
        },
    )
    assert_status(response, 302)
    (event,) = _events("user.created")
    assert event.actor == "root"
    assert event.details["username"] == "newbie"
    assert event.details["is_superuser"] is False and event.details["groups"] == []
    assert "passphrase" not in str(event.details) and "pbkdf2" not in str(event.details)


def test_groups_are_read_only_in_the_admin(superuser_web):
    """Groups are the roles: renaming or deleting `admin` in the admin would change who is an admin, unaudited."""
    ensure_builtins()
    group = Group.objects.get(name="admin")
    assert superuser_web.get(reverse("admin:auth_group_add")).status_code == 403
    superuser_web.post(reverse("admin:auth_group_change", args=[group.pk]), {"name": "renamed", "permissions": []})
    superuser_web.post(reverse("admin:auth_group_delete", args=[group.pk]), {"post": "yes"})
    assert Group.objects.filter(pk=group.pk, name="admin").exists()


# --- Deleting users --------------------------------------------------------------------------------------


def test_deleting_a_user_in_the_admin_is_audited_with_counts(superuser_web, member):
    """Tokens and user data of a user without workspaces go with the account, and the audit row counts them."""
    user_token_issue(user=member, name="laptop")
    git_ssh_key_get_or_create(user=member)
    response = superuser_web.post(reverse("admin:auth_user_delete", args=[member.pk]), {"post": "yes"})
    assert_status(response, 302)
    assert not User.objects.filter(pk=member.pk).exists()
    assert not UserToken.objects.filter(user_id=member.pk).exists()
    (event,) = _events("user.deleted")
    assert event.actor == "root"
    assert event.details["user_id"] == member.pk and event.details["username"] == member.username
    assert event.details["removed"] == {
        "user_tokens": 1,
        "live_user_tokens": 1,
        "git_ssh_keys": 1,
        "external_auth_links": 0,
    }


def test_workspace_owner_cannot_be_deleted(superuser_web, workspace, agent):
    """Workspace.owner is PROTECT: the admin shows the protected objects and deletes nothing."""
    owner = workspace.owner
    page = superuser_web.get(reverse("admin:auth_user_delete", args=[owner.pk])).content.decode()
    assert "would require deleting the following protected related objects" in page, "not a missing-permission page"
    assert workspace.name in page
    superuser_web.post(reverse("admin:auth_user_delete", args=[owner.pk]), {"post": "yes"})
    assert User.objects.filter(pk=owner.pk).exists()
    assert Workspace.objects.filter(pk=workspace.pk).exists()
    assert _events("user.deleted") == []
    with pytest.raises(ProtectedError):
        owner.delete()


def test_bulk_delete_in_the_admin_audits_every_user(superuser_web):
    users = [UserFactory(), UserFactory()]
    response = superuser_web.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [user.pk for user in users], "post": "yes"},
    )
    assert_status(response, 302)
    assert not User.objects.filter(pk__in=[user.pk for user in users]).exists()
    assert sorted(event.details["username"] for event in _events("user.deleted")) == sorted(u.username for u in users)


def test_bulk_delete_with_a_workspace_owner_deletes_nobody(superuser_web, workspace):
    bystander = UserFactory()
    superuser_web.post(
        reverse("admin:auth_user_changelist"),
        {"action": "delete_selected", "_selected_action": [bystander.pk, workspace.owner_id], "post": "yes"},
    )
    assert User.objects.filter(pk__in=[bystander.pk, workspace.owner_id]).count() == 2
    assert _events("user.deleted") == []


# --- Agent reads that create user data ------------------------------------------------------------------


def test_agent_first_gitsshkey_read_audits_the_agent_as_creator(agent_client, agent, member):
    """The owner's key generated by an agent's read is recorded with the agent as actor, not the owner."""
    assert not GitSSHKey.objects.filter(user=member).exists()
    assert_status(agent_client.get(reverse("agents:agent-gitsshkey")), 200)
    (created,) = _events("user.gitsshkey_created")
    assert created.actor_type == "agent"
    assert created.actor == str(agent.pk)
    assert created.agent_id == agent.pk and created.workspace_id == agent.workspace_id
    assert created.details["owner"] == member.username
    assert "PRIVATE KEY" not in str(created.details)
    (accessed,) = _events("agent.user_data_accessed")
    assert accessed.actor == str(agent.pk)


def test_user_gitsshkey_creation_still_names_the_user(member):
    git_ssh_key_get_or_create(user=member)
    (created,) = _events("user.gitsshkey_created")
    assert (created.actor_type, created.actor) == ("user", member.username)
