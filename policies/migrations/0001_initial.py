import django.contrib.postgres.fields
import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="PermissionMode",
            fields=[
                (
                    "name",
                    models.CharField(
                        max_length=63,
                        primary_key=True,
                        serialize=False,
                        validators=[
                            django.core.validators.RegexValidator(
                                "^[a-z0-9][a-z0-9-]{0,62}$",
                                "Use 1-63 lowercase letters, digits and hyphens, starting with a letter or digit.",
                            )
                        ],
                    ),
                ),
                ("description", models.CharField(blank=True, max_length=300)),
                (
                    "scopes",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(max_length=40), blank=True, default=list, size=None
                    ),
                ),
                ("builtin", models.BooleanField(default=False, editable=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={"ordering": ["-builtin", "name"]},
        ),
        migrations.AddConstraint(
            model_name="permissionmode",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("scopes__contained_by", ["agent:connect", "agent:report", "agent:gitsshkey", "agent:external-auth"])
                ),
                name="permission_mode_scopes_known",
            ),
        ),
    ]
