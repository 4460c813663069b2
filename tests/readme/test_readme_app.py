"""The README's commands for running the app, run as a user runs them, in a shell.

`make run` with the embedded model (and `make run PORT=8765`, which moves the model off the
app's port), the three endpoint commands of *Point it at a real model* against a scripted
OpenAI-compatible server, the JSON API's curl lines and its event stream, traces to Phoenix
and to Langfuse (an OTLP/HTTP receiver on loopback stands in for both), and the scale-out
block on PostgreSQL and Redis. Each command's text comes from README.md (`command`/`block`)
and is changed only where this machine differs: ports, URLs, ids. Each test asserts what the
user would see or get (the terminal's output, HTTP answers, the exit), and stops the app the
way a terminal (Ctrl-C: SIGINT to the foreground process group) or an init system (SIGTERM
to the group) does, then checks nothing is left running or listening.

Nothing is written into the repository: the database, the login file and the secret key come
from the environment (DATABASE_URL, PERSONAWEB_LOGIN_FILE, PERSONAWEB_SECRET_KEY).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from personaweb.llm.scripted_server import ScriptedOpenAIServer
from tests.live import PG, free_port, scaleout_services
from tests.polling import eventually_sync
from tests.readme.otlp import OtlpReceiver
from tests.readme.readme import block, command
from tests.readme.shell import REPO, user_env
from tests.scripted_replies import dialogue_responder

START_S = 90.0
"""How long `make run` may take to serve with a scripted endpoint (migrations included)."""
EMBEDDED_START_S = 240.0
"""... and with the embedded model (it proves a first completion before "ready")."""
STOP_S = 60.0
"""How long a stop may take (daphne, then the embedded model)."""
CRASH_WORDS = (
    "Traceback",
    "was killed",
    "rebuild llama.cpp",
    "restarting the embedded model",
    "make: ***",
)
"""What the terminal must not show after a stop a person asked for."""


def swap(text: str, old: str, new: str) -> str:
    """`text` with `old` replaced (the README's command must still contain `old`)."""
    assert old in text, f"the README's command no longer contains {old!r}: {text!r}"
    return text.replace(old, new)


def with_port(text: str, port: int) -> str:
    """A `... make run` command of the README, serving on `port` (as `make run PORT=N`)."""
    assert text.endswith("make run"), f"the README's command no longer ends in make run: {text!r}"
    return f"{text} PORT={port}"


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _proc_stat(pid: str) -> tuple[str, int] | None:
    """(state, session id) of a process, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[0], int(fields[3])


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def session_processes(sid: int) -> list[str]:
    """The live processes (pid and command line) of session `sid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(entry.name)) is not None:
            state, session = stat
            if session == sid and state != "Z":
                found.append(f"{entry.name} {_cmdline(entry.name)}")
    return found


def alive(pid: int) -> bool:
    stat = _proc_stat(str(pid))
    return stat is not None and stat[0] != "Z"


def embedded_server_pids(port: int) -> list[int]:
    """The embedded model's server processes listening on `port` (by their command line)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            words = _cmdline(entry.name).split()
            if (
                "personaweb.llm.llama_server" in words
                and f"{port}" in words
                and words[words.index(f"{port}") - 1] == "--port"
            ):
                pids.append(int(entry.name))
    return pids


class Shell:
    """A command the README shows, run by bash in a session of its own (as a terminal runs a
    job: its own process group), its output in a file."""

    def __init__(self, text: str, env: dict[str, str], log: Path) -> None:
        self.text = text
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                ["bash", "-c", text],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pgid = self.process.pid
        """Its process group and session (start_new_session: both are its pid)."""
        self.others: list[int] = []
        """Processes it started in sessions of their own (the embedded model's server)."""

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def report(self) -> str:
        return f"\n--- output of `{self.text}` ---\n{self.output()}"

    def wait_for(
        self, check: Callable[[], Any], what: str, timeout_s: float, *, running: bool = True
    ) -> Any:
        """Poll `check` until it is truthy; fail at the deadline, or (while it should be
        `running`) when the command ends first, with its output."""

        def poll() -> Any:
            result = check()
            if not result and running and self.process.poll() is not None:
                pytest.fail(
                    f"`{self.text}` exited ({self.process.returncode}) while waiting for "
                    f"{what}{self.report()}"
                )
            return result

        try:
            return eventually_sync(poll, what, timeout_s=timeout_s, interval_s=0.2)
        except pytest.fail.Exception as exc:
            pytest.fail(f"{exc.msg}{self.report()}")

    def stop(self, sig: signal.Signals, timeout_s: float = STOP_S) -> int:
        """Send `sig` to the whole process group; the shell's exit status once every process
        of its session has ended."""
        os.killpg(self.pgid, sig)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{self.text}` still runs {timeout_s:g} s after {sig.name}{self.report()}")
        left: list[str] = []

        def ended() -> bool:
            left[:] = session_processes(self.pgid)
            return not left

        try:
            eventually_sync(ended, f"the processes to end after {sig.name}", timeout_s=timeout_s)
        except pytest.fail.Exception as exc:
            pytest.fail(f"{exc.msg}; still running: {left}{self.report()}")
        return code

    def kill(self) -> None:
        """The last resort of a finally: nothing of it may outlive the test."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        for pid in self.others:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


@contextlib.contextmanager
def shell(text: str, env: dict[str, str], log: Path) -> Iterator[Shell]:
    running = Shell(text, env, log)
    try:
        yield running
    finally:
        running.kill()


# --- the app, as a user meets it --------------------------------------------------------------

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CREDENTIALS = re.compile(r"username: (\S+)\s+password: (\S+)")


def wait_until_served(app: Shell, port: int, timeout_s: float, *, needs: str = "") -> None:
    """Until the login page answers 200 (and the output shows `needs`)."""
    url = f"http://127.0.0.1:{port}/accounts/login/"

    def served() -> bool:
        if needs and needs not in app.output():
            return False
        try:
            return requests.get(url, timeout=5).status_code == 200
        except requests.RequestException:
            return False

    app.wait_for(served, f"{url} to answer 200" + (f" and {needs!r}" if needs else ""), timeout_s)


def log_in(app: Shell, base: str, login_file: Path) -> requests.Session:
    """Log in with the account `make run` printed, as a person would on the login page, and
    check the home page is that account's."""
    output = app.output()
    printed = CREDENTIALS.search(output)
    assert printed, f"make run printed no user name and password{app.report()}"
    username, password = printed.groups()
    saved = login_file.read_text()
    assert f"username: {username}\npassword: {password}\n" in saved, saved
    browser = requests.Session()
    form = browser.get(f"{base}/accounts/login/", timeout=30)
    assert form.status_code == 200
    home = browser.post(
        f"{base}/accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": CSRF.search(form.text)[1],  # type: ignore[index]
        },
        timeout=60,
    )
    assert home.status_code == 200, home.text[:2000]
    assert home.url == f"{base}/", f"the login did not reach the home page: {home.url}"
    assert f'<span class="who">{username}</span>' in home.text, home.text[:2000]
    # The account's own cast, copied for it on first use, offered for a new session.
    assert re.search(r'<option value="\d+">Sara Wilcox</option>', home.text), home.text[:3000]
    return browser


