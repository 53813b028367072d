"""Reads. Restricted to what the principal may see: another member's objects are not found."""
