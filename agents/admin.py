"""Raw data in the Django admin. Token digests and encrypted secrets are never shown."""

from django.contrib import admin

from agents.models import (
    AgentLog,
    AgentToken,
    AppStatus,
    ExternalAuthLink,
    ExternalAuthProvider,
    GitSSHKey,
    UserToken,
    Workspace,
    WorkspaceAgent,
)


class ReadOnlyTokenAdmin(admin.ModelAdmin):
    """Tokens are issued and revoked through the API or UI so that each change is audited."""

    exclude = ("digest",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AgentToken)
class AgentTokenAdmin(ReadOnlyTokenAdmin):
    list_display = ("hint", "name", "agent", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "hint")


@admin.register(UserToken)
class UserTokenAdmin(ReadOnlyTokenAdmin):
    list_display = ("hint", "name", "user", "kind", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("kind",)


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Changes go through services (and so through the audit trail); the admin only shows rows."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Workspace)
class WorkspaceAdmin(ReadOnlyModelAdmin):
    list_display = ("name", "owner", "permission_mode", "created_at")
    search_fields = ("name", "owner__username")
    list_filter = ("permission_mode",)


@admin.register(WorkspaceAgent)
class WorkspaceAgentAdmin(ReadOnlyModelAdmin):
    list_display = ("name", "workspace", "permission_mode", "created_at")
    search_fields = ("name", "workspace__name")


@admin.register(GitSSHKey)
class GitSSHKeyAdmin(ReadOnlyModelAdmin):
    list_display = ("user", "created_at", "updated_at")
    exclude = ("private_key_encrypted",)


@admin.register(ExternalAuthProvider)
class ExternalAuthProviderAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "type", "regex")


@admin.register(ExternalAuthLink)
class ExternalAuthLinkAdmin(ReadOnlyModelAdmin):
    list_display = ("user", "provider", "updated_at")
    exclude = ("access_token_encrypted", "token_extra_encrypted")


@admin.register(AppStatus)
class AppStatusAdmin(ReadOnlyModelAdmin):
    list_display = ("agent", "app_slug", "state", "message", "created_at")


@admin.register(AgentLog)
class AgentLogAdmin(ReadOnlyModelAdmin):
    list_display = ("agent", "level", "created_at", "output")
