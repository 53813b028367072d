"""User data: git SSH keys and external-auth links, encrypted at rest, and agents' reads of them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import re2
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from agents.models import ExternalAuthLink, ExternalAuthProvider, GitSSHKey
from agents.services import locks
from audit import actions
from audit.services import audit_record
from core import crypto
from core.exceptions import InvalidInput, ObjectNotFound
from policies import rules
from policies.principals import AgentPrincipal
from policies.scopes import AGENT_EXTERNAL_AUTH, AGENT_GITSSHKEY


# The associated data that binds a ciphertext to its row and column (core/crypto.py); the key rotation
# (agents/services/keys.py) re-encrypts each value under the same one.
def git_ssh_key_context(user_id: int) -> str:
    return f"gitsshkey:{user_id}"


def external_auth_link_context(user_id: int, provider_id: str, column: str) -> str:
    """`column`: "token" (the access token) or "extra" (token_extra)."""
    return f"external-auth:{user_id}:{provider_id}:{column}"


def _new_key_pair(comment: str) -> tuple[str, str]:
    """An Ed25519 key pair in OpenSSH format (what `ssh-keygen -t ed25519` writes)."""
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = private_key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return f"{public.decode()} {comment}", private_pem


def git_ssh_key_get_or_create(*, user, principal: AgentPrincipal | None = None) -> GitSSHKey:
    """The user's key pair, generated on first need. `principal`: the agent whose read needs it, the audit actor."""
    key = GitSSHKey.objects.filter(user=user).first()
    if key is not None:
        return key
    with transaction.atomic():
        # Serialised with regeneration and other first reads; a fresh look after the lock finds a key one of
        # them made meanwhile (an insert racing theirs broke the one-key-per-user constraint: a 500).
        locks.user_lock(user.pk)
        key = GitSSHKey.objects.filter(user=user).first()
        if key is not None:
            return key
        return _git_ssh_key_write(user=user, action=actions.USER_GITSSHKEY_CREATED, principal=principal)


def git_ssh_key_regenerate(*, user) -> GitSSHKey:
    with transaction.atomic():
        # One regeneration of a user's key at a time: two at once both deleted the old key and the second
        # insert broke the one-key-per-user constraint (a 500).
        locks.user_lock(user.pk)
        GitSSHKey.objects.filter(user=user).delete()
        return _git_ssh_key_write(user=user, action=actions.USER_GITSSHKEY_REGENERATED)


def _git_ssh_key_write(*, user, action: str, principal: AgentPrincipal | None = None) -> GitSSHKey:
    public_key, private_key = _new_key_pair(comment=f"{user.username}@coderauth")
    key = GitSSHKey.objects.create(
        user=user,
        public_key=public_key,
        private_key_encrypted=crypto.encrypt(private_key, context=git_ssh_key_context(user.pk)),
    )
    if principal is None:
        audit_record(action=action, actor_type="user", actor=user.username, details={"public_key": public_key})
    else:  # an agent's read generated the owner's key: the agent is who did it, not the owner
        audit_record(
            action=action,
            actor_type="agent",
            actor=str(principal.agent_id),
            workspace_id=principal.workspace_id,
            agent_id=principal.agent_id,
            details={"public_key": public_key, "owner": user.username, "token_id": str(principal.token_id)},
        )
    return key


def git_ssh_private_key(key: GitSSHKey) -> str:
    return crypto.decrypt(key.private_key_encrypted, context=git_ssh_key_context(key.user_id))


# Provider regexes come from admins and are matched against URLs that agents send, so they run on RE2:
# matching is linear in the URL's length whatever the pattern (no catastrophic backtracking).
URL_MAX_LENGTH = 2048
TOKEN_EXTRA_MAX_DEPTH = 8
TOKEN_EXTRA_MAX_BYTES = 8192


def _provider_pattern(regex: str):
    """The compiled RE2 pattern, or None when RE2 cannot compile it (backreferences, lookaround, bad syntax)."""
    options = re2.Options()
    options.log_errors = False  # a refused pattern is a 400, not a line on stderr
    try:
        return re2.compile(regex, options=options)
    except (re2.error, UnicodeEncodeError):
        return None


