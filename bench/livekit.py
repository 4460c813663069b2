"""Plumbing for the live-update benchmarks (bench_frames.py, bench_scaleout.py).

What they share: a database the benchmark and its daphne processes both use, an owner with an
API token and a browser cookie, daphne processes serving `stamped_asgi` (frames carry the time
of their change), browsers played by WebSocket clients that time every frame, and runs driven
through the JSON API against the scripted OpenAI-compatible server.

Not a test helper and not product code: nothing here asserts, everything is measured.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
for entry in (str(REPO), str(BENCH)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

from tests.live import LiveServer  # noqa: E402

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_URL = "redis://127.0.0.1:6379/0"
STAMP = re.compile(r"^<!--pw-t0=([0-9.,]+)-->")
TICKS = os.sysconf("SC_CLK_TCK")
APP = "stamped_asgi:application"


# -- database ------------------------------------------------------------------------------


def sqlite_url() -> str:
    db = Path(tempfile.mkdtemp(prefix="personaweb-bench-")) / "bench.sqlite3"
    return f"sqlite:///{db}"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database (dropped afterwards)."""
    import psycopg

    name = f"personaweb_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def services_missing() -> str | None:
    """Why PostgreSQL and Redis cannot be used here, or None."""
    try:
        import psycopg

        with psycopg.connect(dbname="postgres", connect_timeout=3, **PG):  # type: ignore[arg-type]
            pass
        with socket.create_connection(("127.0.0.1", 6379), timeout=3) as s:
            s.sendall(b"PING\r\n")
            if not s.recv(16).startswith(b"+PONG"):
                return "Redis did not answer PING"
    except Exception as exc:
        return str(exc).strip() or type(exc).__name__
    return None


def setup_django(database_url: str) -> None:
    """Point this process at `database_url` and migrate it (once per process)."""
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "personaweb.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@dataclass
class Owner:
    user: Any
    token: str
    """API bearer token."""
    cookie: str
    """The browser's `sessionid` cookie."""


def make_owner(name: str = "bench") -> Owner:
    from django.contrib.auth.models import User
    from django.test import Client

    from personaweb.api import tokens

    user = User.objects.create_user(f"{name}-{uuid.uuid4().hex[:6]}", password="x")
    client = Client()
    client.force_login(user)
    return Owner(user, tokens.create(user, "bench").secret, client.cookies["sessionid"].value)


def sized_session(owner: Owner, size: int) -> Any:
    """A nested dialogue session of about `size` nodes whose active leaf ends a turn (so a
    new message can follow it)."""
    from bench_debugger import build_session

    from personaweb.personas import Action
    from personaweb.web.models import NodeRow

    session, _ = build_session(owner.user, size)
    last = (
        NodeRow.objects.filter(
            session=session, persona="orchestrator", action=Action.REPLY.value, status="approved"
        )
        .order_by("-seq")
        .first()
    )
    assert last is not None
    session.active_node = last.id
    session.mode = "autonomous"
    session.save(update_fields=["active_node", "mode"])
    return session


def empty_session(owner: Owner, title: str) -> Any:
    from personaweb.web.models import Character, ChatSession

    character, _ = Character.objects.get_or_create(
        owner=owner.user, slug="bench", defaults={"name": "Bench", "data": {"name": "Bench"}}
    )
    return ChatSession.objects.create(
        owner=owner.user, title=title, character=character, hierarchy="dialogue", mode="autonomous"
    )


# -- the LLM ---------------------------------------------------------------------------------


def scripted_llm(latency_s: float = 0.0) -> Any:
    """The scripted OpenAI-compatible server playing a nested dialogue (orchestrator,
    responder, rewriter), each answer after `latency_s`."""
    from personaweb.llm.scripted_server import ScriptedOpenAIServer
    from tests.scripted_replies import dialogue_responder

    def answer(body: dict[str, Any]) -> str:
        if latency_s:
            time.sleep(latency_s)
        return dialogue_responder(body)

    return ScriptedOpenAIServer(responder=answer)


