from __future__ import annotations

import os

from django.apps import AppConfig

from personaweb.personas import tracing


class WebConfig(AppConfig):
    name = "personaweb.web"
    label = "web"
    verbose_name = "PersonaWeb"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks (personaweb.W00x). No database access here: recovery of
        # interrupted runs happens lazily on first use (see recovery.ensure_recovered).
        from personaweb.web import checks  # noqa: F401

        # Traces, when the standard OTEL_EXPORTER_OTLP_* variables ask for them: for every
        # engine of this process (the server, persona_chat, compare_strategies). Without an
        # endpoint nothing is installed and OpenTelemetry is never imported.
        if tracing.installed() is None:
            tracing.install(tracing.from_env(os.environ))