def token_extra_problem(value) -> str | None:
    """Why `token_extra` cannot be stored, or None: a JSON object whose strings and keys are strict UTF-8
    without NUL, nested at most TOKEN_EXTRA_MAX_DEPTH deep and at most TOKEN_EXTRA_MAX_BYTES serialized.
    Anything else would be stored, then fail every agent read of the link."""
    if not isinstance(value, dict):
        return "Must be a JSON object."
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > TOKEN_EXTRA_MAX_DEPTH:
            return f"Nested deeper than {TOKEN_EXTRA_MAX_DEPTH} levels."
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return "Object keys must be strings."
                if _bad_text(key):
                    return "Keys must not contain NUL or unpaired surrogate characters."
                pending.append((child, depth + 1))
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            if _bad_text(item):
                return "Strings must not contain NUL or unpaired surrogate characters."
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "Numbers must be finite."
        elif item is not None and not isinstance(item, (bool, int)):
            return "Values must be JSON values."
    try:
        size = len(_strict_json(value))
    except ValueError:  # an integer too long to print, for one
        return "Values must be JSON values."
    if size > TOKEN_EXTRA_MAX_BYTES:
        return f"At most {TOKEN_EXTRA_MAX_BYTES} bytes as JSON."
    return None


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _strict_json(value) -> bytes:
    """What the API renders: UTF-8 JSON. Raises ValueError (UnicodeEncodeError included) where rendering would."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def external_auth_provider_create(*, actor, provider_id: str, type: str, regex: str) -> ExternalAuthProvider:
    rules.require_admin(actor, "Only admins may add external-auth providers.")
    if _provider_pattern(regex) is None:
        raise InvalidInput(
            "Invalid regular expression: it must be RE2 syntax (no backreferences or lookaround).", field="regex"
        )
    try:
        with transaction.atomic():
            provider = ExternalAuthProvider.objects.create(id=provider_id, type=type, regex=regex)
            audit_record(
                action=actions.EXTERNAL_AUTH_PROVIDER_CREATED,
                actor_type="user",
                actor=actor.username,
                details={"provider": provider_id, "type": type, "regex": regex},
            )
    except IntegrityError:
        raise InvalidInput(f"Provider '{provider_id}' already exists.", field="id")
    return provider


def external_auth_link_set(
    *, user, provider: ExternalAuthProvider, access_token: str, token_extra: dict
) -> ExternalAuthLink:
    """Store what an OAuth flow would store for this user and provider, encrypted."""
    problem = token_extra_problem(token_extra or {})
    if problem is not None:
        raise InvalidInput(problem, field="token_extra")
    with transaction.atomic():
        link, created = ExternalAuthLink.objects.select_for_update().get_or_create(
            user=user,
            provider=provider,
            defaults={"access_token_encrypted": b"", "token_extra_encrypted": b""},
        )
        link.access_token_encrypted = crypto.encrypt(
            access_token, context=external_auth_link_context(user.pk, provider.id, "token")
        )
        link.token_extra_encrypted = crypto.encrypt(
            json.dumps(token_extra or {}), context=external_auth_link_context(user.pk, provider.id, "extra")
        )
        link.save(update_fields=["access_token_encrypted", "token_extra_encrypted", "updated_at"])
        audit_record(
            action=actions.USER_EXTERNAL_AUTH_LINKED,
            actor_type="user",
            actor=user.username,
            details={"provider": provider.id, "created": created},
        )
    return link


@dataclass(frozen=True)
class ExternalAuthSecret:
    provider_id: str
    type: str
    access_token: str
    token_extra: dict


def _record_user_data_access(principal: AgentPrincipal, *, route: str, scope: str, details: dict) -> None:
    """A use the mode allows keeps the row's usual keys; a use only the live grant allows adds `elevated` and
    the grant's id, so an auditor finds every elevated read by key without rows of other reads changing shape."""
    if principal.is_elevated(scope):
        details = {**details, "elevated": True, "access_request_id": str(principal.grant_id)}
    audit_record(
        action=actions.AGENT_USER_DATA_ACCESSED,
        actor_type="agent",
        actor=str(principal.agent_id),
        workspace_id=principal.workspace_id,
        agent_id=principal.agent_id,
        details={"route": route, "token_id": str(principal.token_id), "mode": principal.mode_name, **details},
    )


def agent_git_ssh_key_read(*, principal: AgentPrincipal) -> tuple[str, str]:
    """The owner's key pair for an agent. The audit row commits with the read or the read fails."""
    owner = get_user_model().objects.get(pk=principal.owner_id)
    key = git_ssh_key_get_or_create(user=owner, principal=principal)
    with transaction.atomic():
        _record_user_data_access(principal, route="gitsshkey", scope=AGENT_GITSSHKEY, details={})
        return key.public_key, git_ssh_private_key(key)


def _linked_provider_matching(*, owner_id: int, url: str) -> ExternalAuthProvider | None:
    """The first provider by id whose regex matches the URL and that the owner has linked.

    A stored regex RE2 cannot compile (one saved before RE2 was required) never matches."""
    linked = ExternalAuthProvider.objects.filter(links__user_id=owner_id).order_by("id")
    for provider in linked:
        pattern = _provider_pattern(provider.regex)
        if pattern is not None and pattern.search(url):
            return provider
    return None


def agent_external_auth_read(
    *,
    principal: AgentPrincipal,
    route: str,
    provider_id: str | None = None,
    url: str | None = None,
    url_field: str = "url",
) -> ExternalAuthSecret:
    """The owner's external-auth secret for an agent, by provider id or by URL match.

    Everything that can fail (decryption, the JSON the API will render) runs before the access is
    audited, so a failed read leaves no `agent.user_data_accessed` row."""
    if provider_id is not None:
        provider = ExternalAuthProvider.objects.filter(pk=provider_id, links__user_id=principal.owner_id).first()
    else:
        url = url or ""
        if len(url) > URL_MAX_LENGTH or _bad_text(url):
            raise InvalidInput(f"At most {URL_MAX_LENGTH} characters of valid text, without NUL.", field=url_field)
        provider = _linked_provider_matching(owner_id=principal.owner_id, url=url)
    if provider is None:
        raise ObjectNotFound("The workspace owner has no external-auth link for that provider or URL.")
    link = ExternalAuthLink.objects.get(user_id=principal.owner_id, provider=provider)
    secret = ExternalAuthSecret(
        provider_id=provider.id,
        type=provider.type,
        access_token=crypto.decrypt(
            link.access_token_encrypted, context=external_auth_link_context(principal.owner_id, provider.id, "token")
        ),
        token_extra=json.loads(
            crypto.decrypt(
                link.token_extra_encrypted, context=external_auth_link_context(principal.owner_id, provider.id, "extra")
            )
        ),
    )
    try:
        _strict_json({"access_token": secret.access_token, "token_extra": secret.token_extra, "type": secret.type})
    except ValueError:
        # Stored before token_extra was validated; to the agent it is as good as unlinked: the owner re-links.
        raise ObjectNotFound("The workspace owner's external-auth link for that provider is unusable; re-link it.")
    with transaction.atomic():
        _record_user_data_access(principal, route=route, scope=AGENT_EXTERNAL_AUTH, details={"provider": provider.id})
    return secret
