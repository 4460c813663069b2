"""Shared plumbing for tests that need a real server or a real browser: daphne in a
subprocess on a free port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from personaweb.llm.scripted_server import ScriptedOpenAIServer

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out of this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def scripted_llm(monkeypatch: Any, responder: Any) -> Iterator[ScriptedOpenAIServer]:
    """A scripted LLM playing `responder`, with the environment pointing the app at it. A
    mistake in the script itself fails the test when it ends."""
    with ScriptedOpenAIServer(dialect="openai", responder=responder) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("PERSONAWEB_MODEL", "scripted-model")
        yield server
        server.assert_no_script_errors()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """daphne serving personaweb.asgi on a fixed port; can be killed and started again."""

    app = "personaweb.asgi:application"
    """The ASGI application daphne serves (the benchmarks serve a stamped one)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30) -> LiveServer:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                self.app,
            ],
            cwd=REPO,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited: see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not start in {timeout_s:.0f} s: see {self.log}")

    def kill(self) -> None:
        """Stop it the hard way, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright (skips when it is not installed)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    # Playwright's sync API keeps an event loop running in this thread, which makes Django
    # refuse ORM calls from the test itself. They are sync and safe here (Django's docs say
    # the same for Playwright), so allow them while the browser lives.
    saved = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if saved is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = saved


def collect_page_errors(page: Any, *, console: bool = False) -> list[str]:
    """Script errors on the page (and, with `console`, console errors) as they happen: a CSP
    violation or a broken swap shows up here."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    if console:

        def on_console(message: Any) -> None:
            # The browser asks for /favicon.ico on its own; the app has none.
            if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
                errors.append(f"{message.text} at {message.location['url']}")

        page.on("console", on_console)
    return errors


@contextmanager
def live_app(llm_base_url: str, tmp_path_factory: Any) -> Iterator[LiveServer]:
    """The app in daphne on the test database, its LLM at `llm_base_url` (for a module's
    browser tests: its log in a fresh temporary folder)."""
    server = LiveServer(
        sqlite_server_env(llm_base_url), tmp_path_factory.mktemp("daphne") / "daphne.log"
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def sqlite_server_env(llm_base_url: str) -> dict[str, str]:
    """Environment for daphne sharing the test run's SQLite database, with the scripted LLM."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if not str(db["ENGINE"]).endswith("sqlite3"):
        pytest.skip("the browser suite shares its SQLite test database with daphne")
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db['NAME']}",
        "OPENAI_BASE_URL": llm_base_url,
        "OPENAI_API_KEY": "sk-test",
        "PERSONAWEB_MODEL": "scripted-model",
        "PERSONAWEB_LOG_LEVEL": "WARNING",
    }


# --- PostgreSQL and Redis, for the scale-out tests ------------------------------------------------

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS = ("127.0.0.1", 6379)


def scaleout_services() -> None:
    """On CI the services are part of the machine: missing ones fail. Locally, skip."""
    problems = []
    try:
        import psycopg

        with psycopg.connect(dbname="postgres", connect_timeout=3, **PG):  # type: ignore[arg-type]
            pass
    except Exception as exc:
        problems.append(f"PostgreSQL at 127.0.0.1:5432: {exc}")
    try:
        with socket.create_connection(REDIS, timeout=3) as s:
            s.sendall(b"PING\r\n")
            if not s.recv(16).startswith(b"+PONG"):
                problems.append("Redis at 127.0.0.1:6379 did not answer PING")
    except OSError as exc:
        problems.append(f"Redis at 127.0.0.1:6379: {exc}")
    if problems:
        message = "scale-out services unavailable: " + "; ".join(problems)
        pytest.skip(message)  # which fails under CI (tests/conftest.py)
