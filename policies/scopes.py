"""Agent scopes and the built-in permission modes (docs/concepts.md)."""

from __future__ import annotations

AGENT_CONNECT = "agent:connect"
AGENT_REPORT = "agent:report"
AGENT_GITSSHKEY = "agent:gitsshkey"
AGENT_EXTERNAL_AUTH = "agent:external-auth"

ALL_SCOPES: tuple[str, ...] = (AGENT_CONNECT, AGENT_REPORT, AGENT_GITSSHKEY, AGENT_EXTERNAL_AUTH)
USER_DATA_SCOPES: frozenset[str] = frozenset({AGENT_GITSSHKEY, AGENT_EXTERNAL_AUTH})

SCOPE_DESCRIPTIONS: dict[str, str] = {
    AGENT_CONNECT: "Connect and read the agent's own manifest.",
    AGENT_REPORT: "Report app status and logs.",
    AGENT_GITSSHKEY: "Read the owner's git SSH key pair (user data).",
    AGENT_EXTERNAL_AUTH: "Read the owner's external-auth (OAuth) tokens (user data).",
}

# Declared by agent routes that any valid agent token may call (minting a child token);
# the view then checks the scopes it is asked for itself.
ANY_VALID_AGENT_TOKEN = "agent:any-valid-token"

MODE_DEFAULT = "default"
MODE_NO_USER_DATA = "no-user-data"
BUILTIN_MODES: dict[str, tuple[str, tuple[str, ...]]] = {
    MODE_DEFAULT: ("Every agent capability, including the owner's git SSH key and external auth.", ALL_SCOPES),
    MODE_NO_USER_DATA: ("Connect and report status only; user-data routes are refused.", (AGENT_CONNECT, AGENT_REPORT)),
}
# Coder's names (terraform coder_agent.api_key_scope), accepted on input only.
MODE_ALIASES: dict[str, str] = {"all": MODE_DEFAULT, "no_user_data": MODE_NO_USER_DATA}


def canonical_mode_name(name: str) -> str:
    return MODE_ALIASES.get(name, name)


def ordered(scopes) -> list[str]:
    """Scopes in the canonical order of ALL_SCOPES, for stable output."""
    wanted = set(scopes)
    return [scope for scope in ALL_SCOPES if scope in wanted]
