"""The audit log replayed: the state each event says it changed, checked against the state before it.

The audit chain's lock is held until its transaction commits, so event ids are commit order. Replaying the
events of a race in id order, from a snapshot taken before it, must find every event consistent with the
state left by the ones before it (a serial history), and end at what the database holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.models import AgentToken, Workspace, WorkspaceAgent
from audit import actions
from audit.models import AuditEvent
from policies.models import PermissionMode


@dataclass
class ModeHistory:
    """Workspaces' modes, agents' overrides, the modes' scopes and the agent tokens' scopes, event by event."""

    start_id: int
    workspace_modes: dict[str, str]
    agent_overrides: dict[str, str | None]
    agent_workspaces: dict[str, str]
    mode_scopes: dict[str, frozenset[str]]
    token_scopes: dict[str, frozenset[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    replayed: int = 0

    @classmethod
    def snapshot(cls) -> ModeHistory:
        """The state now, and the audit position it corresponds to (take it while nothing else writes)."""
        last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        return cls(
            start_id=last,
            workspace_modes={str(pk): mode for pk, mode in Workspace.objects.values_list("pk", "permission_mode")},
            agent_overrides={str(pk): mode for pk, mode in WorkspaceAgent.objects.values_list("pk", "permission_mode")},
            agent_workspaces={str(pk): str(ws) for pk, ws in WorkspaceAgent.objects.values_list("pk", "workspace_id")},
            mode_scopes={
                name: frozenset(scopes) for name, scopes in PermissionMode.objects.values_list("name", "scopes")
            },
            token_scopes={str(pk): frozenset(scopes) for pk, scopes in AgentToken.objects.values_list("pk", "scopes")},
        )

    def effective(self, agent_id: str) -> str:
        return self.agent_overrides[agent_id] or self.workspace_modes[self.agent_workspaces[agent_id]]

    def _in_use(self, mode: str) -> bool:
        return mode in self.workspace_modes.values() or mode in self.agent_overrides.values()

    def _problem(self, event: AuditEvent, text: str) -> None:
        self.problems.append(f"event {event.id} {event.action} [{event.request_id}]: {text}")

    def replay(self) -> ModeHistory:
        for event in AuditEvent.objects.filter(id__gt=self.start_id).order_by("id").iterator():
            self.replayed += 1
            self.apply(event)
        return self

    def apply(self, event: AuditEvent) -> None:
        details = event.details
        if event.action == actions.WORKSPACE_MODE_CHANGED:
            workspace = str(event.workspace_id)
            if details["from"] != self.workspace_modes[workspace]:
                self._problem(event, f"from {details['from']}, but the workspace had {self.workspace_modes[workspace]}")
            if details["to"] not in self.mode_scopes:
                self._problem(event, f"to {details['to']}, a mode that did not exist")
            self.workspace_modes[workspace] = details["to"]
        elif event.action == actions.AGENT_MODE_CHANGED:
            agent = str(event.agent_id)
            if details["from"] != self.agent_overrides[agent]:
                self._problem(event, f"from {details['from']}, but the override was {self.agent_overrides[agent]}")
            if details["effective_from"] != self.effective(agent):
                self._problem(event, f"effective_from {details['effective_from']}, but it was {self.effective(agent)}")
            if details["to"] is not None and details["to"] not in self.mode_scopes:
                self._problem(event, f"to {details['to']}, a mode that did not exist")
            self.agent_overrides[agent] = details["to"]
            if details["effective_to"] != self.effective(agent):
                self._problem(event, f"effective_to {details['effective_to']}, but it is {self.effective(agent)}")
        elif event.action == actions.PERMISSION_MODE_CREATED:
            if details["mode"] in self.mode_scopes:
                self._problem(event, f"{details['mode']} created twice")
            self.mode_scopes[details["mode"]] = frozenset(details["scopes"])
        elif event.action == actions.PERMISSION_MODE_UPDATED:
            name = details["mode"]
            if frozenset(details["from"]["scopes"]) != self.mode_scopes.get(name):
                self._problem(
                    event, f"from scopes {details['from']['scopes']}, but {name} had {self.mode_scopes.get(name)}"
                )
            self.mode_scopes[name] = frozenset(details["to"]["scopes"])
        elif event.action == actions.PERMISSION_MODE_DELETED:
            name = details["mode"]
            if name not in self.mode_scopes:
                self._problem(event, f"{name} deleted, but it did not exist")
            elif self._in_use(name):
                self._problem(event, f"{name} deleted while a workspace or agent used it")
            self.mode_scopes.pop(name, None)
        elif event.action == actions.AGENT_TOKEN_ISSUED:
            self._apply_token_issued(event)

    def _apply_token_issued(self, event: AuditEvent) -> None:
        """A token's scopes lie within its agent's effective mode at issue, and a child's within its parent's."""
        details = event.details
        scopes = frozenset(details["scopes"])
        agent = str(event.agent_id)
        if agent in self.agent_workspaces:
            mode = self.effective(agent)
            if not scopes <= self.mode_scopes[mode]:
                self._problem(
                    event, f"token scopes {sorted(scopes)} outside mode {mode} {sorted(self.mode_scopes[mode])}"
                )
        parent = details.get("parent_id")
        if parent is not None and parent in self.token_scopes and not scopes <= self.token_scopes[parent]:
            self._problem(
                event, f"child scopes {sorted(scopes)} outside its parent's {sorted(self.token_scopes[parent])}"
            )
        self.token_scopes[details["token_id"]] = scopes

    def assert_serial(self) -> None:
        assert not self.problems, f"{len(self.problems)} events out of serial order:\n" + "\n".join(self.problems[:20])

    def assert_matches_database(self) -> None:
        """The replay ends where the database is."""
        workspaces = {str(pk): mode for pk, mode in Workspace.objects.values_list("pk", "permission_mode")}
        agents = {str(pk): mode for pk, mode in WorkspaceAgent.objects.values_list("pk", "permission_mode")}
        modes = {name: frozenset(scopes) for name, scopes in PermissionMode.objects.values_list("name", "scopes")}
        assert workspaces == self.workspace_modes
        assert agents == self.agent_overrides
        assert modes == self.mode_scopes
