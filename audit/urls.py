"""Audit and report routes (the audit issue fills these in)."""

urlpatterns: list = []
