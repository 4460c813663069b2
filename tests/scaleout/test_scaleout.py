"""Scale-out: PostgreSQL, Redis and two daphne processes serving one session.

A message sent through process A must stream, live, into a browser connected to process B:
runs are owned by the process that started them, every step is written to PostgreSQL, and
every change is published on the session's Redis channel group. The web suite then runs again
on PostgreSQL to show the ORM store has no SQLite-only assumptions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from personaweb.llm.scripted_server import ScriptedOpenAIServer
from tests.live import PG, LiveServer, chromium_browser, scaleout_services

pytestmark = pytest.mark.scaleout

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    scaleout_services()
    import psycopg

    name = f"personaweb_scaleout_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


SETUP = """
from django.contrib.auth import get_user_model
from personaweb.web.models import Character, ChatSession
user = get_user_model().objects.create_user("carol", password="scale-out-password-1")
character = Character.objects.create(owner=user, name="Sara Wilcox", slug="sara_wilcox",
    data={"name": "Sara Wilcox", "description": "A proud lady.", "mood": "impatient",
          "goals": ["rise"], "sample_lines": ["Leave all the rest to me."]})
session = ChatSession.objects.create(owner=user, title="scale-out", character=character,
    hierarchy="dialogue", mode="autonomous")
print(session.pk)
"""


def _login(page: Any, base: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", "scale-out-password-1")
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def test_two_processes_share_one_session_live_through_redis_and_postgres(
    database: str, scripted_dialogue: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    with ScriptedOpenAIServer(dialect="openai", responder=scripted_dialogue) as llm:
        env = {
            **os.environ,
            "DATABASE_URL": database,
            "REDIS_URL": f"redis://127.0.0.1:6379/{9}",
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "sk-test",
            "PERSONAWEB_MODEL": "scripted-model",
            # Both processes must share the key, or a login on one is unknown to the other.
            "PERSONAWEB_SECRET_KEY": "scale-out-" + uuid.uuid4().hex,
            "PERSONAWEB_ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        _manage(env, "migrate", "--noinput")
        session_pk = _manage(env, "shell", "-c", SETUP).strip().splitlines()[-1]
        a = LiveServer(env, tmp_path / "daphne-a.log")
        b = LiveServer(env, tmp_path / "daphne-b.log")
        a.start()
        b.start()
        try:
            with chromium_browser() as browser:
                writer = browser.new_context().new_page()
                watcher = browser.new_context().new_page()
                _login(writer, a.url)
                _login(watcher, b.url)
                watcher.goto(f"{b.url}/s/{session_pk}/")
                writer.goto(f"{a.url}/s/{session_pk}/")
                # Let the watcher's WebSocket to process B join the session's group.
                watcher.wait_for_timeout(500)
                writer.fill("#message", "I am Joe, from process A.")
                writer.locator("#send-form button, #send-form [type=submit]").first.click()
                transcript = watcher.locator(".chat")
                expect(transcript).to_contain_text("[styled] Line 1", timeout=30_000)
                expect(watcher.locator(".middle")).to_contain_text("responder", timeout=5_000)
        finally:
            a.stop()
            b.stop()


def test_the_web_suite_passes_on_postgresql(database: str) -> None:
    env = {**os.environ, "DATABASE_URL": database}
    done = subprocess.run(
        # The embedded model's web test is about the model, not the database: it ran once. A
        # test whose daphne shares the SQLite test database cannot run here, and under CI a
        # skip fails: it is deselected.
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "not embedded and not sqlite",
            "tests/web",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    tail = "\n".join(done.stdout.splitlines()[-15:])
    assert done.returncode == 0, tail + done.stderr[-2000:]
    assert " passed" in tail
