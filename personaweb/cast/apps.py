from __future__ import annotations

from django.apps import AppConfig


class CastConfig(AppConfig):
    name = "personaweb.cast"
    label = "cast"
    verbose_name = "Characters"
