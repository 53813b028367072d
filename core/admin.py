"""Admin building blocks that know no app."""

from __future__ import annotations

from django.contrib import admin
from django.db import models


class ReadOnlyModelAdmin(admin.ModelAdmin):
    """Changes go through services (and so through the audit trail); the admin only shows rows."""

    # Django 6 reads a scheme-less URL as https; say so now rather than warn on every form built for display.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
