from django.db import migrations, models


def end_duplicate_runs(apps, schema_editor):
    """Before the constraint: of several `running` rows on one session (possible before it
    existed), keep the newest; the others are marked interrupted."""
    Run = apps.get_model("web", "Run")
    seen = set()
    for run in Run.objects.filter(status="running").order_by("-started_at", "-pk"):
        if run.session_id in seen:
            Run.objects.filter(pk=run.pk).update(status="interrupted", error="superseded")
        seen.add(run.session_id)


class Migration(migrations.Migration):
    dependencies = [
        ("web", "0002_session_strategy_and_groups"),
    ]

    operations = [
        migrations.RunPython(end_duplicate_runs, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="run",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "running")),
                fields=("session",),
                name="one_running_run_per_session",
            ),
        ),
    ]