def make_token(browser: requests.Session, base: str) -> str:
    """A token made on the API page (`/tokens/`), as the README says."""
    page = browser.get(f"{base}/tokens/", timeout=30)
    assert page.status_code == 200
    made = browser.post(
        f"{base}/tokens/new/",
        data={"name": "readme", "csrfmiddlewaretoken": CSRF.search(page.text)[1]},  # type: ignore[index]
        timeout=30,
    )
    assert made.status_code == 200, made.text[:2000]
    shown = re.search(r'<pre class="token"[^>]*>(pw_[A-Za-z0-9_-]+)</pre>', made.text)
    assert shown, made.text[:3000]
    return shown[1]


def chat_once(app: Shell, base: str, token: str, text: str) -> int:
    """One autonomous turn with Sara Wilcox over the API; the session's id."""
    auth = {"Authorization": f"Bearer {token}"}
    characters = requests.get(f"{base}/api/characters", headers=auth, timeout=30).json()
    sara = next(c["id"] for c in characters if c["name"] == "Sara Wilcox")
    made = requests.post(
        f"{base}/api/sessions",
        json={"character": sara, "mode": "autonomous"},
        headers=auth,
        timeout=30,
    )
    assert made.status_code == 201, made.text
    session = made.json()["id"]
    sent = requests.post(
        f"{base}/api/sessions/{session}/messages", json={"text": text}, headers=auth, timeout=30
    )
    assert sent.status_code == 202, sent.text
    run = sent.json()["id"]

    def finished() -> dict[str, Any] | None:
        got = requests.get(f"{base}/api/sessions/{session}/runs/{run}", headers=auth, timeout=30)
        answer: dict[str, Any] = got.json()
        return answer if answer["status"] != "running" else None

    ended = app.wait_for(finished, f"run {run} to finish", 60)
    assert ended["status"] == "done", ended
    path = requests.get(f"{base}/api/sessions/{session}/path", headers=auth, timeout=30).json()
    said = [line["text"] for line in path["transcript"]]
    assert text in said, said
    # The scripted rewriter's mark: the reply went through the nested personas.
    assert said[-1].startswith("[styled] "), said
    return int(session)


