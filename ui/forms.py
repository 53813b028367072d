"""Forms of the web UI. They only parse input; the services decide what is allowed."""

from __future__ import annotations

import uuid

from django import forms

from agents.apis.reports import PermissionsReportApi
from policies.models import MODE_NAME_VALIDATOR
from policies.scopes import ALL_SCOPES, SCOPE_DESCRIPTIONS

INHERIT = "inherit"
REASON_HELP = "Recorded in the audit log."


class ReasonMixin(forms.Form):
    reason = forms.CharField(label="Reason", max_length=500, required=False, help_text=REASON_HELP)
    confirm_loosen = forms.BooleanField(required=False)


class WorkspaceModeForm(ReasonMixin):
    permission_mode = forms.CharField(label="Permission mode", max_length=63)


class AgentModeForm(ReasonMixin):
    permission_mode = forms.CharField(label="Override", max_length=63)


class BulkModeForm(ReasonMixin):
    workspace = forms.TypedMultipleChoiceField(label="Workspaces", coerce=uuid.UUID, choices=(), required=True)
    permission_mode = forms.CharField(label="Permission mode", max_length=63)
    reason = forms.CharField(label="Reason", max_length=500, required=True, help_text=REASON_HELP)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any well-formed id passes here; the view looks the ids up among the workspaces the user may see.
        self.fields["workspace"].valid_value = lambda value: True


class AgentTokenIssueForm(forms.Form):
    name = forms.CharField(label="Token name", max_length=100, required=False)
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=[(scope, scope) for scope in ALL_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        required=True,
    )
    # Only a parse bound (far above any maximum); the service applies CODERAUTH_AGENT_TOKEN_MAX_LIFETIME.
    lifetime_days = forms.IntegerField(label="Lifetime (days)", min_value=1, max_value=100 * 365, initial=30)


class PermissionModeCreateForm(forms.Form):
    name = forms.CharField(label="Name", max_length=63, validators=[MODE_NAME_VALIDATOR])
    description = forms.CharField(label="Description", max_length=300, required=False)
    scopes = forms.MultipleChoiceField(
        label="Scopes",
        choices=[(scope, SCOPE_DESCRIPTIONS[scope]) for scope in ALL_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        required=True,
    )


class RecommendationApplyForm(forms.Form):
    agent_id = forms.UUIDField()
    permission_mode = forms.CharField(max_length=63)
    reason = forms.CharField(label="Reason", max_length=500, required=True)


# The API's own field, so this page and GET /api/v2/reports/permissions accept exactly the same windows.
_API_UNUSED_DAYS = PermissionsReportApi.InputSerializer().fields["unused_days"]
UNUSED_DAYS_DEFAULT: int = _API_UNUSED_DAYS.default
UNUSED_DAYS_MIN: int = _API_UNUSED_DAYS.min_value
UNUSED_DAYS_MAX: int = _API_UNUSED_DAYS.max_value
UNUSED_DAYS_ERROR = f"Enter a whole number of days from {UNUSED_DAYS_MIN} to {UNUSED_DAYS_MAX}."


class PermissionsReportForm(forms.Form):
    """The report's window: agents that may read user data but have not for this many days are flagged."""

    unused_days = forms.IntegerField(
        label="Unused for (days)",
        required=False,
        min_value=UNUSED_DAYS_MIN,
        max_value=UNUSED_DAYS_MAX,
        error_messages={"invalid": UNUSED_DAYS_ERROR, "min_value": UNUSED_DAYS_ERROR, "max_value": UNUSED_DAYS_ERROR},
    )

    def clean_unused_days(self) -> int:
        """Left empty, like the API's parameter left out: the default window."""
        days = self.cleaned_data["unused_days"]
        return UNUSED_DAYS_DEFAULT if days is None else days


# Approval durations offered on the access-request page, capped at what the agent asked for (its own is offered too).
ACCESS_DURATION_CHOICES_MINUTES = (5, 15, 30, 60)


def access_duration_choices(requested_seconds: int) -> list[tuple[int, str]]:
    """The durations an approver may pick for a request: the fixed steps shorter than it, then its own."""
    choices = [(minutes * 60, f"{minutes} min") for minutes in ACCESS_DURATION_CHOICES_MINUTES]
    shorter = [(seconds, label) for seconds, label in choices if seconds < requested_seconds]
    minutes, seconds = divmod(requested_seconds, 60)
    own = f"{minutes} min" if not seconds else f"{minutes} min {seconds} s"
    return [*shorter, (requested_seconds, f"{own} (asked)")]


class AccessRequestDecisionForm(forms.Form):
    """Deny or revoke: a reason is required (the service refuses a blank one too)."""

    reason = forms.CharField(label="Reason", max_length=500, required=True, help_text=REASON_HELP)

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


class AccessRequestApproveForm(AccessRequestDecisionForm):
    # Only a parse bound: the service refuses a duration longer than the request's.
    duration_seconds = forms.IntegerField(label="For", min_value=1, required=False)
