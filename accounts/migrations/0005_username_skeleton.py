from typing import Any

from django.db import migrations, models

from accounts.names import username_skeleton


def fill_skeletons(apps: Any, schema_editor: Any) -> None:
    """Give every existing account its skeleton, so new names are checked against them too.

    Existing accounts are never refused here: two that already look alike
    both stay (the index is not unique).
    """
    User = apps.get_model("accounts", "User")
    batch = []
    for user in User.objects.only("id", "username").iterator(chunk_size=1000):
        user.username_skeleton = username_skeleton(user.username)
        batch.append(user)
        if len(batch) == 1000:
            User.objects.bulk_update(batch, ["username_skeleton"])
            batch = []
    User.objects.bulk_update(batch, ["username_skeleton"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_token_version_and_family"),
    ]

    operations = [
        migrations.AddField(
            model_name="user",
            name="username_skeleton",
            field=models.CharField(db_index=True, default="", editable=False, max_length=64),
        ),
        migrations.RunPython(fill_skeletons, migrations.RunPython.noop),
    ]
