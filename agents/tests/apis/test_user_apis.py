"""User routes (docs/concepts.md): login, me, user tokens, the user's git SSH key and external-auth links."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from agents.models import ExternalAuthLink, ExternalAuthProvider, GitSSHKey, UserToken
from audit.models import AuditEvent
from tests.helpers.factories import PASSWORD
from tests.helpers.responses import all_results, assert_status, page_results

pytestmark = pytest.mark.django_db


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# --- Login -------------------------------------------------------------------------------------------


def test_login_returns_a_session_token_that_authenticates(api_client, member, settings):
    response = api_client.post(
        reverse("agents:user-login"), {"username": member.username, "password": PASSWORD}, format="json"
    )
    assert_status(response, 201)
    assert set(response.data) == {"session_token", "expires_at"}
    assert response.data["session_token"].startswith("cdu_")
    token = UserToken.objects.get(user=member, kind=UserToken.KIND_SESSION)
    lifetime = token.expires_at - token.created_at
    assert abs(lifetime - settings.CODERAUTH_SESSION_TOKEN_LIFETIME).total_seconds() < 5

    me = _bearer(response.data["session_token"]).get(reverse("agents:user-me"))
    assert_status(me, 200)
    assert me.data == {"id": member.pk, "username": member.username, "roles": ["member"]}
    assert AuditEvent.objects.filter(action="user.login", actor=member.username).exists()


@pytest.mark.parametrize(
    "credentials",
    [{"username": "user-that-does-not-exist", "password": PASSWORD}, {"username": None, "password": "wrong"}],
)
def test_bad_credentials_are_a_401_with_one_message(api_client, member, credentials):
    body = {**credentials, "username": credentials["username"] or member.username}
    response = api_client.post(reverse("agents:user-login"), body, format="json")
    assert_status(response, 401)
    assert response.json() == {"detail": "Invalid username or password."}
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert AuditEvent.objects.filter(action="user.login_failed").exists()
    assert PASSWORD not in str(list(AuditEvent.objects.values_list("details", flat=True)))


def test_inactive_user_cannot_log_in(api_client, member):
    member.is_active = False
    member.save()
    response = api_client.post(
        reverse("agents:user-login"), {"username": member.username, "password": PASSWORD}, format="json"
    )
    assert_status(response, 401)


def test_login_needs_both_fields(api_client):
    assert_status(api_client.post(reverse("agents:user-login"), {"username": "x"}, format="json"), 400)


@pytest.mark.parametrize(
    ("client_fixture", "role"), [("member_client", "member"), ("auditor_client", "auditor"), ("admin_client", "admin")]
)
def test_me_names_exactly_one_role(request, client_fixture, role):
    response = request.getfixturevalue(client_fixture).get(reverse("agents:user-me"))
    assert_status(response, 200)
    assert response.data["roles"] == [role]


# --- User tokens -------------------------------------------------------------------------------------


def test_user_token_issue_list_and_revoke(member_client, member):
    response = member_client.post(reverse("agents:user-token-list"), {"name": "laptop"}, format="json")
    assert_status(response, 201)
    assert set(response.data) == {"id", "name", "token", "expires_at"}
    plaintext, token_id = response.data["token"], response.data["id"]
    assert_status(_bearer(plaintext).get(reverse("agents:user-me")), 200)

    listed = member_client.get(reverse("agents:user-token-list"))
    by_id = {item["id"]: item for item in page_results(listed)}
    assert by_id[token_id]["name"] == "laptop"
    assert "token" not in by_id[token_id]
    assert plaintext not in str(listed.content)

    assert_status(member_client.delete(reverse("agents:user-token-detail", args=[token_id])), 204)
    assert_status(_bearer(plaintext).get(reverse("agents:user-me")), 401)
    assert AuditEvent.objects.filter(action="user_token.revoked", details__token_id=token_id).exists()
    assert AuditEvent.objects.filter(action="user_token.issued", details__token_id=token_id).exists()


def test_user_token_lifetime_is_bounded(member_client, settings):
    max_seconds = int(settings.CODERAUTH_USER_TOKEN_MAX_LIFETIME.total_seconds())
    response = member_client.post(
        reverse("agents:user-token-list"), {"name": "long", "lifetime_seconds": max_seconds + 1}, format="json"
    )
    assert_status(response, 400)
    assert "lifetime_seconds" in response.json()
    response = member_client.post(
        reverse("agents:user-token-list"), {"name": "ok", "lifetime_seconds": 3600}, format="json"
    )
    assert_status(response, 201)


def test_user_cannot_revoke_or_see_another_users_token(member_client, other_member_client):
    response = other_member_client.post(reverse("agents:user-token-list"), {"name": "theirs"}, format="json")
    token_id = response.data["id"]
    assert_status(member_client.delete(reverse("agents:user-token-detail", args=[token_id])), 404)
    assert token_id not in {item["id"] for item in all_results(member_client, reverse("agents:user-token-list"))}
    assert UserToken.objects.get(pk=token_id).revoked_at is None


def test_expired_user_token_is_refused(member):
    from agents.services.users import user_token_issue

    issued = user_token_issue(user=member, name="old")
    past = timezone.now() - timedelta(days=1)
    UserToken.objects.filter(pk=issued.token.pk).update(created_at=past - timedelta(days=1), expires_at=past)
    assert_status(_bearer(issued.plaintext).get(reverse("agents:user-me")), 401)


# --- Git SSH key -------------------------------------------------------------------------------------


def test_gitsshkey_is_generated_on_first_need_and_regenerated_on_put(member_client, member):
    response = member_client.get(reverse("agents:user-gitsshkey"))
    assert_status(response, 200)
    assert set(response.data) == {"public_key"}, "the user route never returns the private key"
    first = response.data["public_key"]
    assert first.startswith("ssh-ed25519 ")
    assert_status(member_client.get(reverse("agents:user-gitsshkey")), 200)
    assert member_client.get(reverse("agents:user-gitsshkey")).data["public_key"] == first
    assert GitSSHKey.objects.filter(user=member).count() == 1

    response = member_client.put(reverse("agents:user-gitsshkey"))
    assert_status(response, 200)
    assert response.data["public_key"].startswith("ssh-ed25519 ")
    assert response.data["public_key"] != first


def test_gitsshkey_private_key_is_a_valid_openssh_ed25519_key(member):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from agents.services.user_data import git_ssh_key_get_or_create, git_ssh_private_key

    key = git_ssh_key_get_or_create(user=member)
    private = serialization.load_ssh_private_key(git_ssh_private_key(key).encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert key.public_key.startswith(public.decode())


# --- External auth -----------------------------------------------------------------------------------


def test_only_admins_add_providers(admin_client, member_client):
    body = {"id": "github", "type": "github", "regex": r"^https://github\.com/"}
    assert_status(member_client.post(reverse("agents:external-auth-providers"), body, format="json"), 403)
    assert_status(admin_client.post(reverse("agents:external-auth-providers"), body, format="json"), 201)
    assert_status(admin_client.post(reverse("agents:external-auth-providers"), body, format="json"), 400)
    listed = member_client.get(reverse("agents:external-auth-providers"))
    assert page_results(listed) == [body]
    assert listed.json()["next"] is None


def test_provider_with_an_invalid_regex_is_a_400(admin_client):
    body = {"id": "broken", "type": "github", "regex": "(unclosed"}
    response = admin_client.post(reverse("agents:external-auth-providers"), body, format="json")
    assert_status(response, 400)
    assert "regex" in response.json()


def test_user_links_an_external_auth_provider(member_client, member):
    ExternalAuthProvider.objects.create(id="github", type="github", regex="github")
    url = reverse("agents:user-external-auth", args=["github"])
    response = member_client.put(url, {"access_token": "gho_first", "token_extra": {"a": 1}}, format="json")
    assert_status(response, 200)
    assert response.data == {"provider_id": "github", "linked": True}
    assert_status(member_client.put(url, {"access_token": "gho_second"}, format="json"), 200)
    assert ExternalAuthLink.objects.filter(user=member).count() == 1
    assert "gho_" not in str(list(AuditEvent.objects.values_list("details", flat=True)))


def test_linking_an_unknown_provider_is_a_404(member_client):
    response = member_client.put(
        reverse("agents:user-external-auth", args=["nope"]), {"access_token": "x"}, format="json"
    )
    assert_status(response, 404)


def test_linking_needs_an_access_token(member_client):
    ExternalAuthProvider.objects.create(id="github", type="github", regex="github")
    response = member_client.put(reverse("agents:user-external-auth", args=["github"]), {}, format="json")
    assert_status(response, 400)
    assert "access_token" in response.json()


def test_login_is_throttled_per_client_with_a_json_429(api_client, member):
    """Password guessing is slowed down; the refusal is JSON like every other API error."""
    url = reverse("agents:user-login")
    statuses = [
        api_client.post(url, {"username": member.username, "password": f"guess-{n}"}, format="json").status_code
        for n in range(11)
    ]
    assert statuses[:10] == [401] * 10
    response = api_client.post(url, {"username": member.username, "password": PASSWORD}, format="json")
    assert_status(response, 429)
    assert response.json()["detail"]
    assert response["Retry-After"]