class ScriptedLLMProcess:
    """scripted_llm() in a child process (bench/scripted_llm_server.py), so its JSON work
    does not slow the benchmark's own clients. `script_errors` is read when it stops."""

    def __init__(self, latency_s: float = 0.0) -> None:
        self.latency_s = latency_s
        self.base_url = ""
        self.script_errors: list[str] = []
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> ScriptedLLMProcess:
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "scripted_llm_server.py"), str(self.latency_s)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert self.process.stdout is not None
        self.base_url = self.process.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            raise RuntimeError("the scripted LLM server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        out, _ = self.process.communicate("", timeout=60)
        lines = out.strip().splitlines()
        self.script_errors = json.loads(lines[-1]) if lines else ["no report from the server"]


# -- servers ---------------------------------------------------------------------------------


class Daphne(LiveServer):
    """daphne serving stamped_asgi (frames carry the time of their change) on a free port."""

    app = APP

    def __init__(self, env: dict[str, str], log: Path) -> None:
        paths = os.pathsep.join([str(BENCH), str(REPO)])
        super().__init__({**env, "PYTHONPATH": paths}, log)

    def start(self, timeout_s: float = 60) -> Daphne:
        super().start(timeout_s)
        return self

    def frame_work(self) -> dict[str, float]:
        """The server's work on frames so far (see stamped_asgi.py), if it records it."""
        path = self.env.get("PERSONAWEB_BENCH_STATS", "")
        if not path or not Path(path).exists():
            return {"render_s": 0.0, "publish_s": 0.0, "forward_s": 0.0, "changes": 0}
        return dict(json.loads(Path(path).read_text()))

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the process has used so far."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS


def server_env(database_url: str, llm_url: str, *, redis: bool) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PERSONAWEB_", "OPENAI_", "OTEL_")) and k != "REDIS_URL"
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "personaweb.settings",
        "DATABASE_URL": database_url,
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "sk-bench",
        "PERSONAWEB_MODEL": "scripted-model",
    }
    if redis:
        env["REDIS_URL"] = REDIS_URL
    return env


# -- the API ---------------------------------------------------------------------------------


def api(base: str, token: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + "/api" + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
    return json.loads(raw) if raw else None


async def run_turn(base: str, token: str, session_pk: int, text: str, poll_s: float = 0.1) -> str:
    """Send a message and wait until its run ends (asking every `poll_s`); its final status."""
    run = await asyncio.to_thread(
        api, base, token, "POST", f"/sessions/{session_pk}/messages", {"text": text}
    )
    while True:
        await asyncio.sleep(poll_s)
        now = await asyncio.to_thread(
            api, base, token, "GET", f"/sessions/{session_pk}/runs/{run['id']}"
        )
        if now["status"] != "running":
            return str(now["status"])


# -- browsers --------------------------------------------------------------------------------


@dataclass
class Browser:
    """A page's WebSocket, timing each stamped frame (change to arrival)."""

    latencies: list[float] = field(default_factory=list)
    frames: int = 0
    largest: int = 0
    reloads: int = 0
    closed: str = ""
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    async def watch(self, base: str, cookie: str, session_pk: int, window: int = 150) -> None:
        import websockets

        url = base.replace("http", "ws", 1) + f"/ws/s/{session_pk}/?window={window}"
        headers = {"Cookie": f"sessionid={cookie}", "Origin": base}
        try:
            async with websockets.connect(
                url, additional_headers=headers, max_size=None, open_timeout=30
            ) as socket_:
                async for message in socket_:
                    now = time.time()
                    text = message if isinstance(message, str) else message.decode()
                    if not self.ready.is_set():
                        self.ready.set()  # the connect-time resync
                        continue
                    self.frames += 1
                    self.largest = max(self.largest, len(text))
                    self.reloads += "data-pw-reload" in text
                    stamp = STAMP.match(text)
                    if stamp:
                        for t0 in stamp.group(1).split(","):
                            self.latencies.append(now - float(t0))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.closed = f"{type(exc).__name__}: {exc}"
            self.ready.set()


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def watching(
    browsers: list[Browser], connect: Callable[[Browser], Any]
) -> list[asyncio.Task[None]]:
    """Connect every browser and wait for their resyncs."""
    tasks = [asyncio.create_task(connect(b)) for b in browsers]
    await asyncio.wait_for(asyncio.gather(*(b.ready.wait() for b in browsers)), 120)
    return tasks
