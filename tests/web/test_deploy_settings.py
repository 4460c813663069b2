"""Deployment settings: `manage.py check --deploy` is clean with a production environment, and
the defaults keep `make run` on plain http://127.0.0.1 working."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from tests.live import REPO

PRODUCTION = {
    "PERSONAWEB_SECRET_KEY": secrets.token_urlsafe(50),
    "PERSONAWEB_ALLOWED_HOSTS": "personaweb.example.com",
    "PERSONAWEB_CSRF_TRUSTED_ORIGINS": "https://personaweb.example.com",
    "PERSONAWEB_SECURE_COOKIES": "1",
    "PERSONAWEB_HSTS_SECONDS": "31536000",
    "PERSONAWEB_HSTS_INCLUDE_SUBDOMAINS": "1",
    "PERSONAWEB_HSTS_PRELOAD": "1",
    "PERSONAWEB_SSL_REDIRECT": "1",
    "PERSONAWEB_TRUST_X_FORWARDED_PROTO": "1",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """manage.py in a fresh process (settings are read at import), with only `env` set of
    what configures PersonaWeb: the machine's own PERSONAWEB_* variables do not leak in."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PERSONAWEB_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_a_production_environment():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("unset", "warning"),
    [
        ("PERSONAWEB_HSTS_SECONDS", "security.W004"),
        ("PERSONAWEB_SSL_REDIRECT", "security.W008"),
        ("PERSONAWEB_SECURE_COOKIES", "security.W012"),
    ],
)
def test_check_deploy_names_each_missing_https_setting(unset, warning):
    env = {k: v for k, v in PRODUCTION.items() if k != unset}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert warning in result.stderr + result.stdout


def test_a_bad_value_stops_the_start_with_its_name():
    result = manage("check", env={**PRODUCTION, "PERSONAWEB_HSTS_SECONDS": "a year"})
    assert result.returncode != 0
    assert "PERSONAWEB_HSTS_SECONDS must be an integer" in result.stderr


PLAIN_HTTP_PROBE = """
from django.conf import settings
from django.test import Client
response = Client(HTTP_HOST="127.0.0.1").get("/accounts/login/")
print(response.status_code, "Strict-Transport-Security" in response.headers)
print(settings.SECURE_SSL_REDIRECT, settings.SECURE_HSTS_SECONDS, settings.SESSION_COOKIE_SECURE)
"""


def test_the_defaults_serve_plain_http_without_a_redirect_or_hsts():
    # What `make run` needs on http://127.0.0.1: neither redirected to https nor pinned to it.
    result = manage("shell", "-v", "0", "-c", PLAIN_HTTP_PROBE, env={})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "False", "False", "0", "False"]
