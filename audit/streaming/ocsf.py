"""Audit events as OCSF 1.3.0 events: the one mapping from an action to a class, an activity, a status and a severity.

Sign-ins are Authentication (3002); tokens, passwords, keys and accounts are Account Change (3001); an agent's reads
and refusals are API Activity (6003); the decisions on access requests are User Access Management (3005); every
other change (workspaces, agents, modes, purges, archives) is Entity Management (3004). An action this table does not
know yet falls into one of them by its prefix, so a new action never stops the stream. docs/audit.md's
"OCSF mapping" table is this module in words.

Each event keeps the whole audit row, as the chain hashes it, in `unmapped.coderauth`: a receiver can deduplicate
on `metadata.uid` (the event id) and verify the chain from OCSF events as from native ones.
"""

from __future__ import annotations

import functools
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from audit import actions, chain

OCSF_VERSION = "1.3.0"
PRODUCT_NAME = "coderauth"

IAM = (3, "Identity & Access Management")
APPLICATION = (6, "Application Activity")

INFORMATIONAL, LOW, MEDIUM, HIGH = 1, 2, 3, 4
SEVERITIES = {INFORMATIONAL: "Informational", LOW: "Low", MEDIUM: "Medium", HIGH: "High"}
SUCCESS, FAILURE = 1, 2
STATUSES = {SUCCESS: "Success", FAILURE: "Failure"}
OTHER = 99

# OCSF user.type_id
USER_TYPE_USER, USER_TYPE_SYSTEM, USER_TYPE_OTHER = 1, 3, 99
# OCSF authentication.auth_protocol_id, by the `method` a sign-in records.
AUTH_PROTOCOLS = {"oidc": (4, "OpenID")}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class OcsfClass:
    uid: int
    name: str
    category: tuple[int, str]
    activities: dict[int, str]
    # Classes whose `actor` comes with OCSF's host profile rather than with the class itself.
    profiles: tuple[str, ...] = ()


AUTHENTICATION = OcsfClass(3002, "Authentication", IAM, {1: "Logon", OTHER: "Other"})
ACCOUNT_CHANGE = OcsfClass(
    3001, "Account Change", IAM, {1: "Create", 3: "Password Change", 4: "Password Reset", 6: "Delete", OTHER: "Other"}
)
ENTITY_MANAGEMENT = OcsfClass(
    3004, "Entity Management", IAM, {1: "Create", 3: "Update", 4: "Delete", OTHER: "Other"}, profiles=("host",)
)
USER_ACCESS = OcsfClass(
    3005,
    "User Access Management",
    IAM,
    {1: "Assign Privileges", 2: "Revoke Privileges", OTHER: "Other"},
    profiles=("host",),
)
API_ACTIVITY = OcsfClass(
    6003, "API Activity", APPLICATION, {1: "Create", 2: "Read", 3: "Update", 4: "Delete", OTHER: "Other"}
)
CLASSES = (AUTHENTICATION, ACCOUNT_CHANGE, ENTITY_MANAGEMENT, USER_ACCESS, API_ACTIVITY)

# An API Activity's activity by the refused request's HTTP method.
HTTP_ACTIVITIES = {"GET": 2, "HEAD": 2, "POST": 1, "PUT": 3, "PATCH": 3, "DELETE": 4}
# Password changes made for the user by someone else (an admin, the operator's command) are resets.
PASSWORD_RESET_METHODS = ("admin", "changepassword")


@dataclass(frozen=True)
class Mapping:
    """One action's OCSF class and activity (a number, or a function of the row's fields), status and severity."""

    ocsf_class: OcsfClass
    activity: int | Callable[[dict[str, Any]], int] = OTHER
    failure: bool = False
    severity_id: int = INFORMATIONAL

    def activity_id(self, fields: dict[str, Any]) -> int:
        return self.activity(fields) if callable(self.activity) else self.activity


