"""Record which digest key made each token's digest, so `rotate_keys` can count the tokens a previous key still
serves. Rows already there get an empty key id, "not recorded": which key made them cannot be known without the
plaintext (the first use under the current key fills it in). The column is added with that empty default, then
given its real default, the current key's id, which applies to new rows only and needs no SQL."""

import core.tokens
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0003_agenttoken_last_rejected_at'),
    ]

    operations = [
        migrations.AddField(
            model_name='agenttoken',
            name='key_id',
            field=models.CharField(blank=True, default='', editable=False, max_length=8),
        ),
        migrations.AddField(
            model_name='usertoken',
            name='key_id',
            field=models.CharField(blank=True, default='', editable=False, max_length=8),
        ),
        migrations.AlterField(
            model_name='agenttoken',
            name='key_id',
            field=models.CharField(blank=True, default=core.tokens.digest_key_id, editable=False, max_length=8),
        ),
        migrations.AlterField(
            model_name='usertoken',
            name='key_id',
            field=models.CharField(blank=True, default=core.tokens.digest_key_id, editable=False, max_length=8),
        ),
    ]
