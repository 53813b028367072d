"""Every audit action name, in one place. audit_record refuses a name that is not listed here, so the
catalogue cannot drift from what is recorded; the audit log's filter offers exactly these."""

from __future__ import annotations

ACCESS_REQUEST_APPROVED = "access_request.approved"
ACCESS_REQUEST_CREATED = "access_request.created"
ACCESS_REQUEST_DENIED = "access_request.denied"
ACCESS_REQUEST_EXPIRED = "access_request.expired"
ACCESS_REQUEST_REVOKED = "access_request.revoked"
AGENT_ACCESS_DENIED = "agent.access_denied"
AGENT_CREATED = "agent.created"
AGENT_MODE_CHANGED = "agent.mode_changed"
AGENT_USER_DATA_ACCESSED = "agent.user_data_accessed"
AGENT_LOG_PURGED = "agent_log.purged"
AGENT_TOKEN_ISSUED = "agent_token.issued"
AGENT_TOKEN_PURGED = "agent_token.purged"
AGENT_TOKEN_REJECTED = "agent_token.rejected"
AGENT_TOKEN_REUSE_DETECTED = "agent_token.reuse_detected"
AGENT_TOKEN_REVOKED = "agent_token.revoked"
AGENT_TOKEN_ROTATED = "agent_token.rotated"
APP_STATUS_PURGED = "app_status.purged"
AUDIT_ARCHIVED = "audit.archived"
EXTERNAL_AUTH_PROVIDER_CREATED = "external_auth_provider.created"
PERMISSION_MODE_CREATED = "permission_mode.created"
PERMISSION_MODE_DELETED = "permission_mode.deleted"
PERMISSION_MODE_UPDATED = "permission_mode.updated"
USER_CREATED = "user.created"
USER_DELETED = "user.deleted"
USER_EXTERNAL_AUTH_LINKED = "user.external_auth_linked"
USER_GITSSHKEY_CREATED = "user.gitsshkey_created"
USER_GITSSHKEY_REGENERATED = "user.gitsshkey_regenerated"
USER_LOGIN = "user.login"
USER_LOGIN_FAILED = "user.login_failed"
USER_PASSWORD_CHANGED = "user.password_changed"
USER_UPDATED = "user.updated"
USER_DATA_REENCRYPTED = "user_data.reencrypted"
USER_TOKEN_ISSUED = "user_token.issued"
USER_TOKEN_PURGED = "user_token.purged"
USER_TOKEN_REVOKED = "user_token.revoked"
WORKSPACE_CREATED = "workspace.created"
WORKSPACE_MODE_CHANGED = "workspace.mode_changed"

# Sorted, for the audit log's filter.
ALL: tuple[str, ...] = tuple(
    sorted(value for name, value in dict(globals()).items() if name.isupper() and isinstance(value, str))
)