def _password_activity(fields: dict[str, Any]) -> int:
    return 4 if fields["details"].get("method") in PASSWORD_RESET_METHODS else 3


def _http_activity(fields: dict[str, Any]) -> int:
    return HTTP_ACTIVITIES.get(str(fields["details"].get("method", "")).upper(), OTHER)


MAPPINGS: dict[str, Mapping] = {
    # Sign-ins, whatever the method (password, web, oidc, break_glass): details.method says which.
    actions.USER_LOGIN: Mapping(AUTHENTICATION, 1),
    actions.USER_LOGIN_FAILED: Mapping(AUTHENTICATION, 1, failure=True, severity_id=MEDIUM),
    # Accounts and their credentials.
    actions.USER_CREATED: Mapping(ACCOUNT_CHANGE, 1),
    actions.USER_DELETED: Mapping(ACCOUNT_CHANGE, 6),
    actions.USER_UPDATED: Mapping(ACCOUNT_CHANGE),
    actions.USER_PASSWORD_CHANGED: Mapping(ACCOUNT_CHANGE, _password_activity, severity_id=LOW),
    actions.USER_GITSSHKEY_CREATED: Mapping(ACCOUNT_CHANGE),
    actions.USER_GITSSHKEY_REGENERATED: Mapping(ACCOUNT_CHANGE),
    actions.USER_EXTERNAL_AUTH_LINKED: Mapping(ACCOUNT_CHANGE),
    actions.USER_TOKEN_ISSUED: Mapping(ACCOUNT_CHANGE),
    actions.USER_TOKEN_REVOKED: Mapping(ACCOUNT_CHANGE),
    actions.USER_TOKEN_PURGED: Mapping(ACCOUNT_CHANGE),
    actions.AGENT_TOKEN_ISSUED: Mapping(ACCOUNT_CHANGE),
    actions.AGENT_TOKEN_REVOKED: Mapping(ACCOUNT_CHANGE),
    actions.AGENT_TOKEN_ROTATED: Mapping(ACCOUNT_CHANGE),
    actions.AGENT_TOKEN_PURGED: Mapping(ACCOUNT_CHANGE),
    # A rotated-out token presented again: the lineage is revoked, and someone may hold a stolen token.
    actions.AGENT_TOKEN_REUSE_DETECTED: Mapping(ACCOUNT_CHANGE, failure=True, severity_id=HIGH),
    # What agents did through the API, and what they were refused.
    actions.AGENT_USER_DATA_ACCESSED: Mapping(API_ACTIVITY, 2),
    actions.AGENT_ACCESS_DENIED: Mapping(API_ACTIVITY, _http_activity, failure=True, severity_id=MEDIUM),
    actions.AGENT_TOKEN_REJECTED: Mapping(API_ACTIVITY, failure=True, severity_id=MEDIUM),
    # Elevation: an agent asks for scopes, a person decides, the grant ends.
    actions.ACCESS_REQUEST_CREATED: Mapping(USER_ACCESS),
    actions.ACCESS_REQUEST_APPROVED: Mapping(USER_ACCESS, 1, severity_id=LOW),
    actions.ACCESS_REQUEST_DENIED: Mapping(USER_ACCESS, failure=True),
    actions.ACCESS_REQUEST_REVOKED: Mapping(USER_ACCESS, 2),
    actions.ACCESS_REQUEST_EXPIRED: Mapping(USER_ACCESS, 2),
    # Everything else coderauth manages.
    actions.WORKSPACE_CREATED: Mapping(ENTITY_MANAGEMENT, 1),
    actions.WORKSPACE_MODE_CHANGED: Mapping(ENTITY_MANAGEMENT, 3),
    actions.AGENT_CREATED: Mapping(ENTITY_MANAGEMENT, 1),
    actions.AGENT_MODE_CHANGED: Mapping(ENTITY_MANAGEMENT, 3),
    actions.PERMISSION_MODE_CREATED: Mapping(ENTITY_MANAGEMENT, 1),
    actions.PERMISSION_MODE_UPDATED: Mapping(ENTITY_MANAGEMENT, 3),
    actions.PERMISSION_MODE_DELETED: Mapping(ENTITY_MANAGEMENT, 4),
    actions.EXTERNAL_AUTH_PROVIDER_CREATED: Mapping(ENTITY_MANAGEMENT, 1),
    actions.USER_DATA_REENCRYPTED: Mapping(ENTITY_MANAGEMENT, 3),
    actions.AGENT_LOG_PURGED: Mapping(ENTITY_MANAGEMENT, 4),
    actions.APP_STATUS_PURGED: Mapping(ENTITY_MANAGEMENT, 4),
    actions.AUDIT_ARCHIVED: Mapping(ENTITY_MANAGEMENT, 4),
}


