"""Whether the audit log can take an append, found out without writing anything: part of readiness (GET /readyz).

A probe that inserted a row, even one rolled back, would spend an id of the sequence and leave a gap where an
auditor expects none; this one reads the catalogue instead. Named in CODERAUTH_READINESS_CHECKS.
"""

from __future__ import annotations

from django.db import connection

from audit.models import AuditEvent

# The append-only guards of migration 0002: without them the log could be rewritten in place.
GUARD_TRIGGERS = ("audit_auditevent_no_update", "audit_auditevent_no_delete", "audit_auditevent_no_truncate")

# One round trip. has_*_privilege with one argument asks for the current user; a multi-privilege argument
# would answer "any of", so each privilege gets its own call. transaction_read_only is on in a standby too.
_PROBE_SQL = """
SELECT has_table_privilege(%(table)s, 'INSERT'),
       has_table_privilege(%(table)s, 'SELECT'),
       coalesce(has_sequence_privilege(pg_get_serial_sequence(%(table)s, 'id'), 'USAGE'), false),
       (SELECT count(*) FROM pg_trigger
         WHERE tgrelid = %(table)s::regclass AND tgname = ANY(%(triggers)s) AND tgenabled <> 'D'),
       current_setting('transaction_read_only') = 'on'
"""


def audit_log_append_problems() -> list[str]:
    """What would stop audit_record from appending now (privileges, guards, a read-only server); empty if nothing."""
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(_PROBE_SQL, {"table": table, "triggers": list(GUARD_TRIGGERS)})
        may_insert, may_select, may_use_sequence, active_guards, read_only = cursor.fetchone()
    problems = []
    if not may_insert:
        problems.append(f"no INSERT privilege on {table}")
    if not may_select:
        problems.append(f"no SELECT privilege on {table}")
    if not may_use_sequence:
        problems.append(f"no USAGE privilege on the id sequence of {table}")
    if active_guards != len(GUARD_TRIGGERS):
        problems.append(f"{active_guards} of the {len(GUARD_TRIGGERS)} append-only triggers of {table} are active")
    if read_only:
        problems.append("the database is read-only")
    return problems
