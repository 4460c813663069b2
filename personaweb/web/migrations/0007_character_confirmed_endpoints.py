from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("web", "0006_node_seq_unique"),
    ]

    operations = [
        migrations.AddField(
            model_name="character",
            name="confirmed_endpoints",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="The endpoints (base URLs) its owner agreed the sheet's profiles may "
                "call. Kept beside the sheet, not in it: cards and session files never carry it",
            ),
        ),
    ]
