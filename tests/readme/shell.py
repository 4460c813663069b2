"""Running a README command as a user runs it: in bash, from the repository's root, with the
environment a test gives it (its LLM on loopback, its own database and login file, so nothing
of the developer's checkout is touched)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120.0


# What a user's own shell would not have set for these commands (and what this test run, or a
# `make test` around it, may have): the commands' own variables come from the README.
_NOT_THE_USERS = ("OPENAI_", "PERSONAWEB_", "OTEL_", "LANGFUSE_", "MAKE", "MFLAGS")
_NOT_THE_USERS_NAMES = frozenset(
    {
        "DATABASE_URL",
        "REDIS_URL",
        "PORT",
        "HOST",
        "VENV",
        "PYTHON",
        "LLAMA_CMAKE_ARGS",
        "DJANGO_SETTINGS_MODULE",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    }
)


def user_env(tmp: Path, llm_base_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a person at the shell: no endpoint of the developer's, a database and
    a login file (`login`) in `tmp`, not in the repository, and `llm_base_url` as the
    configured endpoint."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_NOT_THE_USERS) and k not in _NOT_THE_USERS_NAMES
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        PERSONAWEB_LOGIN_FILE=str(tmp / "login"),
        PERSONAWEB_SECRET_KEY="readme-tests-secret-key-0123456789-abcdefghijklmnop",
        PERSONAWEB_LOG_LEVEL="WARNING",
    )
    if llm_base_url:
        env.update(
            OPENAI_BASE_URL=llm_base_url, OPENAI_API_KEY="sk-test", PERSONAWEB_MODEL="scripted"
        )
    env.update(extra)
    return env


def run(
    command: str, env: dict[str, str], *, stdin: str = "", timeout_s: float = TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    """Run `command` in bash from the repository's root; stdout and stderr together."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=REPO,
        env=env,
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What a command printed, for a failure message."""
    return f"exit {result.returncode}; it printed:\n{result.stdout[-4000:]}"
