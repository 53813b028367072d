"""Create the built-in modes `default` and `no-user-data`, and make built-ins immutable in the database."""

from django.db import migrations

BUILTINS = {
    "default": (
        "Every agent capability, including the owner's git SSH key and external auth.",
        ["agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"],
    ),
    "no-user-data": (
        "Connect and report status only; user-data routes are refused.",
        ["agent:connect", "agent:report"],
    ),
}

# A guard below the application: even a raw UPDATE or DELETE cannot alter a built-in.
GUARD_SQL = """
CREATE OR REPLACE FUNCTION policies_builtin_mode_guard() RETURNS trigger AS $$
BEGIN
    IF OLD.builtin THEN
        RAISE EXCEPTION 'built-in permission mode % is immutable', OLD.name
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER policies_builtin_mode_guard
    BEFORE UPDATE OR DELETE ON policies_permissionmode
    FOR EACH ROW EXECUTE FUNCTION policies_builtin_mode_guard();
"""

UNGUARD_SQL = """
DROP TRIGGER IF EXISTS policies_builtin_mode_guard ON policies_permissionmode;
DROP FUNCTION IF EXISTS policies_builtin_mode_guard();
"""


def create_builtins(apps, schema_editor):
    PermissionMode = apps.get_model("policies", "PermissionMode")
    for name, (description, scopes) in BUILTINS.items():
        PermissionMode.objects.update_or_create(
            name=name, defaults={"description": description, "scopes": scopes, "builtin": True}
        )


class Migration(migrations.Migration):
    dependencies = [("policies", "0001_initial")]

    operations = [
        migrations.RunPython(create_builtins, migrations.RunPython.noop),
        migrations.RunSQL(GUARD_SQL, UNGUARD_SQL),
    ]
