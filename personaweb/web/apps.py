from __future__ import annotations

from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "personaweb.web"
    label = "web"
    verbose_name = "PersonaWeb"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks (personaweb.W00x). No database access here: recovery of
        # interrupted runs happens lazily on first use (see recovery.ensure_recovered).
        from personaweb.web import checks  # noqa: F401
