"""Configuration sanity checks, shown by `manage.py check` and at server start."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Warning, register


def _deployed() -> bool:
    local = {"localhost", "127.0.0.1", "[::1]", "testserver"}
    return any(host not in local for host in settings.ALLOWED_HOSTS)


@register()
def check_deployment(app_configs=None, **kwargs):
    problems = []
    if _deployed() and not settings.SECRET_KEY_FROM_ENV:
        problems.append(
            Warning(
                "The secret key comes from the local key file, but the site serves other hosts.",
                hint="Set PERSONAWEB_SECRET_KEY for a deployment.",
                id="personaweb.W001",
            )
        )
    if _deployed() and settings.DEBUG:
        problems.append(
            Warning(
                "PERSONAWEB_DEBUG is on while the site serves hosts other than localhost.",
                hint="Unset PERSONAWEB_DEBUG: debug pages show settings and LLM prompts.",
                id="personaweb.W002",
            )
        )
    return problems


@register()
def check_scale_out(app_configs=None, **kwargs):
    problems = []
    sqlite = str(settings.DATABASES["default"]["ENGINE"]).endswith("sqlite3")
    if settings.REDIS_URL and sqlite:
        problems.append(
            Warning(
                "REDIS_URL is set (several processes) but the database is SQLite.",
                hint="Set DATABASE_URL to PostgreSQL when running more than one process.",
                id="personaweb.W003",
            )
        )
    if settings.REDIS_URL and settings.RUN_STALE_AFTER == 0:
        problems.append(
            Warning(
                "REDIS_URL is set but PERSONAWEB_RUN_STALE_AFTER is 0: a starting process would "
                "mark the live runs of the other processes as interrupted.",
                hint="Set PERSONAWEB_RUN_STALE_AFTER to 30 or more.",
                id="personaweb.W004",
            )
        )
    return problems
