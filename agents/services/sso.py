"""Single sign-on: who a verified OpenID Connect sign-in is, which role it gives, and the audit of every attempt;
and the switch that turns password sign-in off.

The protocol (discovery, the code exchange, the ID token's checks) belongs to the web UI (ui/oidc.py); this module
only ever sees claims that passed it. A user is found by the (issuer, subject) pair alone, never by email or
username: those the provider's users may be able to choose, and matching on them would let one account take over
another.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.utils import timezone

from agents.models import ExternalIdentity
from agents.services.users import user_account_snapshot
from audit import actions
from audit.services import audit_record
from core.exceptions import NotPermitted
from core.roles import ADMIN_GROUP, AUDITOR_GROUP, ROLE_ADMIN, ROLE_AUDITOR, ROLE_MEMBER, user_role

METHOD = "oidc"
PASSWORD_LOGIN_OFF = "Password sign-in is turned off on this server: sign in through single sign-on."
# ASCII only: a username such as "аdmin" (Cyrillic а) would look like a local account's in every list and log.
_NOT_IN_USERNAME = re.compile(r"[^\w.@+-]", re.ASCII)
# Room for a "-99" suffix within Django's 150 characters.
_USERNAME_BASE_LENGTH = 140
_ROLE_GROUPS = {ROLE_ADMIN: ADMIN_GROUP, ROLE_AUDITOR: AUDITOR_GROUP}


@dataclass(frozen=True)
class SsoClaims:
    """What a verified sign-in says about the user: the ID token's issuer and subject, and the profile claims."""

    issuer: str
    subject: str
    groups: tuple[str, ...] = ()
    preferred_username: str = ""
    email: str = ""


@dataclass(frozen=True)
class SsoSignIn:
    user: object
    created: bool
    role: str


class SsoSignInRefused(Exception):
    """The provider vouched for the user, but coderauth will not sign them in (their account is deactivated)."""

    def __init__(self, reason: str, *, username: str):
        super().__init__(reason)
        self.reason = reason
        self.username = username


def sso_claims_from(*, issuer: str, claims: Mapping) -> SsoClaims:
    """The claims that matter, from a verified ID token (and UserInfo). The groups claim
    (CODERAUTH_OIDC_GROUPS_CLAIM) may be a list of strings or one string; anything else counts as no group."""
    groups = claims.get(settings.CODERAUTH_OIDC_GROUPS_CLAIM)
    if isinstance(groups, str):
        groups = [groups]
    if not isinstance(groups, list | tuple):
        groups = []

    def text(name: str) -> str:
        value = claims.get(name)
        return value if isinstance(value, str) else ""

    return SsoClaims(
        issuer=issuer,
        subject=str(claims["sub"]),
        groups=tuple(group for group in groups if isinstance(group, str)),
        preferred_username=text("preferred_username"),
        email=text("email"),
    )


def role_for_groups(groups) -> str:
    """The role the provider's groups give: admin wins over auditor; no listed group makes a member."""
    groups = set(groups)
    if groups & set(settings.CODERAUTH_OIDC_ADMIN_GROUPS):
        return ROLE_ADMIN
    if groups & set(settings.CODERAUTH_OIDC_AUDITOR_GROUPS):
        return ROLE_AUDITOR
    return ROLE_MEMBER


def sso_sign_in(*, claims: SsoClaims) -> SsoSignIn:
    """Sign in the user of (issuer, subject), creating them on their first sign-in, and give them exactly the role
    their groups map to, in one transaction with `user.created` or `user.updated` (a role change, before and after)
    and `user.login`. A deactivated user is refused (`SsoSignInRefused`), audited as `user.login_failed`."""
    try:
        try:
            with transaction.atomic():
                return _sign_in(claims)
        except IntegrityError:
            # The same identity's first sign-in twice at once (two tabs): the other one created the user; use it.
            with transaction.atomic():
                return _sign_in(claims)
    except SsoSignInRefused as refusal:
        sso_sign_in_failed_record(reason=refusal.reason, actor=refusal.username)
        raise


def _sign_in(claims: SsoClaims) -> SsoSignIn:
    now = timezone.now()
    role = role_for_groups(claims.groups)
    identity = ExternalIdentity.objects.select_for_update().filter(issuer=claims.issuer, subject=claims.subject).first()
    created = identity is None
    if created:
        user = _user_create(claims)
        _role_set(user, role)
        ExternalIdentity.objects.create(user=user, issuer=claims.issuer, subject=claims.subject, last_sign_in_at=now)
        _sso_audit_record(
            actions.USER_CREATED,
            user,
            claims,
            {
                "user_id": user.pk,
                "username": user.get_username(),
                "has_usable_password": user.has_usable_password(),
                "role": role,
                **user_account_snapshot(user_id=user.pk).privileges(),
            },
        )
    else:
        user = get_user_model().objects.select_for_update().get(pk=identity.user_id)
        if not user.is_active:
            raise SsoSignInRefused("inactive_user", username=user.get_username())
        _role_change(user, role, claims)
        identity.last_sign_in_at = now
        identity.save(update_fields=["last_sign_in_at"])
    _sso_audit_record(actions.USER_LOGIN, user, claims, {"role": role, "new_user": created})
    return SsoSignIn(user=user, created=created, role=role)


