"""Serializer field for permission modes: accepts Coder's aliases, answers with canonical names."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from policies.models import PermissionMode
from policies.selectors import permission_mode_find


@extend_schema_field(OpenApiTypes.STR)
class PermissionModeField(serializers.Field):
    default_error_messages = {
        "unknown": "Unknown permission mode '{name}'.",
        "invalid": "A permission mode name is a string.",
    }

    def to_internal_value(self, data) -> PermissionMode:
        if not isinstance(data, str):
            self.fail("invalid")
        mode = permission_mode_find(name=data)
        if mode is None:
            self.fail("unknown", name=data[:63])
        return mode

    def to_representation(self, value) -> str:
        return value.name if isinstance(value, PermissionMode) else value
