"""A real server for real Chromium: daphne in a subprocess on the test database, with the
scripted OpenAI-compatible server as its LLM."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from personaweb.llm.scripted_server import ScriptedOpenAIServer

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """daphne serving personaweb.asgi on a fixed port; can be killed and started again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "personaweb.asgi:application",
            ],
            cwd=REPO,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited: see {self.log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("daphne did not start in 20 s")

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


@pytest.fixture(scope="module")
def browser_llm(scripted_dialogue) -> Iterator[ScriptedOpenAIServer]:
    # Slow enough streaming that a person (and the test) can watch the text arrive.
    with ScriptedOpenAIServer(responder=scripted_dialogue, chunk_delay_s=0.04) as server:
        yield server


@pytest.fixture(scope="module")
def live_server_proc(django_db_setup, django_db_blocker, browser_llm, tmp_path_factory):
    from django.conf import settings

    db = settings.DATABASES["default"]
    if not str(db["ENGINE"]).endswith("sqlite3"):
        pytest.skip("the browser suite shares its SQLite test database with daphne")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{db['NAME']}",
        "OPENAI_BASE_URL": browser_llm.base_url,
        "OPENAI_API_KEY": "sk-test",
        "PERSONAWEB_MODEL": "scripted-model",
        "PERSONAWEB_LOG_LEVEL": "WARNING",
    }
    server = LiveServer(env, tmp_path_factory.mktemp("daphne") / "daphne.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def chromium():
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


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    # No script errors (a CSP violation or a broken swap would show up here).
    assert not errors, errors