def action_mapping(action: str) -> Mapping:
    """The action's mapping; one not in MAPPINGS by the same rules the table follows."""
    if action in MAPPINGS:
        return MAPPINGS[action]
    noun, _, verb = action.partition(".")
    if noun == "user" and verb.startswith("login"):
        failed = "fail" in verb
        return Mapping(AUTHENTICATION, 1, failure=failed, severity_id=MEDIUM if failed else INFORMATIONAL)
    if noun.endswith("_token") or verb.startswith("password"):
        return Mapping(ACCOUNT_CHANGE)
    if noun == "agent":
        return Mapping(API_ACTIVITY, failure="denied" in verb or "rejected" in verb)
    if noun == "access_request":
        return Mapping(USER_ACCESS)
    return Mapping(ENTITY_MANAGEMENT)


def severity_id(action: str) -> int:
    return action_mapping(action).severity_id


def _epoch_milliseconds(value: str) -> int:
    return (datetime.fromisoformat(value.replace("Z", "+00:00")) - _EPOCH) // timedelta(milliseconds=1)


@functools.cache
def product_version() -> str:
    """The version in pyproject.toml, read once."""
    try:
        with open(settings.BASE_DIR / "pyproject.toml", "rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _user(fields: dict[str, Any]) -> dict[str, Any]:
    """The row's actor as an OCSF user: a person by username, an agent by id, or coderauth itself."""
    actor = fields["actor"]
    if fields["actor_type"] == "agent":
        return {"uid": actor or fields["agent_id"] or "unknown", "type": "Agent", "type_id": USER_TYPE_OTHER}
    if fields["actor_type"] == "system":
        return {"name": actor or "system", "type": "System", "type_id": USER_TYPE_SYSTEM}
    return {"name": actor or "unknown", "type": "User", "type_id": USER_TYPE_USER}


def _agent(fields: dict[str, Any]) -> dict[str, Any]:
    return {"uid": fields["agent_id"] or "unknown", "type": "Agent", "type_id": USER_TYPE_OTHER}


def _subject(ocsf_class: OcsfClass, fields: dict[str, Any]) -> dict[str, Any]:
    """The attributes each class requires besides the common ones: whom or what the event is about."""
    details = fields["details"]
    noun = fields["action"].partition(".")[0]
    if ocsf_class is AUTHENTICATION:
        # The service signed in to: the class asks for it (or for the destination endpoint).
        subject: dict[str, Any] = {"user": _user(fields), "service": {"name": PRODUCT_NAME}}
        method = _text(details.get("method"))
        if method:
            protocol_id, protocol = AUTH_PROTOCOLS.get(method, (OTHER, method))
            subject.update(auth_protocol_id=protocol_id, auth_protocol=protocol)
        return subject
    if ocsf_class is ACCOUNT_CHANGE:
        # A user's own account, or the agent whose token it is.
        if noun.startswith("agent"):
            return {"user": _agent(fields)}
        owner = _text(details.get("user")) or _text(details.get("username"))
        return {"user": {"name": owner, "type": "User", "type_id": USER_TYPE_USER} if owner else _user(fields)}
    if ocsf_class is USER_ACCESS:
        scopes = details.get("scopes")
        privileges = [str(scope) for scope in scopes] if isinstance(scopes, list) else []
        return {"user": _agent(fields), "privileges": privileges}
    if ocsf_class is API_ACTIVITY:
        route = _text(details.get("route"))
        method = _text(details.get("method"))
        api: dict[str, Any] = {
            "operation": f"{method} {route}" if method and route else route or fields["action"],
            "service": {"name": "coderauth agent API"},
        }
        if fields["request_id"]:
            api["request"] = {"uid": fields["request_id"]}
        resources = [
            {"uid": value, "type": kind}
            for value, kind in ((fields["workspace_id"], "Workspace"), (fields["agent_id"], "Agent"))
            if value
        ]
        return {"api": api, **({"resources": resources} if resources else {})}
    uid = fields["agent_id"] if noun == "agent" else fields["workspace_id"] if noun == "workspace" else None
    name = _text(details.get("name")) or _text(details.get("mode")) or _text(details.get("provider"))
    entity: dict[str, Any] = {"type": noun.replace("_", " ").capitalize()}
    if uid:
        entity["uid"] = uid
    entity["name"] = name or noun
    return {"entity": entity}


def ocsf_event(row: dict[str, Any]) -> dict[str, Any]:
    """One audit row (chain.FIELDS keys, as the ORM or an export reads them) as an OCSF event."""
    fields = chain.canonical_fields(row)
    action = fields["action"]
    mapping = action_mapping(action)
    ocsf_class = mapping.ocsf_class
    activity_id = mapping.activity_id(fields)
    activity_name = ocsf_class.activities[activity_id] if activity_id != OTHER else action
    status_id = FAILURE if mapping.failure else SUCCESS
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": {"name": PRODUCT_NAME, "vendor_name": PRODUCT_NAME, "version": product_version()},
        "uid": str(fields["id"]),
        "log_name": "audit",
        "original_time": fields["time"],
    }
    if ocsf_class.profiles:
        metadata["profiles"] = list(ocsf_class.profiles)
    if fields["request_id"]:
        metadata["correlation_uid"] = fields["request_id"]
    event: dict[str, Any] = {
        "category_uid": ocsf_class.category[0],
        "category_name": ocsf_class.category[1],
        "class_uid": ocsf_class.uid,
        "class_name": ocsf_class.name,
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": ocsf_class.uid * 100 + activity_id,
        "type_name": f"{ocsf_class.name}: {activity_name}",
        "severity_id": mapping.severity_id,
        "severity": SEVERITIES[mapping.severity_id],
        "status_id": status_id,
        "status": STATUSES[status_id],
        "time": _epoch_milliseconds(fields["time"]),
        "message": f"{action} by {fields['actor_type']} {fields['actor'] or '-'}",
        "metadata": metadata,
        "actor": {"user": _user(fields)},
        **_subject(ocsf_class, fields),
    }
    reason = _text(fields["details"].get("reason"))
    if mapping.failure and reason:
        event["status_detail"] = reason
    if fields["ip"]:
        event["src_endpoint"] = {"ip": fields["ip"]}
    elif ocsf_class is API_ACTIVITY:
        event["src_endpoint"] = {"name": "unknown"}  # required by the class; a row written outside a request
    if fields["user_agent"]:
        event["http_request"] = {"user_agent": fields["user_agent"]}
    event["unmapped"] = {"coderauth": {name: fields[name] for name in chain.FIELDS if name in fields}}
    return event


def ocsf_line(row: dict[str, Any]) -> str:
    """The event as one line of JSON (ASCII, no newline): a syslog message's MSG, an HTTPS batch's or export's line."""
    return json.dumps(ocsf_event(row), separators=(",", ":"), ensure_ascii=True)
