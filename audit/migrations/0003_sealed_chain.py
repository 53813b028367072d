"""Writers append without the chain's lock; the sealer links rows afterwards (audit/sealing.py).

The one UPDATE a row may ever receive is its seal: `prev_hash` and `hash` set once, from empty, with every other
column unchanged. The trigger keeps its name (readiness counts the guards by name) and only its function changes.
Rows written before this migration are already sealed, so the chain verifies across the upgrade unchanged.
"""

from django.db import migrations

SEAL_ONLY_SQL = """
CREATE FUNCTION audit_auditevent_seal_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.hash = '' AND OLD.prev_hash = '' AND NEW.hash <> '' AND NEW.prev_hash <> ''
       AND (NEW.id, NEW.time, NEW.action, NEW.actor_type, NEW.actor, NEW.workspace_id, NEW.agent_id,
            NEW.details, NEW.ip, NEW.user_agent, NEW.request_id)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.time, OLD.action, OLD.actor_type, OLD.actor, OLD.workspace_id, OLD.agent_id,
            OLD.details, OLD.ip, OLD.user_agent, OLD.request_id)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: an UPDATE may only seal an unsealed row'
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Rows are sealed by "manage.py seal_audit" and leave only through "manage.py archive_audit".';
END;
$$;

DROP TRIGGER audit_auditevent_no_update ON audit_auditevent;
CREATE TRIGGER audit_auditevent_no_update BEFORE UPDATE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_auditevent_seal_only();
"""

REJECT_UPDATE_SQL = """
DROP TRIGGER audit_auditevent_no_update ON audit_auditevent;
CREATE TRIGGER audit_auditevent_no_update BEFORE UPDATE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_auditevent_reject_change();
DROP FUNCTION audit_auditevent_seal_only();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_hash_chain")]

    operations = [
        migrations.RunSQL(SEAL_ONLY_SQL, REJECT_UPDATE_SQL),
    ]
