"""Raw data in the Django admin. Token digests and encrypted secrets are never shown.

Accounts stay editable here (Django's user admin), but every add, change, password change and delete
goes through agents.services.users and is audited in the same transaction. Groups are roles
(`admin`, `auditor`): read-only here, and membership is edited on the user.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.db import transaction

from agents.models import (
    AgentLog,
    AgentToken,
    AppStatus,
    ExternalAuthLink,
    ExternalAuthProvider,
    ExternalIdentity,
    GitSSHKey,
    UserToken,
    Workspace,
    WorkspaceAgent,
)
from agents.services.users import (
    user_account_snapshot,
    user_admin_delete,
    user_admin_delete_many,
    user_admin_save_record,
    user_password_changed_record,
)
from core.admin import ReadOnlyModelAdmin

User = get_user_model()


class ReadOnlyTokenAdmin(ReadOnlyModelAdmin):
    """Tokens are issued and revoked through the API or UI so that each change is audited."""

    exclude = ("digest",)


@admin.register(AgentToken)
class AgentTokenAdmin(ReadOnlyTokenAdmin):
    list_display = ("hint", "name", "agent", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "hint")


@admin.register(UserToken)
class UserTokenAdmin(ReadOnlyTokenAdmin):
    list_display = ("hint", "name", "user", "kind", "created_at", "expires_at", "revoked_at", "last_used_at")
    list_filter = ("kind",)


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


@admin.register(ExternalIdentity)
class ExternalIdentityAdmin(ReadOnlyModelAdmin):
    """Which account at which OpenID Provider signs in as which user. Created and updated only by sign-in."""

    list_display = ("user", "issuer", "subject", "created_at", "last_sign_in_at")
    list_filter = ("issuer",)
    list_select_related = ("user",)
    search_fields = ("user__username", "subject")


@admin.register(AppStatus)
class AppStatusAdmin(ReadOnlyModelAdmin):
    list_display = ("agent", "app_slug", "state", "message", "token", "created_at")
    list_select_related = ("agent", "token")
    # Which token reported the status (not editable, so the admin's form would leave it out).
    readonly_fields = ("token",)


@admin.register(AgentLog)
class AgentLogAdmin(ReadOnlyModelAdmin):
    list_display = ("agent", "level", "created_at", "output")


admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Django's user admin with each change audited (user.created, user.updated, user.deleted)."""

    def save_model(self, request, obj, form, change):
        # The stored state before this save; the audit row compares it with the state after save_related.
        before = user_account_snapshot(user_id=obj.pk) if change else None
        request.__dict__.setdefault("_coderauth_accounts_before", {})[obj.pk] = before
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        user = form.instance
        before = request.__dict__.get("_coderauth_accounts_before", {}).pop(user.pk, None)
        user_admin_save_record(actor=request.user, user=user, before=before)

    def user_change_password(self, request, id, form_url=""):
        # Django saves the new password outside a transaction; here it commits with its audit row
        # (user.password_changed) and the revocation of the user's sessions and tokens, or not at all.
        with transaction.atomic():
            user = self.get_object(request, unquote(id))
            hash_before = user.password if user is not None else None
            response = super().user_change_password(request, id, form_url)
            if user is not None and request.method == "POST":
                user.refresh_from_db(fields=["password"])
                if user.password != hash_before:
                    # Changing one's own password here keeps this session (Django has just re-keyed it).
                    own = user.pk == request.user.pk
                    revoked = user_password_changed_record(
                        actor=request.user,
                        user=user,
                        method="admin",
                        keep_session_key=request.session.session_key if own else None,
                    )
                    messages.info(request, f"Revoked for {user.get_username()}: {revoked.summary()}.")
        return response

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # A user's own tokens and user data go with the account (user.deleted counts them); their admins are
        # read-only only so that they are not deleted one by one, unaudited. Workspaces protect their owner
        # (never deleted from here), so they belong on the protected-objects page, not under missing permissions.
        perms_needed -= {model._meta.verbose_name for model in (UserToken, GitSSHKey, ExternalAuthLink, Workspace)}
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request, obj):
        user_admin_delete(actor=request.user, user=obj)

    def delete_queryset(self, request, queryset):
        user_admin_delete_many(actor=request.user, users=queryset)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Groups are the `admin` and `auditor` roles: renaming or deleting one would change who may do what."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
