"""Writes. Each service opens its transaction and records its audit event inside it."""
