from agents.models.elevation import AccessRequest
from agents.models.identities import BreakGlassCode, ExternalIdentity
from agents.models.notifications import WebhookDelivery
from agents.models.status import AgentLog, AgentReportWindow, AppStatus
from agents.models.tokens import AgentToken, UserToken, live_token_q
from agents.models.user_data import ExternalAuthLink, ExternalAuthProvider, GitSSHKey
from agents.models.workspaces import Workspace, WorkspaceAgent

__all__ = [
    "AccessRequest",
    "AgentLog",
    "AgentReportWindow",
    "AgentToken",
    "AppStatus",
    "BreakGlassCode",
    "ExternalAuthLink",
    "ExternalAuthProvider",
    "ExternalIdentity",
    "GitSSHKey",
    "UserToken",
    "WebhookDelivery",
    "Workspace",
    "WorkspaceAgent",
    "live_token_q",
]
