from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="parent_pid",
            field=models.IntegerField(null=True),
        ),
        migrations.AddField(
            model_name="execution",
            name="started",
            field=models.FloatField(null=True),
        ),
        migrations.AddField(
            model_name="execution",
            name="ended",
            field=models.FloatField(null=True),
        ),
    ]
