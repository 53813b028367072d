"""Permission modes as a scope-by-mode table; admins add custom modes. Built-ins are never editable."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.views.generic import TemplateView

from core.exceptions import ApplicationError
from core.roles import is_admin
from policies.scopes import ALL_SCOPES, SCOPE_DESCRIPTIONS, USER_DATA_SCOPES
from policies.selectors import permission_mode_list
from policies.services import permission_mode_create
from ui.forms import PermissionModeCreateForm
from ui.views.common import SignedInView, require_admin, service_failure


class PermissionModeListView(SignedInView, TemplateView):
    template_name = "ui/modes.html"

    def get_context_data(self, form=None, **kwargs):
        modes = list(permission_mode_list())
        rows = [
            {
                "scope": scope,
                "description": SCOPE_DESCRIPTIONS[scope],
                "user_data": scope in USER_DATA_SCOPES,
                "cells": [mode.allows(scope) for mode in modes],
            }
            for scope in ALL_SCOPES
        ]
        return {
            **super().get_context_data(**kwargs),
            "modes": modes,
            "rows": rows,
            "form": form or PermissionModeCreateForm(),
            "can_create": is_admin(self.request.user),
        }

    def post(self, request):
        require_admin(request.user)
        form = PermissionModeCreateForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=400)
        try:
            mode = permission_mode_create(actor=request.user, **form.cleaned_data)
        except ApplicationError as error:
            return service_failure(request, error, back=reverse("ui:modes"))
        messages.success(request, f"Created permission mode {mode.name}.")
        return redirect("ui:modes")
