"""The role groups (docs/concepts.md): `admin` and `auditor` (members need no group)."""

from django.db import migrations


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ("admin", "auditor"):
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("policies", "0002_builtin_modes"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_groups, migrations.RunPython.noop)]