def _role_change(user, role: str, claims: SsoClaims) -> None:
    """Give an existing user exactly `role`, with a `user.updated` row (roles before and after) when it changes."""
    before_role = user_role(get_user_model().objects.get(pk=user.pk))
    before = user_account_snapshot(user_id=user.pk)
    _role_set(user, role)
    after = user_account_snapshot(user_id=user.pk)
    if before == after:
        return
    changed = [field for field in ("is_superuser", "groups") if getattr(before, field) != getattr(after, field)]
    before_privileges, after_privileges = before.privileges(), after.privileges()
    _sso_audit_record(
        actions.USER_UPDATED,
        user,
        claims,
        {
            "user_id": user.pk,
            "username": user.get_username(),
            "changed": changed,
            "password_changed": False,
            "from": {"role": before_role, **{field: before_privileges[field] for field in changed}},
            "to": {"role": role, **{field: after_privileges[field] for field in changed}},
        },
    )


def _sso_audit_record(action: str, user, claims: SsoClaims, details: dict[str, Any]) -> None:
    """An audit row acted by the signing-in user, naming the provider and the subject that proved who they are."""
    audit_record(
        action=action,
        actor_type="user",
        actor=user.get_username(),
        details={"method": METHOD, "issuer": claims.issuer, "subject": claims.subject, **details},
    )


def _role_set(user, role: str) -> None:
    """The role groups as `role` says, other groups untouched. A superuser flag is cleared whatever the role: it
    would keep an admin the provider no longer vouches for, so after an SSO sign-in the mapped role is the only one."""
    wanted = _ROLE_GROUPS.get(role)
    unwanted = [name for name in _ROLE_GROUPS.values() if name != wanted]
    user.groups.remove(*Group.objects.filter(name__in=unwanted))
    if wanted:
        user.groups.add(Group.objects.get(name=wanted))
    if user.is_superuser:
        user.is_superuser = False
        user.save(update_fields=["is_superuser"])


def _user_create(claims: SsoClaims):
    """A new user named after the provider's preferred_username, else email, else a digest of the subject; a name
    taken already (in any letter case, local accounts included) gets a numbered suffix. No usable password."""
    for username in _username_candidates(claims):
        if get_user_model().objects.filter(username__iexact=username).exists():
            continue
        try:
            with transaction.atomic():
                return get_user_model().objects.create_user(username=username, email=claims.email[:254])
        except IntegrityError:
            continue  # taken meanwhile by another first sign-in
    raise NotPermitted("No free username is left for this account; ask an admin to free one.")


def _username_candidates(claims: SsoClaims):
    digest_name = "sso-" + hashlib.sha256(f"{claims.issuer}\n{claims.subject}".encode()).hexdigest()[:16]
    base = ""
    for wanted in (claims.preferred_username, claims.email):
        base = _NOT_IN_USERNAME.sub("", unicodedata.normalize("NFKC", wanted))[:_USERNAME_BASE_LENGTH]
        if base:
            break
    for name in (base, digest_name) if base else (digest_name,):
        yield name
        yield from (f"{name}-{number}" for number in range(2, 100))


def sso_sign_in_failed_record(*, reason: str, actor: str = "", provider_error: str = "") -> None:
    """`user.login_failed` for a single sign-on that did not complete: the reason code and the issuer, never a code
    or a token. `actor` is the subject when the provider had vouched for one."""
    details = {"method": METHOD, "issuer": settings.CODERAUTH_OIDC_ISSUER, "reason": reason}
    if provider_error:
        details["provider_error"] = provider_error
    with transaction.atomic():
        audit_record(action=actions.USER_LOGIN_FAILED, actor_type="user", actor=actor, details=details)


def password_login_check(*, username: str, method: str) -> None:
    """CODERAUTH_PASSWORD_LOGIN, asked by every password sign-in (the web form, /admin/login/, the API login).
    Off: the attempt is audited as `user.login_failed` (reason `password_login_off`) and refused (NotPermitted)."""
    if settings.CODERAUTH_PASSWORD_LOGIN:
        return
    with transaction.atomic():
        audit_record(
            action=actions.USER_LOGIN_FAILED,
            actor_type="user",
            actor=username[:150],
            details={"method": method, "reason": "password_login_off"},
        )
    raise NotPermitted(PASSWORD_LOGIN_OFF)
