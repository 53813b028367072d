"""Chain any rows written before the chain existed, then make the table append-only.

Row-level BEFORE triggers reject UPDATE and DELETE; row triggers never fire for TRUNCATE, so a
statement-level BEFORE TRUNCATE trigger covers it. Each trigger is separate so that archive_audit
can lift the DELETE guard alone, inside its own transaction (see archive_audit).
"""

from django.db import migrations

from audit import chain

GUARD_SQL = """
CREATE FUNCTION audit_auditevent_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditevent is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Rows leave the audit log only through "manage.py archive_audit".';
END;
$$;

CREATE TRIGGER audit_auditevent_no_update BEFORE UPDATE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_auditevent_reject_change();
CREATE TRIGGER audit_auditevent_no_delete BEFORE DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_auditevent_reject_change();
CREATE TRIGGER audit_auditevent_no_truncate BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_auditevent_reject_change();
"""

UNGUARD_SQL = """
DROP TRIGGER IF EXISTS audit_auditevent_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_auditevent_no_delete ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_auditevent_no_update ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_auditevent_reject_change();
"""


def chain_existing_rows(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    head = chain.GENESIS_HASH
    for row in AuditEvent.objects.order_by("id").values(*chain.HASHED_FIELDS).iterator(chunk_size=2000):
        row["prev_hash"] = head
        head = chain.row_hash(row)
        AuditEvent.objects.filter(pk=row["id"]).update(
            prev_hash=row["prev_hash"], hash=head, ip=chain.canonical_ip(row["ip"])
        )


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        migrations.RunPython(chain_existing_rows, migrations.RunPython.noop),
        migrations.RunSQL(GUARD_SQL, UNGUARD_SQL),
    ]
