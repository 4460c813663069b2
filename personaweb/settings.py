"""Django settings for PersonaWeb.

Everything that differs between a laptop and a deployment comes from the environment, read
through the small typed helpers below; a bad value fails at start-up with ImproperlyConfigured.

Embedded default: SQLite (WAL, IMMEDIATE transactions), the in-memory channel layer, one ASGI
process. At scale: DATABASE_URL (PostgreSQL), REDIS_URL (channels-redis), several processes.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """The variable's value, stripped, or the default when unset."""
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off (case-insensitive)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """An integer variable, optionally bounded below."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated variable as a list (empty items dropped)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def _local_secret_key(path: Path) -> str:
    # A laptop run needs no configuration: the first start writes a random key next to the
    # database and later starts reuse it, so logins survive restarts. Deployments set
    # PERSONAWEB_SECRET_KEY (system check personaweb.W001 says so).
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        return key


DEBUG = env_bool("PERSONAWEB_DEBUG", False)

SECRET_KEY_FILE = BASE_DIR / ".personaweb-secret-key"
SECRET_KEY_FROM_ENV = bool(env_str("PERSONAWEB_SECRET_KEY"))
SECRET_KEY = env_str("PERSONAWEB_SECRET_KEY") or _local_secret_key(SECRET_KEY_FILE)

LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
ALLOWED_HOSTS = env_list("PERSONAWEB_ALLOWED_HOSTS", LOCAL_HOSTS)
CSRF_TRUSTED_ORIGINS = env_list("PERSONAWEB_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # daphne first: its runserver replaces Django's, so `manage.py runserver` speaks ASGI.
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "template_partials",
    "ninja",  # its static files: Swagger UI for /api/docs, no CDN
    "personaweb.web",
    "personaweb.cast",
    "personaweb.compare",
    "personaweb.api",
    "personaweb.training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "personaweb.web.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "personaweb.urls"
ASGI_APPLICATION = "personaweb.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "personaweb.web.context.embedded_health",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------

SQLITE_OPTIONS: dict[str, Any] = {
    # WAL lets the page read while a run writes; IMMEDIATE takes the write lock at BEGIN so two
    # writers queue on the busy timeout instead of failing with "database is locked".
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    import dj_database_url

    try:
        # Connections are not kept between requests by default (PERSONAWEB_DB_CONN_MAX_AGE,
        # seconds): under ASGI every request context and every run has a thread of its own,
        # and each kept connection is one of PostgreSQL's max_connections (100 by default),
        # which 40 busy sessions on one process used up. A run closes its own at its end.
        _db: dict[str, Any] = dict(
            dj_database_url.parse(
                DATABASE_URL,
                conn_max_age=env_int("PERSONAWEB_DB_CONN_MAX_AGE", 0, minimum=0),
                conn_health_checks=True,
            )
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from None
else:
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}

if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["CONN_MAX_AGE"] = 0
    _db["CONN_HEALTH_CHECKS"] = False
    _db["OPTIONS"] = {**SQLITE_OPTIONS, **_db.get("OPTIONS", {})}
    # A file, not :memory: -- the ASGI server, sync_to_async threads and live-server tests
    # all open their own connections. One file per test process, outside the work tree.
    _db["TEST"] = {
        "NAME": env_str("PERSONAWEB_TEST_DB")
        or str(Path(tempfile.gettempdir()) / f"personaweb-test-{os.getpid()}.sqlite3")
    }

DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channels -------------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL")
# Redis pub/sub, not channels_redis's list-based layer: live frames are broadcast to groups,
# and under 40 busy sessions the list-based layer's change-to-screen p95 was 11 s against
# 0.8 s for pub/sub (bench/bench_scaleout.py). Nothing is lost by it: a browser that misses
# frames is resynced when it reconnects.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- auth -----------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Where `manage.py ensure_local_user` writes the first account's credentials.
LOCAL_LOGIN_FILE = Path(env_str("PERSONAWEB_LOGIN_FILE") or BASE_DIR / ".personaweb-login")

# --- security -------------------------------------------------------------------------------

SESSION_COOKIE_SECURE = env_bool("PERSONAWEB_SECURE_COOKIES", False)
# HTTPS only: off by default, so `make run` keeps serving plain http://127.0.0.1 (a redirect
# to https there would lock a person out). A deployment behind TLS turns them on;
# `manage.py check --deploy` names whatever is still missing.
SECURE_SSL_REDIRECT = env_bool("PERSONAWEB_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("PERSONAWEB_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("PERSONAWEB_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("PERSONAWEB_HSTS_PRELOAD", False)
if env_bool("PERSONAWEB_TRUST_X_FORWARDED_PROTO", False):
    # Behind a proxy that terminates TLS every request arrives as http: without trusting the
    # proxy's X-Forwarded-Proto, the SSL redirect would send https requests round forever.
    # Only for a proxy that sets (and overwrites) that header; otherwise a client could forge it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- i18n, static ---------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("PERSONAWEB_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# asgi.py serves /static/ itself, so a bare `daphne personaweb.asgi:application` (and
# `make run`) works without a web server in front. Turn off when a proxy serves STATIC_ROOT.
SERVE_STATIC = env_bool("PERSONAWEB_SERVE_STATIC", True)

# --- runs -----------------------------------------------------------------------------------

# Seconds without a heartbeat after which another process's run counts as dead and its
# unfinished nodes become `interrupted`. 0 (one process, the default) means: at start-up every
# run not owned by this process is dead. With REDIS_URL (several processes) it defaults to 60 s,
# so a process starting up never takes the live runs of its siblings for dead ones.
RUN_STALE_AFTER = env_int("PERSONAWEB_RUN_STALE_AFTER", 60 if REDIS_URL else 0, minimum=0)
RUN_HEARTBEAT_EVERY = 10
# Streamed tokens are sent to browsers at most this often, per node (milliseconds).
TOKEN_BATCH_MS = env_int("PERSONAWEB_TOKEN_BATCH_MS", 50, minimum=1)
# The largest session file (a debugger export) the web imports, in MB.
SESSION_IMPORT_MAX_MB = env_int("PERSONAWEB_SESSION_IMPORT_MAX_MB", 64, minimum=1)

# --- traces ---------------------------------------------------------------------------------

# Runs are traced when OTEL_EXPORTER_OTLP_ENDPOINT is set (see the README). This is where the
# inspector links a node's span: a URL with {trace_id} and {span_id} in it, e.g. Langfuse's
# https://cloud.langfuse.com/project/<project>/traces/{trace_id}?observation={span_id}.
TRACE_URL = env_str("PERSONAWEB_TRACE_URL")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "personaweb": {"handlers": ["console"], "level": env_str("PERSONAWEB_LOG_LEVEL", "INFO")}
    },
}