def assert_clean_stop(app: Shell, sig: signal.Signals, code: int, ports: list[int]) -> None:
    """What a person sees after stopping `make run`: it ends on its own, says it stopped,
    reports no crash, and leaves nothing running or listening."""
    output = app.output()
    # GNU make waits for its recipe to end, then ends by the signal it was sent (its rule for
    # SIGTERM and SIGINT); the launcher's own exit is 0, or make would say "make: *** Error".
    assert code in (0, -sig), f"`{app.text}` ended with {code} after {sig.name}{app.report()}"
    assert "PersonaWeb stopped" in output, app.report()
    for words in CRASH_WORDS:
        assert words not in output, f"{words!r} after {sig.name}{app.report()}"
    for port in ports:
        assert not listening(port), f"port {port} still listens after {sig.name}{app.report()}"
    left = [pid for pid in app.others if alive(pid)]
    assert not left, f"the embedded model (pid {left}) outlived the stop{app.report()}"
    assert not session_processes(app.pgid)


@pytest.fixture(scope="module", autouse=True)
def venv_is_built() -> None:
    """`make run` first brings .venv up to date: were it out of date, a test would rebuild it
    (minutes, and under everyone's feet). Say so instead."""
    done = subprocess.run(
        ["make", "-q", ".venv/.installed-stamp"],
        cwd=REPO,
        env=user_env(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, (
        "`make run` would reinstall .venv (pyproject.toml is newer than its stamp): run "
        f"`make install` first. {done.stdout}{done.stderr}"
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One person's files (database, login file) for the scripted-endpoint runs: the first run
    creates the account, later ones remind of it, as on a laptop."""
    return tmp_path_factory.mktemp("home")


# --- Run it: the embedded model ---------------------------------------------------------------


@pytest.mark.embedded
def test_make_run_serves_the_app_with_the_embedded_model_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    (text,) = (c.text for c in block("make run"))
    port, model_port = free_port(), free_port()
    env = user_env(tmp_path, PERSONAWEB_EMBEDDED_PORT=str(model_port))
    with shell(with_port(text, port), env, tmp_path / "make-run.log") as app:
        wait_until_served(app, port, EMBEDDED_START_S, needs="embedded model ready")
        output = app.output()
        assert "starting the embedded local model (SmolLM2-135M)" in output
        assert f"embedded model ready at http://127.0.0.1:{model_port}/v1" in output
        assert f"PersonaWeb at http://127.0.0.1:{port}/" in output
        assert f"Log in at http://127.0.0.1:{port}/" in output
        app.others = embedded_server_pids(model_port)
        assert app.others, f"no embedded model server listens on {model_port}{app.report()}"
        assert listening(model_port)
        log_in(app, f"http://127.0.0.1:{port}", tmp_path / "login")

        code = app.stop(signal.SIGTERM)  # as an init system stops a service
        assert_clean_stop(app, signal.SIGTERM, code, [port, model_port])


@pytest.mark.embedded
def test_make_run_on_the_models_port_moves_the_model_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    text = command("make run PORT=8765")
    env = user_env(tmp_path)
    if listening(8765):
        # This machine's 8765 is taken (a developer's own model): the same rule on a free port.
        port = free_port()
        text = swap(text, "PORT=8765", f"PORT={port}")
        env["PERSONAWEB_EMBEDDED_PORT"] = str(port)
    else:
        port = 8765
    with shell(text, env, tmp_path / "make-run.log") as app:
        wait_until_served(app, port, EMBEDDED_START_S, needs="embedded model ready")
        output = app.output()
        moved = re.search(rf"port {port} is the app's: the embedded model listens on (\d+)", output)
        assert moved, f"make run did not say where the model went{app.report()}"
        model_port = int(moved[1])
        assert model_port != port
        assert f"embedded model ready at http://127.0.0.1:{model_port}/v1" in output
        assert f"PersonaWeb at http://127.0.0.1:{port}/" in output
        app.others = embedded_server_pids(model_port)
        assert app.others, f"no embedded model server listens on {model_port}{app.report()}"
        log_in(app, f"http://127.0.0.1:{port}", tmp_path / "login")

        code = app.stop(signal.SIGINT)  # a terminal's Ctrl-C, to the foreground group
        assert_clean_stop(app, signal.SIGINT, code, [port, model_port])


# --- Point it at a real model -----------------------------------------------------------------


@contextlib.contextmanager
def endpoint_app(
    text: str, home: Path, log: Path, model: str = "scripted-model", **env: str
) -> Iterator[tuple[Shell, ScriptedOpenAIServer]]:
    """`text` run in `home`, the scripted server (serving `model`) standing in for the
    endpoint: its URL replaces `{llm}` in `text` and in `env`."""
    server = ScriptedOpenAIServer(dialect="openai", model=model, responder=dialogue_responder)
    with server as llm:
        extra = {k: v.replace("{llm}", llm.base_url) for k, v in env.items()}
        with shell(text.replace("{llm}", llm.base_url), user_env(home, **extra), log) as app:
            yield app, llm
        llm.assert_no_script_errors()


def assert_endpoint_banner(app: Shell, base_url: str, model: str, port: int) -> None:
    output = app.output()
    assert f"LLM endpoint: {base_url} (model {model})" in output, app.report()
    assert f"PersonaWeb at http://127.0.0.1:{port}/" in output
    assert "embedded" not in output, f"it started the embedded model{app.report()}"


def test_openai_command_talks_to_the_configured_endpoint(home: Path, tmp_path: Path) -> None:
    text = command("OPENAI_API_KEY=sk-... PERSONAWEB_MODEL=gpt-4o-mini make run")
    port = free_port()
    # No internet here: the OpenAI command's traffic goes to the scripted server instead.
    with endpoint_app(
        with_port(text, port),
        home,
        tmp_path / "make-run.log",
        "gpt-4o-mini",
        OPENAI_BASE_URL="{llm}",
    ) as (app, llm):
        wait_until_served(app, port, START_S, needs="PersonaWeb at")
        assert_endpoint_banner(app, llm.base_url, "gpt-4o-mini", port)
        base = f"http://127.0.0.1:{port}"
        token = make_token(log_in(app, base, home / "login"), base)
        chat_once(app, base, token, "I am Joe. Who are you?")
        assert llm.requests, "the scripted endpoint got no request"
        assert {r["model"] for r in llm.requests} == {"gpt-4o-mini"}

        code = app.stop(signal.SIGTERM)
        assert_clean_stop(app, signal.SIGTERM, code, [port])


def test_ollama_command_talks_to_the_configured_endpoint(home: Path, tmp_path: Path) -> None:
    text = command("OPENAI_BASE_URL=http://localhost:11434/v1")
    port = free_port()
    text = with_port(swap(text, "http://localhost:11434/v1", "{llm}"), port)
    with endpoint_app(text, home, tmp_path / "make-run.log", "llama3.1") as (app, llm):
        wait_until_served(app, port, START_S, needs="PersonaWeb at")
        assert_endpoint_banner(app, llm.base_url, "llama3.1", port)
        base = f"http://127.0.0.1:{port}"
        token = make_token(log_in(app, base, home / "login"), base)
        chat_once(app, base, token, "I am Joe. Who are you?")
        assert {r["model"] for r in llm.requests} == {"llama3.1"}

        code = app.stop(signal.SIGTERM)
        assert_clean_stop(app, signal.SIGTERM, code, [port])


# --- the JSON API's curl lines and event stream, on the vLLM command --------------------------


class Curl:
    """The README's curl lines, each run by bash after the block's three assignments (TOKEN,
    API and the `auth` array, as the README defines them)."""

    def __init__(self, token: str, api: str, session: int | None = None) -> None:
        lines = [c.text for c in block("TOKEN=")]
        self.prelude = [
            swap(lines[0], "TOKEN=pw_...", f"TOKEN={token}"),
            swap(lines[1], "API=http://127.0.0.1:8000/api", f"API={api}"),
            lines[2],
        ]
        assert lines[2].startswith("auth=("), lines[2]
        self.lines = lines[3:]
        self.ran: set[str] = set()
        self.session = session

    def line(self, lines: list[str], marker: str) -> str:
        """The one line of `lines` that `marker` (a regular expression) finds."""
        found = [line for line in lines if re.search(marker, line)]
        assert len(found) == 1, f"the README's curl block has {len(found)} lines like {marker!r}"
        return found[0]

    def script(self, line: str, node: str = "") -> str:
        ran = line
        if self.session is not None:
            ran = swap(ran, "/sessions/7/", f"/sessions/{self.session}/")
        if node:
            ran = swap(ran, "/nodes/X", f"/nodes/{node}")
        return "\n".join([*self.prelude, ran])

    def run(self, marker: str, *, node: str = "", subs: tuple[str, str] | None = None) -> Any:
        """Run the block's line that `marker` finds (X: `node`); its answer, as JSON."""
        line = self.line(self.lines, marker)
        self.ran.add(line)
        script = self.script(swap(line, *subs) if subs else line, node)
        done = subprocess.run(
            ["bash", "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO
        )
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        try:
            return json.loads(done.stdout)
        except ValueError:
            pytest.fail(f"{line} answered no JSON: {done.stdout!r} {done.stderr!r}")


def no_error(answer: Any, what: str) -> dict[str, Any]:
    assert isinstance(answer, dict) and "detail" not in answer, f"{what}: {answer}"
    return answer


def test_vllm_command_serves_the_api_curl_lines_and_the_event_stream(
    home: Path, tmp_path: Path
) -> None:
    text = command("OPENAI_BASE_URL=http://localhost:8000/v1")
    port = free_port()
    text = swap(swap(text, "http://localhost:8000/v1", "{llm}"), "PORT=8080", f"PORT={port}")
    model = "Qwen/Qwen2.5-7B-Instruct"
    with endpoint_app(text, home, tmp_path / "make-run.log", model) as (app, llm):
        wait_until_served(app, port, START_S, needs="PersonaWeb at")
        assert_endpoint_banner(app, llm.base_url, model, port)
        base = f"http://127.0.0.1:{port}"
        token = make_token(log_in(app, base, home / "login"), base)
        curl = Curl(token, f"{base}/api")

        characters = curl.run(r"\$API/characters$")
        assert isinstance(characters, list), characters
        sara = next((c["id"] for c in characters if c["name"] == "Sara Wilcox"), None)
        assert sara is not None, characters  # the bundled cast, copied on first use

        made = no_error(
            curl.run(r"\$API/sessions -d", subs=('"character": 1', f'"character": {sara}')),
            "a new session",
        )
        assert made["character"] == sara and made["mode"] == "review", made
        curl.session = session = made["id"]

        said = "I am Joe. Who are you?"
        run = no_error(curl.run(r"/messages -d '\{\"text\": \"I am Joe"), "a message")
        assert run["session"] == session and run["status"] in {"running", "stopped"}, run

        def waiting(after: set[str]) -> Callable[[], dict[str, Any] | None]:
            def check() -> dict[str, Any] | None:
                path: dict[str, Any] = curl.run(r"/path$")
                going = path.get("next") or {}
                ready = going.get("kind") == "review" and going.get("node_id") not in after
                return path if ready else None

            return check

        # X: the proposal waiting for review, read off the path before each action.
        path = app.wait_for(waiting(set()), "a proposal waiting for review", 60)
        assert said in [line["text"] for line in path["transcript"]], path["transcript"]
        x = path["next"]["node_id"]
        node = no_error(curl.run(r"/nodes/X$", node=x), "the node")
        assert node["id"] == x and node["status"] == "proposed", node
        assert node["call"]["model"] == model, node["call"]
        sent = [m["content"] for m in node["call"]["messages"]]
        assert any(said in m for m in sent), sent  # the messages sent include Joe's line
        assert "approve" in node["allowed_actions"], node

        approved = no_error(curl.run(r"/approve$", node=x), "approve")
        assert approved["session"] == session, approved
        path = app.wait_for(waiting({x}), "the next proposal after approve", 60)
        y = path["next"]["node_id"]
        assert [n["status"] for n in path["nodes"] if n["id"] == x] == ["approved"], path["nodes"]

        no_error(curl.run(r"/feedback -d", node=y), "feedback")
        path = app.wait_for(waiting({x, y}), "a new proposal after feedback", 60)
        z = path["next"]["node_id"]
        retaken = next(n for n in path["nodes"] if n["id"] == z)
        assert "be colder" in retaken["content"], retaken  # the persona heard the feedback

        no_error(curl.run(r"/edit -d", node=z), "edit")
        path = app.wait_for(waiting({x, y, z}), "the run going on after the edit", 60)
        assert any(n["content"] == "Who dares ask?" for n in path["nodes"]), path["nodes"]
        assert set(curl.lines) == curl.ran, "a curl line of the README's API block did not run"

        # A new message waits for the turn to end (409 meanwhile): approve the rest of it.
        def turn_over() -> dict[str, Any] | None:
            path: dict[str, Any] = curl.run(r"/path$")
            going = path.get("next") or {}
            if going.get("kind") == "review" and going["node_id"] not in acted:
                acted.add(going["node_id"])
                no_error(curl.run(r"/approve$", node=going["node_id"]), "approve")
            return path if going.get("kind") == "done" else None

        acted = {x, y, z}
        path = app.wait_for(turn_over, "the turn to end, every proposal approved", 60)
        # The edited line went on through the style rewriter to Joe.
        assert path["transcript"][-1]["text"] == "[styled] Who dares ask?", path["transcript"]
        auth = {"Authorization": f"Bearer {token}"}
        url = f"{base}/api/sessions/{session}"
        idle = lambda: not requests.get(url, headers=auth, timeout=30).json()["running"]  # noqa: E731
        app.wait_for(idle, "the run to end", 30)

        # The event stream: open it (in the background, as the README does), then act.
        stream_line, message_line = (c.text for c in block("curl -sN"))
        events_log = tmp_path / "events.log"
        with shell(curl.script(stream_line) + "\nwait", user_env(tmp_path), events_log) as stream:
            stream.wait_for(lambda: "event: hello" in stream.output(), "the stream's hello", 30)
            started = no_error(
                json.loads(
                    subprocess.run(
                        ["bash", "-c", curl.script(message_line)],
                        capture_output=True,
                        text=True,
                        timeout=60,
                        check=True,
                    ).stdout
                ),
                "a message",
            )
            try:
                stream.process.wait(60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the event stream did not end with its run{stream.report()}")
            assert stream.process.returncode == 0, stream.report()
        events = parse_sse(stream.output())
        names = [name for name, _ in events]
        assert names[0] == "hello" and events[0][1]["session"] == session, events[0]
        assert ("run_started", started["id"]) in [(n, d.get("run")) for n, d in events], names
        finished = [d for n, d in events if n == "run_finished" and d.get("run") == started["id"]]
        assert finished and finished[0]["status"] == "stopped", events  # waits for review
        assert "node_created" in names, names
        assert names[-1] == "end" and events[-1][1] == {"reason": "run_finished"}, events[-1]
        assert {r["model"] for r in llm.requests} == {model}

        code = app.stop(signal.SIGTERM)
        assert_clean_stop(app, signal.SIGTERM, code, [port])


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The events of a text/event-stream: (name, data)."""
    events = []
    for chunk in text.split("\n\n"):
        name = re.search(r"^event: (.+)$", chunk, re.MULTILINE)
        data = re.search(r"^data: (.+)$", chunk, re.MULTILINE)
        if name and data:
            events.append((name[1], json.loads(data[1])))
    return events


# --- Traces: Phoenix and Langfuse, played by an OTLP/HTTP receiver ---------------------------


# The scripted endpoint, as the user's shell would have it for these commands (they set only
# the tracing variables); spans leave in batches, sent here after 0.2 s instead of 5 s.
TRACED_ENV = {
    "OPENAI_BASE_URL": "{llm}",
    "OPENAI_API_KEY": "sk-test",
    "PERSONAWEB_MODEL": "scripted-model",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
}


def assert_traced(receiver: OtlpReceiver, session: int, app: Shell) -> None:
    """The turn's spans arrived, in the GenAI conventions the README lists."""

    def both() -> bool:
        names = {span["name"] for span in receiver.spans()}
        return "chat scripted-model" in names and any(n.startswith("invoke_agent ") for n in names)

    app.wait_for(both, "an invoke_agent span and a chat span at the receiver", 30)
    spans = receiver.spans()
    assert {s["service"] for s in spans} == {"personaweb"}, spans
    agents = [s for s in spans if s["name"].startswith("invoke_agent ")]
    for span in agents:
        attributes = span["attributes"]
        assert span["name"] == f"invoke_agent {attributes['gen_ai.agent.name']}", span
        assert attributes["gen_ai.agent.id"], span
        assert attributes["gen_ai.conversation.id"] == str(session), span
    chats = [s for s in spans if s["name"] == "chat scripted-model"]
    for span in chats:
        attributes = span["attributes"]
        assert attributes["gen_ai.request.model"] == "scripted-model", span
        assert attributes["gen_ai.provider.name"], span
        assert attributes["gen_ai.usage.input_tokens"] > 0, span
        assert attributes["gen_ai.usage.output_tokens"] > 0, span
        assert attributes["gen_ai.response.finish_reasons"] == ["stop"], span


def test_phoenix_command_sends_traces(home: Path, tmp_path: Path) -> None:
    text = command("OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:6006")
    port = free_port()
    with OtlpReceiver() as phoenix:
        text = with_port(swap(text, "http://localhost:6006", phoenix.url), port)
        with endpoint_app(text, home, tmp_path / "make-run.log", **TRACED_ENV) as (app, _llm):
            wait_until_served(app, port, START_S, needs="PersonaWeb at")
            base = f"http://127.0.0.1:{port}"
            token = make_token(log_in(app, base, home / "login"), base)
            session = chat_once(app, base, token, "I am Joe. Who are you?")
            assert_traced(phoenix, session, app)
            assert {got.path for got in phoenix.received} == {"/v1/traces"}

            code = app.stop(signal.SIGTERM)
            assert_clean_stop(app, signal.SIGTERM, code, [port])


def test_langfuse_block_sends_traces_with_the_projects_keys(home: Path, tmp_path: Path) -> None:
    lines = [c.text for c in block("export OTEL_EXPORTER_OTLP_ENDPOINT=https://cloud.langfuse.com")]
    port = free_port()
    public, secret = "pk-lf-readme-test", "sk-lf-" + uuid.uuid4().hex
    with OtlpReceiver() as langfuse:
        script = "\n".join(
            [
                swap(lines[0], "https://cloud.langfuse.com", langfuse.url),
                *lines[1:-1],  # the header line as is: it runs printf | base64
                with_port(lines[-1], port),
            ]
        )
        env = {**TRACED_ENV, "LANGFUSE_PUBLIC_KEY": public, "LANGFUSE_SECRET_KEY": secret}
        with endpoint_app(script, home, tmp_path / "make-run.log", **env) as (app, _llm):
            wait_until_served(app, port, START_S, needs="PersonaWeb at")
            base = f"http://127.0.0.1:{port}"
            token = make_token(log_in(app, base, home / "login"), base)
            session = chat_once(app, base, token, "I am Joe. Who are you?")
            assert_traced(langfuse, session, app)
            assert {got.path for got in langfuse.received} == {"/api/public/otel/v1/traces"}
            basic = "Basic " + base64.b64encode(f"{public}:{secret}".encode()).decode()
            assert {got.headers.get("authorization") for got in langfuse.received} == {basic}

            code = app.stop(signal.SIGTERM)
            assert_clean_stop(app, signal.SIGTERM, code, [port])


# --- Scale out --------------------------------------------------------------------------------


@pytest.mark.scaleout
def test_scale_out_block_migrates_postgres_and_serves_from_two_daphnes(tmp_path: Path) -> None:
    import psycopg

    scaleout_services()
    lines = [c.text for c in block("export DATABASE_URL")]
    name = f"personaweb_readme_{uuid.uuid4().hex[:8]}"
    one, two = free_port(), free_port()
    script = "\n".join(
        [
            swap(lines[0], "@127.0.0.1:5432/personaweb ", f"@127.0.0.1:5432/{name} "),
            *lines[1:2],
            swap(lines[2], "-b 0.0.0.0 -p 8001 ", f"-b 127.0.0.1 -p {one} "),
            swap(lines[3], "-b 0.0.0.0 -p 8002 ", f"-b 127.0.0.1 -p {two} "),
            "wait",  # the shell stays, as a terminal's does, with its two jobs
        ]
    )
    assert lines[1] == ".venv/bin/python manage.py migrate", lines[1]
    env = user_env(tmp_path)
    del env["DATABASE_URL"]  # the block exports its own
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with shell(script, env, tmp_path / "scale-out.log") as servers:
            wait_until_served(servers, one, START_S)
            wait_until_served(servers, two, START_S)
            output = servers.output()
            assert "Applying web.0001_initial... OK" in output, servers.report()
            assert "Traceback" not in output, servers.report()
            with psycopg.connect(dbname=name, **PG) as conn:  # type: ignore[arg-type]
                applied = conn.execute("SELECT count(*) FROM django_migrations").fetchone()
            assert applied and applied[0] > 20, applied
            for port in (one, two):
                page = requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=30)
                assert page.status_code == 200 and "csrfmiddlewaretoken" in page.text
            servers.stop(signal.SIGTERM)
            assert not listening(one) and not listening(two), servers.report()
            assert "Traceback" not in servers.output(), servers.report()
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
